"""A real Prefect server for the test session (``prefect server start`` on a loopback port, with
its own PREFECT_HOME and SQLite database), and a served ``enhance-video/default`` deployment.

The test process talks to it through ``PREFECT_API_URL``, which must be set before Prefect is
first imported (Prefect reads its settings once); :func:`configure` does that at conftest import.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

START_TIMEOUT_S = 120.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def configure() -> dict[str, str]:
    """Point this process (and its children) at the session's Prefect server, not ~/.prefect."""
    if "SILKPURSE_TEST_PREFECT_PORT" not in os.environ:
        home = Path(tempfile.mkdtemp(prefix="prefect-home-"))
        port = _free_port()
        os.environ.update(
            SILKPURSE_TEST_PREFECT_PORT=str(port),
            PREFECT_HOME=str(home),
            PREFECT_API_URL=f"http://127.0.0.1:{port}/api",
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            DO_NOT_TRACK="1",
            PREFECT_SERVER_UI_ENABLED="false",
            PREFECT_LOGGING_LEVEL="WARNING",
            PREFECT_SERVER_LOGGING_LEVEL="WARNING",
        )
    return {k: v for k, v in os.environ.items() if k.startswith(("PREFECT_", "DO_NOT_TRACK"))}


@dataclass
class PrefectServer:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def start_prefect_server(log_dir: Path, *, services: bool = True) -> PrefectServer:
    """``prefect server start`` on the configured port, by default with its services (as a
    deployment runs it: its task run recorder writes the flow's task runs)."""
    configure()
    port = os.environ["SILKPURSE_TEST_PREFECT_PORT"]
    url = os.environ["PREFECT_API_URL"]
    log = log_dir / "prefect-server.log"
    prefect = Path(sys.executable).with_name("prefect")
    with log.open("wb") as handle:
        process = subprocess.Popen(
            [str(prefect), "server", "start", "--host", "127.0.0.1", "--port", port]
            + ([] if services else ["--no-services"]),
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=dict(os.environ),
        )
    server = PrefectServer(url, process, log)
    deadline = time.monotonic() + START_TIMEOUT_S
    while not healthy(url):
        if process.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"the Prefect server did not start:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.2)
    return server
