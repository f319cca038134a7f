"""An interrupted enhance resumes from the segments and batches it finished, and jobs keep
their work apart."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from tests.conftest import decode_rgb

from silkpurse.errors import StoreError
from silkpurse.plan import JobOptions
from silkpurse.progress import SilentReporter
from silkpurse_cli.embedded import Pipeline, RunOptions


class InterruptAfter(SilentReporter):
    """Simulates Ctrl-C once ``limit`` batches were computed by ``stage``."""

    def __init__(self, stage: str, limit: int) -> None:
        self.stage_name, self.limit, self.seen = stage, limit, 0

    def advance(self, name: str, frames: int, *, resumed: bool = False) -> None:
        if name == self.stage_name and not resumed:
            self.seen += 1
            if self.seen == self.limit:
                raise KeyboardInterrupt


JOB = JobOptions(scale=2, interpolate=2, batch_size=4, chunk_frames=12)


@pytest.fixture
def run(tmp_path: Path) -> RunOptions:
    return RunOptions(work_dir=tmp_path / "work", device="cpu")


def test_resume_recomputes_no_finished_segment_or_batch(clip_with_audio: Path, tmp_path: Path, run: RunOptions) -> None:
    output = tmp_path / "out.mp4"
    # 30 frames in chunks of 12, 12 and 6; stop in the second chunk's interpolation.
    with pytest.raises(KeyboardInterrupt):
        Pipeline(clip_with_audio, output, JOB, run, reporter=InterruptAfter("interpolate", 5)).run()
    assert not output.exists()
    assert not list(tmp_path.glob(".out.*"))
    finished = len(list((tmp_path / "work").rglob("*.safetensors")))
    assert finished >= 3  # the second chunk's finished batches (the first chunk's were dropped with its segment)
    # Chunks whose segment is stored (their batches were dropped with it).
    encoded = {p.name[:6] for p in (tmp_path / "work").rglob("segments/c*.mkv")}

    resumed = Pipeline(clip_with_audio, output, JOB, run).run()
    # The interrupt is raised in a model thread: the other threads may finish a chunk more
    # before the walk stops, so count what was there rather than assume where it stopped.
    assert resumed.segments_resumed >= 1 and resumed.segments_resumed + resumed.segments_computed == 3
    assert resumed.batches_resumed == finished  # every finished batch reused, none recomputed
    assert resumed.frames_out == 60
    assert not list((tmp_path / "work").rglob("*.safetensors"))  # removed after success

    fresh = Pipeline(clip_with_audio, tmp_path / "fresh.mp4", JOB, run).run()
    assert fresh.batches_resumed == fresh.segments_resumed == 0
    steps = fresh_steps(tmp_path, clip_with_audio, run)
    assert len(encoded) == resumed.segments_resumed
    skipped_batches = len([s for s in steps if s[:6] in encoded])
    assert resumed.batches_computed + resumed.batches_resumed + skipped_batches == fresh.batches_computed
    assert np.array_equal(decode_rgb(output), decode_rgb(tmp_path / "fresh.mp4"))


def fresh_steps(tmp_path: Path, source: Path, run: RunOptions) -> list[str]:
    """Ids of the batch-level steps (one stored batch each) of the test job's plan."""
    plan = Pipeline(source, tmp_path / "plan.mp4", JOB, run).plan
    extracted = [f"{c.name}/extract/{b.name}" for c in plan.chunks for b in c.batches]
    return extracted + [s.id for s in plan.steps if s.stage in ("upscale", "interpolate")]


def test_keep_work_keeps_the_segments_and_batches(clip_with_audio: Path, tmp_path: Path, run: RunOptions) -> None:
    keep = replace(run, keep_work=True)
    job = replace(JOB, scale=1)
    Pipeline(clip_with_audio, tmp_path / "out.mp4", job, keep).run()
    assert list((tmp_path / "work").rglob("*.safetensors"))
    again = Pipeline(clip_with_audio, tmp_path / "again.mp4", job, keep).run()
    assert again.segments_resumed == 3 and again.segments_computed == again.batches_computed == 0


