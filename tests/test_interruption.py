"""SIGTERM is handled like Ctrl-C: the partial output and the lock are removed, the process exits
143, and the same command resumes from the finished batches. Through the real command line."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest
from tests.cli_testing import hidden_leftovers, run_cli, start_cli
from tests.conftest import ClipFactory

from silkpurse.media.probe import probe


@pytest.fixture(scope="module")
def medium_clip(make_clip: ClipFactory) -> Path:
    """160x120, 30 fps, 1 s."""
    return make_clip("rel160.mp4", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=30:duration=1", "-c:v", "libx264")


@pytest.mark.slow
def test_sigterm_removes_the_partial_output_and_the_run_resumes(medium_clip: Path, tmp_path: Path) -> None:
    output, work = tmp_path / "out.mp4", tmp_path / "work"
    args = ["enhance", str(medium_clip), "-o", str(output), "--work-dir", str(work)]
    args += ["--scale", "2", "--interpolate", "1", "--batch-size", "1", "--device", "cpu"]
    run = start_cli(*args, "-q")
    deadline = time.monotonic() + 120
    while len(list(work.rglob("*.safetensors"))) < 3 and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert run.poll() is None, "the run ended before it could be terminated"
    run.send_signal(signal.SIGTERM)
    _, stderr = run.communicate(timeout=60)

    assert run.returncode == 143, stderr
    assert "Traceback" not in stderr and "terminated; run the same command again to resume" in stderr
    assert not output.exists()
    assert hidden_leftovers(tmp_path, "out") == []  # no partial file, no lock
    stored = len(list(work.rglob("*.safetensors")))
    assert stored >= 3

    again = run_cli(*args, "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["batches_resumed"] >= 3
    assert probe(output, limits=False).frame_count == 30
    assert hidden_leftovers(tmp_path, "out") == []
