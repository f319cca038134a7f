"""S3Store against a real S3 server (the session's ``s3`` fixture: MinIO or SeaweedFS)."""

from __future__ import annotations

import http.server
import io
import os
import threading
import time
import uuid
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from minio import Minio
from s3_server import S3Server, free_ports

from silkpurse.batch import FrameBatch
from silkpurse.errors import StoreError, StoreUnavailableError
from silkpurse.s3 import CHECKSUM_META, S3Store
from silkpurse.settings import Settings
from silkpurse.store import LocalStore, finished_batch, open_store

MIB = 1 << 20


def make_store(s3: S3Server, **options: object) -> S3Store:
    return S3Store(s3.endpoint, s3.access_key, s3.secret_key, s3.bucket, secure=False, **options)  # type: ignore[arg-type]


@pytest.fixture
def store(s3: S3Server) -> S3Store:
    return make_store(s3, part_size_mib=5)


@pytest.fixture
def raw(s3: S3Server) -> Minio:
    """The SDK without silkpurse in between, to tamper with objects."""
    return Minio(s3.endpoint, access_key=s3.access_key, secret_key=s3.secret_key, secure=False)


@pytest.fixture
def job() -> str:
    """A prefix of its own for each test: the server is shared by the session."""
    return f"job-{uuid.uuid4().hex[:10]}"


def a_batch(start: int = 0) -> FrameBatch:
    return FrameBatch(np.arange(2 * 4 * 6 * 3, dtype=np.uint8).reshape(2, 4, 6, 3), start, Fraction(25))


def test_bytes_round_trip_and_exists(store: S3Store, job: str) -> None:
    assert not store.exists(f"{job}/a.bin")
    store.put(f"{job}/a.bin", b"silk purse")
    assert store.exists(f"{job}/a.bin")
    assert store.get(f"{job}/a.bin") == b"silk purse"
    store.put(f"{job}/empty", b"")
    assert store.get(f"{job}/empty") == b""
    with pytest.raises(StoreError, match=f"{job}/missing is not in the store"):
        store.get(f"{job}/missing")


def test_batches_round_trip_and_stay_bound_to_their_key(store: S3Store, job: str) -> None:
    key, other = f"{job}/up-1/f00000000.safetensors", f"{job}/up-1/f00000008.safetensors"
    store.put_batch(key, a_batch())
    got = store.get_batch(key)
    assert np.array_equal(got.frames, a_batch().frames) and got.first_index == 0 and got.rate == Fraction(25)
    store.put(other, store.get(key))  # the same bytes under another key: valid object, wrong binding
    with pytest.raises(StoreError, match="written for key"):
        store.get_batch(other)
    assert finished_batch(store, other) is None  # recomputed, not trusted


def test_large_objects_go_up_in_parts_and_come_back_verified(
    store: S3Store, raw: Minio, s3: S3Server, job: str, tmp_path: Path
) -> None:
    data = os.urandom(11 * MIB)  # three 5 MiB parts
    source = tmp_path / "segment.mp4"
    source.write_bytes(data)
    store.upload(f"{job}/seg.mp4", source)
    assert raw.stat_object(s3.bucket, f"{job}/seg.mp4").etag.endswith("-3")  # a multipart upload
    store.download(f"{job}/seg.mp4", tmp_path / "out" / "seg.mp4")
    assert (tmp_path / "out" / "seg.mp4").read_bytes() == data
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["seg.mp4"]  # no temporary file left

    store.put(f"{job}/big.bin", data)
    assert raw.stat_object(s3.bucket, f"{job}/big.bin").etag.endswith("-3")
    assert store.get(f"{job}/big.bin") == data


def test_delete_prefix_removes_exactly_its_prefix(store: S3Store, job: str) -> None:
    for key in ("c1/a", "c1/deep/er/b", "c10/a", "c1x", "c2/a"):
        store.put(f"{job}/{key}", b"x")
    store.delete_prefix(f"{job}/c1")
    assert not store.exists(f"{job}/c1/a") and not store.exists(f"{job}/c1/deep/er/b")
    assert all(store.exists(f"{job}/{key}") for key in ("c10/a", "c1x", "c2/a"))
    store.delete_prefix(f"{job}/nothing-here")  # an empty prefix is fine


@pytest.mark.parametrize("key", ["../etc/passwd", "a/../b", "/abs", "a//b", ".hidden", "a b"])
def test_unsafe_keys_are_refused_before_any_request(key: str, tmp_path: Path) -> None:
    # No server on this port: any request would fail as "not reachable" instead.
    nowhere = S3Store(f"127.0.0.1:{free_ports(1)[0]}", "k", "s", secure=False, retries=0)
    calls = [
        lambda: nowhere.put(key, b"x"),
        lambda: nowhere.get(key),
        lambda: nowhere.exists(key),
        lambda: nowhere.delete_prefix(key),
        lambda: nowhere.upload(key, tmp_path),
        lambda: nowhere.download(key, tmp_path / "x"),
        lambda: nowhere.put_batch(key, a_batch()),
    ]
    for call in calls:
        with pytest.raises(StoreError, match="invalid batch key"):
            call()