def test_two_jobs_on_one_input_keep_separate_work(clip_with_audio: Path, tmp_path: Path, run: RunOptions) -> None:
    keep = replace(run, keep_work=True)
    first = Pipeline(clip_with_audio, tmp_path / "a.mp4", replace(JOB, scale=1, crf=30), keep)
    second = Pipeline(clip_with_audio, tmp_path / "b.mp4", replace(JOB, scale=1, crf=20), keep)
    assert first.plan.job != second.plan.job
    first.run()
    second.run()
    work = tmp_path / "work"
    assert (work / first.plan.job).is_dir() and (work / second.plan.job).is_dir()
    # Finishing a job without --keep-work removes its own work only.
    Pipeline(clip_with_audio, tmp_path / "c.mp4", replace(JOB, scale=1, crf=30), run).run()
    assert not (work / first.plan.job).exists() and (work / second.plan.job).is_dir()


def test_a_job_whose_chunks_cannot_fit_the_work_disk_fails_before_any_work(
    clip_with_audio: Path, tmp_path: Path, run: RunOptions, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline = Pipeline(clip_with_audio, tmp_path / "out.mp4", JOB, run)
    # A chunk of 12 frames (+1 overlap) at 96x64, upscaled to 192x128, and its 24 interpolated outputs.
    assert pipeline.plan.work_bytes_per_chunk == 13 * 96 * 64 * 3 + 13 * 192 * 128 * 3 + 24 * 192 * 128 * 3
    monkeypatch.setattr(shutil, "disk_usage", lambda _path: SimpleNamespace(total=10**9, used=10**9, free=1000))
    with pytest.raises(StoreError, match="only 0.0 GB are free"):
        pipeline.run()
    assert not (tmp_path / "out.mp4").exists() and not list(tmp_path.glob(".out.*"))


def test_the_same_job_twice_at_once_is_refused(clip_with_audio: Path, tmp_path: Path, run: RunOptions) -> None:
    from silkpurse_cli.embedded import _job_lock

    pipeline = Pipeline(clip_with_audio, tmp_path / "out.mp4", replace(JOB, scale=1), run)
    with _job_lock(run.work_dir, pipeline.plan.job), pytest.raises(StoreError, match="another silkpurse run"):  # type: ignore[arg-type]
        pipeline.run()


def test_a_killed_run_resumes_without_recomputing(clip_with_audio: Path, tmp_path: Path) -> None:
    """SIGKILL (no clean-up at all) after the first segment is stored; the same command again
    reuses every segment and batch that reached the store and leaves nothing behind."""
    work, output = tmp_path / "work", tmp_path / "out.mp4"
    command = [
        sys.executable,
        "-m",
        "silkpurse_cli",
        "enhance",
        str(clip_with_audio),
        "-o",
        str(output),
        "--chunk-frames",
        "12",
        "--batch-size",
        "4",
        "--work-dir",
        str(work),
        "--device",
        "cpu",
        "--json",
        "-q",
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not list(work.glob("*/segments/*.mkv")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.kill()
    process.wait()
    finished_chunks = {p.name.split("-")[0] for p in work.glob("*/segments/*.mkv")}
    segments = len(finished_chunks)
    # Batches of chunks still to encode (a finished chunk's may outlive its segment by a moment).
    batches = len([p for p in work.rglob("*.safetensors") if p.parent.parent.name not in finished_chunks])
    assert segments >= 1 and not output.exists()

    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=True)
    summary = json.loads(result.stdout)
    assert summary["segments_resumed"] == segments
    assert summary["batches_resumed"] == batches
    assert summary["frames_out"] == 60
    assert not [p for p in work.rglob("*") if p.is_file()]  # no batch, segment, scratch or lock file left


def test_a_corrupt_stored_batch_is_recomputed_with_a_warning(
    clip_with_audio: Path, tmp_path: Path, run: RunOptions, caplog: pytest.LogCaptureFixture
) -> None:
    keep = replace(run, keep_work=True)
    first = Pipeline(clip_with_audio, tmp_path / "a.mp4", JOB, keep)
    first.run()
    work = tmp_path / "work" / first.plan.job
    shutil.rmtree(work / "segments")  # make the next run go down to the batches
    victim = sorted(work.glob("c00001/upscale-*/*.safetensors"))[0]
    data = bytearray(victim.read_bytes())
    data[-100] ^= 0xFF
    victim.write_bytes(bytes(data))

    again = Pipeline(clip_with_audio, tmp_path / "b.mp4", JOB, keep).run()
    assert again.batches_computed == 1  # only the corrupt batch; everything built on it was intact
    assert any("recomputing" in r.message and victim.name in r.message for r in caplog.records)
    assert np.array_equal(decode_rgb(tmp_path / "a.mp4"), decode_rgb(tmp_path / "b.mp4"))
