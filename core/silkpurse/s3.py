"""The services' batch store: objects in an S3-compatible server (MinIO, SeaweedFS, AWS S3).

The same :class:`~silkpurse.store.BatchStore` interface as the local store, over the ``minio``
SDK (the optional dependency ``silkpurse-core[s3]``, imported only here). Configured by the
``SILKPURSE_S3_*`` settings; :func:`silkpurse.store.open_store` picks this store when
``SILKPURSE_S3_ENDPOINT`` is set.

- Keys are validated before any request; the bucket is created on first use if missing.
- Integrity: every write stores the sha256 of the content in the object's user metadata
  (``x-amz-meta-silkpurse-sha256``); ``get`` and ``download`` verify it and refuse an object
  whose content does not match, or that carries no checksum (not written by silkpurse), with a
  permanent :class:`StoreError` naming the key. A download is verified before it is renamed
  into place, so a corrupt object never appears at the destination.
- Large objects (``upload``, and ``put`` of big bytes) go up in parts of ``s3_part_size_mib``.
- Retries live in the SDK's HTTP pool (urllib3 ``Retry``): refused connections, timeouts and 5xx
  answers (``SlowDown``, ``InternalError``, ...) are retried ``s3_retries`` times with
  exponential backoff (0, 0.5, 1, 2 s, ... capped at 2 s; ``Retry-After`` is not honoured, to keep
  the total bounded), then raise :class:`StoreUnavailableError` (retryable). Read timeouts are
  retried once. Bounds with the defaults: a refused connection or a failing server ~4 s, an
  unreachable host ~14 s (2 s connect timeout per try), a server that accepts but never answers
  2 x ``s3_timeout_s``.
- Missing objects, refused credentials and other 4xx answers are permanent :class:`StoreError`\\ s.
  Credentials never appear in messages, logs or reprs.
"""

from __future__ import annotations

import hashlib
import io
import ipaddress
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import urllib3
from minio import Minio
from minio.commonconfig import CopySource
from minio.deleteobjects import DeleteObject
from minio.error import InvalidResponseError, S3Error, ServerError
from pydantic import SecretStr
from urllib3.exceptions import (
    ConnectTimeoutError,
    MaxRetryError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    ResponseError,
)
from urllib3.util.retry import Retry

from silkpurse.errors import InputError, StoreError, StoreUnavailableError
from silkpurse.files import sha256_of, write_atomically
from silkpurse.settings import Settings
from silkpurse.store import BatchStore, validate_key

log = logging.getLogger(__name__)