@pytest.mark.parametrize("keep_checksum", [True, False], ids=["checksum-kept", "checksum-dropped"])
def test_a_corrupted_object_is_refused_naming_its_key(
    store: S3Store, raw: Minio, s3: S3Server, job: str, tmp_path: Path, keep_checksum: bool
) -> None:
    key = f"{job}/seg-0001.mp4"
    store.put(key, b"the real segment")
    meta = raw.stat_object(s3.bucket, key).metadata
    checksum = meta[f"x-amz-meta-{CHECKSUM_META}"]
    other = b"the real segmenT"
    raw.put_object(
        s3.bucket, key, io.BytesIO(other), len(other), metadata={CHECKSUM_META: checksum} if keep_checksum else None
    )
    with pytest.raises(StoreError, match=key) as err:
        store.get(key)
    assert not err.value.retryable
    target = tmp_path / "seg.mp4"
    with pytest.raises(StoreError, match=key):
        store.download(key, target)
    assert not target.exists() and not list(tmp_path.iterdir())  # nothing corrupt appears


@pytest.mark.parametrize("which", ["secret", "access"])
def test_wrong_credentials_are_permanent_and_never_printed(s3: S3Server, which: str) -> None:
    wrong = f"wrong-{uuid.uuid4().hex}"
    access, secret = (s3.access_key, wrong) if which == "secret" else (wrong, s3.secret_key)
    bad = S3Store(s3.endpoint, access, secret, s3.bucket, secure=False)
    started = time.monotonic()
    with pytest.raises(StoreError, match="SILKPURSE_S3_SECRET_KEY") as err:
        bad.get("job/anything")
    assert time.monotonic() - started < 2  # not retried
    assert not err.value.retryable and "\n" not in str(err.value)
    assert wrong not in str(err.value) and s3.secret_key not in str(err.value)
    env_settings = Settings(s3_endpoint=s3.endpoint, s3_access_key=access, s3_secret_key=secret)  # type: ignore[arg-type]
    assert secret not in repr(env_settings) and secret not in repr(bad) and secret not in repr(vars(bad))


def test_a_stopped_server_is_unavailable_in_bounded_time_then_the_same_store_works_again(
    s3: S3Server, job: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in s3.env().items():
        monkeypatch.setenv(name, value)
    store = S3Store.from_settings(Settings())  # the default retries and timeouts
    store.put(f"{job}/kept", b"survives")
    s3.stop()
    try:
        started = time.monotonic()
        with pytest.raises(StoreUnavailableError, match="SILKPURSE_S3_ENDPOINT") as err:
            store.exists(f"{job}/kept")
        elapsed = time.monotonic() - started
        assert err.value.retryable and s3.endpoint in str(err.value)
        assert 1 < elapsed < 10, elapsed  # retried with backoff, and bounded
    finally:
        s3.start()
    assert store.get(f"{job}/kept") == b"survives"
    store.put(f"{job}/after", b"back")
    assert store.exists(f"{job}/after")


class _SlowDown(http.server.BaseHTTPRequestHandler):
    """An S3 endpoint that always answers 503 SlowDown, counting requests."""

    requests = 0

    def _answer(self) -> None:
        type(self).requests += 1
        body = b"<?xml version='1.0'?><Error><Code>SlowDown</Code><Message>Reduce your request rate.</Message></Error>"
        self.send_response(503)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_HEAD = do_PUT = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def slow_down_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SlowDown)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _SlowDown.requests = 0
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_slow_down_answers_are_retried_with_backoff_then_unavailable(slow_down_server: str) -> None:
    store = S3Store(slow_down_server, "k", "s", "silkpurse", secure=False, region="us-east-1", retries=2)
    with pytest.raises(StoreUnavailableError, match=r"is failing \((HTTP 503|SlowDown), 3 tries\)"):
        store.get("job/batch")
    assert _SlowDown.requests == 3  # one try and two retries (a HEAD has no body: "HTTP 503")


def test_the_bucket_is_created_once_and_a_racing_creator_is_tolerated(
    s3: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = f"fresh-{uuid.uuid4().hex[:12]}"
    stores = [S3Store(s3.endpoint, s3.access_key, s3.secret_key, bucket, secure=False) for _ in range(3)]
    errors: list[BaseException] = []

    def write(store: S3Store, n: int) -> None:
        try:
            store.put(f"job/{n}", b"x")
        except BaseException as err:  # collected for the assertion below
            errors.append(err)

    threads = [threading.Thread(target=write, args=(s, n)) for n, s in enumerate(stores[:2])]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    # The third store saw no bucket, then lost the race to create it:
    monkeypatch.setattr(stores[2]._client, "bucket_exists", lambda name: False)
    stores[2].put("job/2", b"x")
    assert all(stores[0].exists(f"job/{n}") for n in range(3))


def test_open_store_picks_s3_when_an_endpoint_is_configured(
    s3: S3Server, job: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name, value in s3.env().items():
        monkeypatch.setenv(name, value)
    store = open_store(Settings())
    assert isinstance(store, S3Store) and store.bucket == s3.bucket and not store.secure
    store.put_batch(f"{job}/b", a_batch(8))
    assert store.get_batch(f"{job}/b").first_index == 8
    monkeypatch.delenv("SILKPURSE_S3_ENDPOINT")
    assert isinstance(open_store(Settings(work_dir=tmp_path)), LocalStore)


def test_secure_defaults_to_https_except_on_loopback() -> None:
    assert not S3Store("127.0.0.1:9000", None, None).secure
    assert not S3Store("localhost:9000", None, None).secure
    assert S3Store("minio:9000", None, None).secure
    assert not S3Store("minio:9000", None, None, secure=False).secure
    with pytest.raises(StoreError, match="host:port"):
        S3Store("http://127.0.0.1:9000", None, None)
