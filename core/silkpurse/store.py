"""Batch stores: where frame batches and segments live between stages, under the job plan's keys.

A key names what an object *is* (see :mod:`silkpurse.plan`), so the same work always lands on
the same key and finished work is found again after an interruption, by any runner. Keys are
validated before any store touches them: relative, no ``..``, no hidden or empty segments.
:class:`LocalStore` is the embedded mode's store (a work directory); the services use the
same interface over S3/MinIO (:class:`silkpurse.s3.S3Store`). :func:`open_store` picks one from
the settings, so a runner gets a store without knowing where the bytes live.

Errors: a missing or corrupt object is a :class:`StoreError` (permanent: recompute it); a
store that does not answer is a :class:`StoreUnavailableError` (retryable).
"""

from __future__ import annotations

import logging
import re
import shutil
from abc import ABC, abstractmethod
from pathlib import Path

from silkpurse.batch import FrameBatch
from silkpurse.errors import StoreError, StoreUnavailableError
from silkpurse.files import write_atomically
from silkpurse.settings import Settings

log = logging.getLogger(__name__)
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._=-]{0,127}(/[A-Za-z0-9][A-Za-z0-9._=-]{0,127}){0,7}$")


def validate_key(key: str) -> str:
    """Accept only plain relative keys: no empty, ``.``/``..`` or hidden segments."""
    if not isinstance(key, str) or not _KEY.fullmatch(key) or any(part in (".", "..") for part in key.split("/")):
        raise StoreError(f"invalid batch key {key!r}", "keys are relative paths of letters, digits and ._=-")
    return key


class BatchStore(ABC):
    """Bytes and files under keys; batches are encoded, bound to their key and verified."""

    @abstractmethod
    def put(self, key: str, data: bytes) -> None: ...

    @abstractmethod
    def get(self, key: str) -> bytes: ...

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def delete_prefix(self, prefix: str) -> None:
        """Remove every object under ``prefix/`` (a whole path segment, never a partial name)."""

    @abstractmethod
    def upload(self, key: str, path: Path) -> None:
        """Store the file at ``path`` under ``key`` (segments: large, written by ffmpeg)."""

    @abstractmethod
    def download(self, key: str, path: Path) -> None:
        """Write the object under ``key`` to ``path``."""

    def put_batch(self, key: str, batch: FrameBatch) -> None:
        self.put(key, batch.to_bytes(key=validate_key(key)))

    def get_batch(self, key: str) -> FrameBatch:
        return FrameBatch.from_bytes(self.get(key), what=f"batch {key}", key=key)


class LocalStore(BatchStore):
    """Objects as files under a directory; each write is atomic (temp file, then rename)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StoreError(
                f"cannot create work directory {root} ({err.strerror})", "set --work-dir or SILKPURSE_WORK_DIR"
            ) from None

    def path(self, key: str) -> Path:
        return self.root / validate_key(key)

    def put(self, key: str, data: bytes) -> None:
        self._write(key, lambda tmp: tmp.write_bytes(data))

    def get(self, key: str) -> bytes:
        try:
            return self.path(key).read_bytes()
        except FileNotFoundError:
            raise StoreError(f"{key} is not in the store", "run the producing stage first") from None

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def delete_prefix(self, prefix: str) -> None:
        shutil.rmtree(self.path(prefix), ignore_errors=True)

    def upload(self, key: str, path: Path) -> None:
        self._write(key, lambda tmp: shutil.copyfile(path, tmp))

    def download(self, key: str, path: Path) -> None:
        try:
            shutil.copyfile(self.path(key), path)
        except FileNotFoundError:
            raise StoreError(f"{key} is not in the store", "run the producing stage first") from None

    def _write(self, key: str, write: object) -> None:
        try:
            write_atomically(self.path(key), write)  # type: ignore[arg-type]
        except OSError as err:
            raise StoreError(
                f"cannot write {key} to {self.root} ({err.strerror})", "free disk space or choose another --work-dir"
            ) from None


def finished_batch(store: BatchStore, key: str) -> FrameBatch | None:
    """The batch a previous run finished under ``key``, or ``None`` when it must be computed:
    absent, or present but corrupt or written for another key (then it is recomputed, with a
    warning, rather than failing the job). A store that does not answer still raises."""
    if not store.exists(key):
        return None
    try:
        return store.get_batch(key)
    except StoreUnavailableError:
        raise
    except StoreError as err:
        log.warning("recomputing %s: %s", key, err)
        return None


def open_store(settings: Settings) -> BatchStore:
    """The configured store: S3/MinIO when ``SILKPURSE_S3_ENDPOINT`` is set, else a directory
    (``SILKPURSE_STORE_DIR``, default the work directory; every process on one machine that
    names the same directory shares it).

    The S3 store (and the ``minio`` SDK) is imported only when configured."""
    if settings.s3_endpoint:
        from silkpurse.s3 import S3Store

        return S3Store.from_settings(settings)
    return LocalStore(settings.store_dir or settings.work_dir)
