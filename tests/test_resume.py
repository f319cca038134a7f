"""An interrupted enhance resumes from the batches it finished."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from tests.conftest import decode_rgb

from silkpurse.errors import StoreError
from silkpurse.progress import SilentReporter
from silkpurse_cli.embedded import EnhanceOptions, Pipeline


class InterruptAfter(SilentReporter):
    """Simulates Ctrl-C once ``limit`` batches were computed by ``stage``."""

    def __init__(self, stage: str, limit: int) -> None:
        self.stage_name, self.limit, self.seen = stage, limit, 0

    def advance(self, name: str, frames: int, *, resumed: bool = False) -> None:
        if name == self.stage_name and not resumed:
            self.seen += 1
            if self.seen == self.limit:
                raise KeyboardInterrupt


@pytest.fixture
def options(tmp_path: Path) -> EnhanceOptions:
    return EnhanceOptions(scale=2, interpolate=2, batch_size=8, work_dir=tmp_path / "work", device="cpu")


def test_resume_skips_finished_batches(clip_with_audio: Path, tmp_path: Path, options: EnhanceOptions) -> None:
    output = tmp_path / "out.mp4"
    with pytest.raises(KeyboardInterrupt):
        Pipeline(clip_with_audio, output, options, reporter=InterruptAfter("interpolate", 2)).run()
    assert not output.exists()
    assert not list(tmp_path.glob(".out.partial*"))

    resumed = Pipeline(clip_with_audio, output, options).run()
    assert resumed.batches_resumed >= 3  # at least 2 interpolated + their upscaled inputs
    assert resumed.frames_out == 60
    assert not list((tmp_path / "work").rglob("*.spfb"))  # removed after success

    fresh = Pipeline(clip_with_audio, tmp_path / "fresh.mp4", options).run()
    assert fresh.batches_resumed == 0
    assert np.array_equal(decode_rgb(output), decode_rgb(tmp_path / "fresh.mp4"))


def test_keep_work_keeps_the_batches(clip_with_audio: Path, tmp_path: Path, options: EnhanceOptions) -> None:
    keep = EnhanceOptions(**{**options.__dict__, "keep_work": True, "scale": 1})
    Pipeline(clip_with_audio, tmp_path / "out.mp4", keep).run()
    assert list((tmp_path / "work").rglob("*.spfb"))
    again = Pipeline(clip_with_audio, tmp_path / "again.mp4", keep).run()
    assert again.batches_computed == 0 and again.batches_resumed == 4


def test_a_job_that_cannot_fit_the_work_disk_fails_before_any_work(
    clip_with_audio: Path, tmp_path: Path, options: EnhanceOptions, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline = Pipeline(clip_with_audio, tmp_path / "out.mp4", options)
    assert pipeline.work_bytes() == (30 + 60) * 192 * 128 * 3  # upscaled inputs + interpolated outputs
    monkeypatch.setattr(shutil, "disk_usage", lambda _path: SimpleNamespace(total=10**9, used=10**9, free=1000))
    with pytest.raises(StoreError, match="only 0.0 GB are free"):
        pipeline.run()
    assert not (tmp_path / "out.mp4").exists() and not list(tmp_path.glob(".out.partial*"))
