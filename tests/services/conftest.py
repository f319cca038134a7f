"""The four services as real processes (``silkpurse serve ...``) on free loopback ports,
sharing the session's real S3 server (``s3``), started once per session and ready when health
says so."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from s3_server import S3Server

from silkpurse.service.settings import ServiceSettings
from silkpurse.store import BatchStore, open_store

STAGES = ("extractor", "upscaler", "interpolator", "encoder")
START_TIMEOUT_S = 120.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    stage: str
    port: int
    metrics_port: int
    process: subprocess.Popen[bytes]
    log: Path
    started: float
    statuses: list[str] = field(default_factory=list)
    """Health answers seen while waiting, in order (deduplicated)."""
    ready_s: float = 0.0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def metrics(self) -> dict[str, float]:
        """The metrics endpoint's samples, ``name{labels}`` -> value."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as response:
            text = response.read().decode()
        samples = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                samples[name] = float(value)
        return samples

    def metric(self, name: str, **labels: str) -> float:
        wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        for key, value in self.metrics().items():
            base, _, rest = key.partition("{")
            got = ",".join(sorted(re.findall(r'\w+="[^"]*"', rest)))
            if base == name and got == wanted:
                return value
        return 0.0

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def start(stage: str, log_dir: Path, env: dict[str, str], *args: str) -> Server:
    port, metrics_port = free_port(), free_port()
    log = log_dir / f"{stage}-{port}.log"
    command = [sys.executable, "-m", "silkpurse_cli", "serve", stage, "--port", str(port)]
    command += ["--metrics-port", str(metrics_port), *args]
    if stage in ("upscaler", "interpolator"):
        command += ["--device", "cpu"]
    with log.open("wb") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env)
    return Server(stage, port, metrics_port, process, log, time.perf_counter())


def health_status(address: str, service: str = "") -> str:
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=1)
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))


def wait_serving(*servers: Server) -> None:
    """Poll the health of all ``servers`` at once until each says SERVING, noting what they said."""
    deadline = time.perf_counter() + START_TIMEOUT_S
    waiting = list(servers)
    while waiting and time.perf_counter() < deadline:
        for server in list(waiting):
            if server.process.poll() is not None:
                pytest.fail(f"{server.stage} exited with {server.process.returncode}:\n{server.log_text()[-3000:]}")
            try:
                status = health_status(server.address)
            except grpc.RpcError:
                status = "NO_ANSWER"
            if not server.statuses or server.statuses[-1] != status:
                server.statuses.append(status)
            if status == "SERVING":
                server.ready_s = time.perf_counter() - server.started
                waiting.remove(server)
        time.sleep(0.05)
    for server in waiting:
        pytest.fail(f"{server.stage} not SERVING within {START_TIMEOUT_S} s:\n{server.log_text()[-3000:]}")


def stop(server: Server) -> None:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(30)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


@dataclass
class Services:
    servers: dict[str, Server]
    s3: S3Server
    env: dict[str, str]
    """The services' environment (the S3 settings among it)."""
    log_dir: Path
    store: BatchStore
    """The store the services share, as this process sees it."""

    def __getitem__(self, stage: str) -> Server:
        return self.servers[stage]


def service_env(root: Path, s3: S3Server, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(s3.env())
    env.update(
        SILKPURSE_WORK_DIR=str(root / "work"),
        # Fail fast when S3 is down (the tests take it down on purpose): 1 retry, 2 s timeout.
        SILKPURSE_S3_RETRIES="1",
        SILKPURSE_S3_TIMEOUT_S="2",
        SILKPURSE_SHUTDOWN_GRACE_S="20",
        SILKPURSE_LOG_FORMAT="json",
        OMP_NUM_THREADS="1",
    )
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def services(s3: S3Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    """The four services on the session's S3 server; each with its own scratch folder."""
    root = tmp_path_factory.mktemp("services")
    log_dir = root / "logs"
    log_dir.mkdir()
    base = service_env(root, s3)
    store = open_store(
        ServiceSettings(
            s3_endpoint=s3.endpoint,
            s3_access_key=s3.access_key,
            s3_secret_key=s3.secret_key,
            s3_bucket=s3.bucket,
            s3_secure=False,
        )
    )
    servers = {}
    for stage in STAGES:
        env = {**base, "SILKPURSE_WORK_DIR": str(root / f"work-{stage}")}
        servers[stage] = start(stage, log_dir, env)
    try:
        wait_serving(*servers.values())
        yield Services(servers, s3, base, log_dir, store)
    finally:
        for server in servers.values():
            stop(server)


@dataclass
class FlowWorker:
    """``silkpurse-orchestrator serve``: the served enhance-video/default deployment."""

    process: subprocess.Popen[bytes]
    log: Path
    env: dict[str, str]

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def flow_env(services: Services, **extra: str) -> dict[str, str]:
    """What a flow run needs: the services' addresses, the store, the Prefect server."""
    env = {**services.env, **{f"SILKPURSE_{stage.upper()}_ADDR": services[stage].address for stage in STAGES}}
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def flow_worker(services: Services, prefect: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlowWorker]:
    from prefect import get_client
    from prefect.exceptions import ObjectNotFound

    root = tmp_path_factory.mktemp("flow-worker")
    # Poll for scheduled and cancelled runs every second (Prefect's default: 10 s).
    env = flow_env(services, SILKPURSE_WORK_DIR=str(root / "work"), PREFECT_RUNNER_POLL_FREQUENCY="1")
    log = services.log_dir / "flow-worker.log"
    command = [str(Path(sys.executable).with_name("silkpurse-orchestrator")), "serve", "--runs", "2"]
    with log.open("wb") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env)
    worker = FlowWorker(process, log, env)
    deadline = time.perf_counter() + START_TIMEOUT_S
    try:
        with get_client(sync_client=True) as client:
            while True:
                if process.poll() is not None or time.perf_counter() > deadline:
                    pytest.fail(f"the flow worker did not serve its deployment:\n{worker.log_text()[-3000:]}")
                try:
                    client.read_deployment_by_name("enhance-video/default")
                    break
                except ObjectNotFound:
                    time.sleep(0.3)
        yield worker
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)  # the runner ignores SIGTERM for a while
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
