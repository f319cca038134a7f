"""The container smoke test of issue #10: scripts/container-smoke builds every image on a local
Debian base, brings the compose stack up (SeaweedFS standing in for MinIO) and runs one real job
through the containers (docs/deployment.md, "Container smoke test").

Skipped, with the script's reason, where no Docker engine runs or can be started (not root, no
dockerd, a sandbox without the kernel features); skipped too with SILKPURSE_CONTAINER_SMOKE=skip
(e.g. `SILKPURSE_CONTAINER_SMOKE=skip bash scripts/test` for a quicker local run). About 11 min
on a busy 2-core machine with cold caches, 2 min with the images built and unchanged.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "container-smoke"
EXIT_SKIPPED = 77
LIMIT_S = 1800

pytestmark = [pytest.mark.slow, pytest.mark.container]


@pytest.mark.timeout(LIMIT_S + 60)
def test_images_build_and_the_stack_runs_a_job() -> None:
    if os.environ.get("SILKPURSE_CONTAINER_SMOKE") == "skip":
        pytest.skip("SILKPURSE_CONTAINER_SMOKE=skip")
    with subprocess.Popen(
        [sys.executable, str(SCRIPT)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        try:
            out, err = proc.communicate(timeout=LIMIT_S)
        except subprocess.TimeoutExpired:
            proc.terminate()  # SIGTERM: the script takes its stack down and stops the dockerd it started
            out, err = proc.communicate(timeout=180)
            pytest.fail(f"container smoke: over {LIMIT_S} s\n{err[-6000:]}")
    lines = out.strip().splitlines()
    line = lines[-1] if lines else "(no output)"
    if proc.returncode == EXIT_SKIPPED:
        pytest.skip(line.removeprefix("container smoke: "))
    assert proc.returncode == 0, f"{line}\n{err[-6000:]}"
    assert line.startswith("container smoke: passed"), line
    print(line)  # the steps' times (pytest -rP shows it)