CHECKSUM_META = "silkpurse-sha256"
"""User metadata holding the hex sha256 of an object's content (header ``x-amz-meta-silkpurse-sha256``)."""
_CHECKSUM_HEADER = f"x-amz-meta-{CHECKSUM_META}"
_MIB = 1 << 20
_CREDENTIAL_CODES = frozenset(
    {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken"}
)
_BUSY_CODES = frozenset({"SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout", "RequestTimeTooSkewed"})
_CHECK_ENDPOINT = "start it or check SILKPURSE_S3_ENDPOINT"
_CHECK_CREDENTIALS = "check SILKPURSE_S3_ACCESS_KEY and SILKPURSE_S3_SECRET_KEY"


def _is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _split_endpoint(endpoint: str) -> str:
    """The host of a ``host:port`` endpoint; a URL or a path is refused."""
    if "://" in endpoint or "/" in endpoint or not endpoint.strip():
        raise StoreError(
            f"SILKPURSE_S3_ENDPOINT must be host:port, not {endpoint!r}",
            "drop the scheme and path; set SILKPURSE_S3_SECURE for HTTPS",
        )
    return endpoint.rsplit(":", 1)[0] if not endpoint.endswith("]") else endpoint


def _secret(value: SecretStr | str | None) -> str | None:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


class S3Store(BatchStore):
    """Objects in one bucket of an S3-compatible server; see the module's documentation."""

    def __init__(
        self,
        endpoint: str,
        access_key: SecretStr | str | None,
        secret_key: SecretStr | str | None,
        bucket: str = "silkpurse",
        *,
        secure: bool | None = None,
        region: str | None = None,
        retries: int = 4,
        timeout_s: float = 10.0,
        part_size_mib: int = 16,
    ) -> None:
        host = _split_endpoint(endpoint)
        self.endpoint = endpoint
        self.bucket = bucket
        self.secure = (not _is_loopback(host)) if secure is None else secure
        self.retries = retries
        self.timeout_s = timeout_s
        self.region = region
        self.part_size = max(5, part_size_mib) * _MIB
        retry = Retry(
            total=retries,
            connect=retries,
            read=min(1, retries),
            status=retries,
            other=retries,
            backoff_factor=0.25,
            backoff_max=2.0,
            status_forcelist=(500, 502, 503, 504),
            allowed_methods=None,  # S3 writes are idempotent per key; multipart POSTs are safe to repeat
            raise_on_status=False,  # the last 5xx answer reaches the SDK, which names its S3 code
            respect_retry_after_header=False,
        )
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=min(2.0, timeout_s), read=timeout_s),
            retries=retry,
            maxsize=10,
        )
        try:
            self._client = Minio(
                endpoint,
                access_key=_secret(access_key),
                secret_key=_secret(secret_key),
                secure=self.secure,
                region=region,
                http_client=http,
            )
        except ValueError as err:
            raise StoreError(f"SILKPURSE_S3_ENDPOINT {endpoint!r} is not usable ({err})", "give host:port") from None
        self._bucket_ready = False

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Store:
        if not settings.s3_endpoint:
            raise StoreError("no object store is configured", "set SILKPURSE_S3_ENDPOINT to host:port")
        return cls(
            settings.s3_endpoint,
            settings.s3_access_key,
            settings.s3_secret_key,
            settings.s3_bucket,
            secure=settings.s3_secure,
            region=settings.s3_region,
            retries=settings.s3_retries,
            timeout_s=settings.s3_timeout_s,
            part_size_mib=settings.s3_part_size_mib,
        )

    def __repr__(self) -> str:
        scheme = "https" if self.secure else "http"
        return f"S3Store({scheme}://{self.endpoint}/{self.bucket})"

    # -- the BatchStore interface ------------------------------------------------------------

    def put(self, key: str, data: bytes) -> None:
        validate_key(key)
        self._ensure_bucket()
        with self._requests(key):
            self._client.put_object(
                self.bucket,
                key,
                io.BytesIO(data),
                len(data),
                metadata={CHECKSUM_META: hashlib.sha256(data).hexdigest()},
                part_size=self.part_size,
            )

    def get(self, key: str) -> bytes:
        validate_key(key)
        self._ensure_bucket()
        with self._requests(key):
            response = self._client.get_object(self.bucket, key)
            try:
                expected = response.headers.get(_CHECKSUM_HEADER)
                data = response.read()
            finally:
                response.close()
                response.release_conn()
        self._verify(key, expected, hashlib.sha256(data).hexdigest())
        return data

    def exists(self, key: str) -> bool:
        validate_key(key)
        self._ensure_bucket()
        with self._requests(key):
            try:
                self._client.stat_object(self.bucket, key)
            except S3Error as err:
                if err.code == "NoSuchKey":
                    return False
                raise
        return True

    def delete_prefix(self, prefix: str) -> None:
        validate_key(prefix)
        self._ensure_bucket()
        with self._requests(prefix):
            names = [
                obj.object_name
                for obj in self._client.list_objects(self.bucket, prefix=f"{prefix}/", recursive=True)
                if obj.object_name and not obj.is_dir
            ]
            failed = list(self._client.remove_objects(self.bucket, (DeleteObject(name) for name in names)))
        if failed:
            raise StoreError(
                f"could not delete {len(failed)} objects under {prefix}/ ({failed[0].code} on {failed[0].name})",
                "check the bucket's permissions",
            )
        log.debug("deleted %d objects under %s/", len(names), prefix)

    def upload(self, key: str, path: Path) -> None:
        validate_key(key)
        digest = sha256_of(path)
        self._ensure_bucket()
        with self._requests(key):
            self._client.fput_object(
                self.bucket, key, str(path), metadata={CHECKSUM_META: digest}, part_size=self.part_size
            )

    def download(self, key: str, path: Path) -> None:
        validate_key(key)
        self._ensure_bucket()

        def write(tmp: Path) -> None:
            with self._requests(key):
                response = self._client.get_object(self.bucket, key)
                try:
                    expected = response.headers.get(_CHECKSUM_HEADER)
                    digest = hashlib.sha256()
                    with tmp.open("wb") as f:
                        for chunk in response.stream(_MIB):
                            digest.update(chunk)
                            f.write(chunk)
                finally:
                    response.close()
                    response.release_conn()
            self._verify(key, expected, digest.hexdigest())

        try:
            write_atomically(path, write)
        except OSError as err:
            raise StoreError(
                f"cannot write {path} ({err.strerror})", "free disk space or choose another path"
            ) from None

    def copy_out(self, key: str, bucket: str, target_key: str) -> None:
        """Copy the store's object ``key`` to ``bucket/target_key`` on the same server (a job's
        output published at an ``s3://`` URI). The copy is server-side and appears whole or not
        at all; the checksum metadata goes with it."""
        validate_key(key)
        with self._requests(target_key), self._bad_bucket_name():
            self._client.copy_object(bucket, target_key, CopySource(self.bucket, key))

    # -- inputs (s3:// URIs given by a user; see silkpurse.fetch) ---------------------------------

    def stat_input(self, bucket: str, key: str) -> tuple[int, str]:
        """Size and ETag of an input object in ``bucket`` (a user's object: any key, any writer).
        A missing bucket or object is an :class:`~silkpurse.errors.InputError`."""
        with self._requests(key), self._bad_bucket_name():
            try:
                stat = self._client.stat_object(bucket, key)
            except S3Error as err:
                if err.code in ("NoSuchKey", "NoSuchBucket", "NotFound"):
                    raise InputError(
                        f"s3://{bucket}/{key} does not exist at {self.endpoint}", "check the bucket and key"
                    ) from None
                raise
        return stat.size or 0, (stat.etag or "").strip('"')

    def download_input(
        self, bucket: str, key: str, path: Path, *, max_bytes: int, progress: Callable[[int], None] | None = None
    ) -> None:
        """Write the input object ``bucket/key`` to ``path`` atomically, reading at most
        ``max_bytes`` (more is an :class:`~silkpurse.errors.InputError`). Unlike :meth:`download`,
        the object need not carry silkpurse's checksum; when it does, it is verified."""

        def write(tmp: Path) -> None:
            done = 0
            with self._requests(key):
                response = self._client.get_object(bucket, key)
                try:
                    expected = response.headers.get(_CHECKSUM_HEADER)
                    digest = hashlib.sha256()
                    with tmp.open("wb") as f:
                        for chunk in response.stream(_MIB):
                            done += len(chunk)
                            if done > max_bytes:
                                raise InputError(
                                    f"s3://{bucket}/{key} is larger than the limit of {max_bytes} bytes",
                                    "raise --max-download-size or SILKPURSE_MAX_DOWNLOAD_BYTES",
                                )
                            digest.update(chunk)
                            f.write(chunk)
                            if progress is not None:
                                progress(done)
                finally:
                    response.close()
                    response.release_conn()
            if expected is not None:
                self._verify(key, expected, digest.hexdigest())

        try:
            write_atomically(path, write)
        except OSError as err:
            raise InputError(
                f"cannot write {path} ({err.strerror})", "free disk space or choose another --work-dir"
            ) from None

    # -- helpers -------------------------------------------------------------------------------

    def _verify(self, key: str, expected: str | None, actual: str) -> None:
        if expected is None:
            raise StoreError(f"{key} carries no checksum", "it was not written by silkpurse; recompute it")
        if expected.lower() != actual:
            raise StoreError(f"{key} is corrupt (its sha256 does not match the one stored with it)", "recompute it")

    def _ensure_bucket(self) -> None:
        """Create the bucket if missing, once per store; another creator winning the race is fine."""
        if self._bucket_ready:
            return
        with self._requests(None), self._bad_bucket_name():
            if not self._client.bucket_exists(self.bucket):
                try:
                    self._client.make_bucket(self.bucket, location=self.region)
                    log.info("created bucket %s at %s", self.bucket, self.endpoint)
                except S3Error as err:
                    if err.code != "BucketAlreadyOwnedByYou" and not (
                        err.code == "BucketAlreadyExists" and self._client.bucket_exists(self.bucket)
                    ):
                        raise
        self._bucket_ready = True

    @contextmanager
    def _bad_bucket_name(self) -> Iterator[None]:
        try:
            yield
        except ValueError as err:  # the SDK checks bucket names before any request
            raise StoreError(f"SILKPURSE_S3_BUCKET {self.bucket!r} is not a valid bucket name ({err})") from None

    @contextmanager
    def _requests(self, key: str | None) -> Iterator[None]:
        """Translate the SDK's and urllib3's errors into the project's, once, for every call."""
        try:
            yield
        except S3Error as err:
            self._raise_s3(err, key)
        except (ServerError, InvalidResponseError) as err:
            status = err.status_code if isinstance(err, ServerError) else _status_of(err)
            if status is not None and status >= 500:
                self._raise_unavailable(f"HTTP {status}", failing=True)
            raise StoreError(
                f"the object store at {self.endpoint} gave an unexpected answer (HTTP {status})",
                "check that SILKPURSE_S3_ENDPOINT is an S3 server",
            ) from None
        except (urllib3.exceptions.HTTPError, ConnectionError) as err:
            self._raise_unavailable(self._reason(err))

    def _raise_s3(self, err: S3Error, key: str | None) -> NoReturn:
        status = err.response.status if err.response is not None else None
        if err.code == "NoSuchKey" and key is not None:
            raise StoreError(f"{key} is not in the store", "run the producing stage first") from None
        if err.code == "NoSuchBucket":
            raise StoreError(
                f"bucket {self.bucket} does not exist at {self.endpoint}", "check SILKPURSE_S3_BUCKET"
            ) from None
        if err.code in _CREDENTIAL_CODES:
            raise StoreError(
                f"the object store at {self.endpoint} refused access to bucket {self.bucket} ({err.code})",
                _CHECK_CREDENTIALS,
            ) from None
        if err.code == "BucketAlreadyExists":
            raise StoreError(
                f"bucket {self.bucket} belongs to another account at {self.endpoint}",
                "choose another SILKPURSE_S3_BUCKET",
            ) from None
        if err.code in _BUSY_CODES or (status is not None and status >= 500):
            self._raise_unavailable(str(err.code), failing=True)
        what = key if key is not None else f"bucket {self.bucket}"
        raise StoreError(f"the object store at {self.endpoint} refused {what} ({err.code}: {err.message})") from None

    def _raise_unavailable(self, reason: str, *, failing: bool = False) -> NoReturn:
        tries = f"{self.retries + 1} tries" if self.retries else "1 try"
        state = "is failing" if failing else "is not reachable"  # a 5xx answer, or no answer
        raise StoreUnavailableError(
            f"the object store at {self.endpoint} {state} ({reason}, {tries})",
            "retry later or check the server" if failing else _CHECK_ENDPOINT,
        ) from None

    def _reason(self, err: Exception) -> str:
        if isinstance(err, MaxRetryError) and err.reason is not None:
            err = err.reason
        if isinstance(err, NameResolutionError):
            return "unknown host"
        if isinstance(err, NewConnectionError):
            return "connection refused" if "refused" in str(err).lower() else "cannot connect"
        if isinstance(err, ConnectTimeoutError):
            return "connection timed out"
        if isinstance(err, ReadTimeoutError):
            return f"no answer within {self.timeout_s:g} s"
        if isinstance(err, ResponseError):
            return str(err)
        if isinstance(err, (ProtocolError, ConnectionError)):
            return "connection dropped"
        return type(err).__name__


def _status_of(err: InvalidResponseError) -> int | None:
    code = getattr(err, "_code", None)  # the SDK keeps the HTTP status there (no public accessor)
    return code if isinstance(code, int) else None
