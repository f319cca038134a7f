"""The stage order option (``--order``): with ``interpolate-first`` the plan interpolates the
decoded frames and upscales every output frame; the walker runs it; one stage alone ignores it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tests.conftest import decode_rgb, psnr
from tests.test_plan import facts, plan

from silkpurse.media.probe import probe
from silkpurse.plan import JobOptions
from silkpurse.tasks import encode_task, interpolate_task, upscale_task
from silkpurse_cli.embedded import Pipeline, RunOptions


def test_interpolate_first_chains_decode_interpolate_upscale_encode() -> None:
    p = plan(JobOptions(order="interpolate-first", chunk_frames=10, batch_size=4))
    assert p.interpolates_first and p.last_frame_stage() == "upscale"
    assert list(p.stages) == ["extract", "interpolate", "upscale", "encode"]
    first = p.chunks[0]
    interp = interpolate_task(p, p.step("c00000/interpolate/f00000008"))
    extract_keys = p.step("c00000/extract").outputs
    assert (interp.source.key, interp.next and interp.next.key) == (extract_keys[2], extract_keys[3])  # the overlap
    up = upscale_task(p, p.step("c00000/upscale/f00000008"))
    assert up.source == interp.output and (up.output.first, up.output.frames) == (16, 4)  # output numbering
    encode = encode_task(p, p.step("c00000/encode"), facts())
    assert [s.key for s in encode.sources] == [p.batch_key("upscale", first, b) for b in first.owned]
    assert [(s.first, s.frames) for s in encode.sources] == [(0, 8), (8, 8), (16, 4)]
    assert not any(s.id == "c00000/upscale/f00000010" for s in p.steps)  # the overlap frame is not upscaled


def test_the_order_is_in_the_keys_only_when_both_stages_run() -> None:
    upscale_first, interpolate_first = plan(), plan(JobOptions(order="interpolate-first"))
    assert upscale_first.stages["extract"] == interpolate_first.stages["extract"]
    assert upscale_first.stages["upscale"].digest != interpolate_first.stages["upscale"].digest
    assert upscale_first.job != interpolate_first.job
    one_stage = {
        order: plan(JobOptions(order=order, interpolate=1), interpolator=None)
        for order in ("upscale-first", "interpolate-first")
    }  # type: ignore[arg-type]
    assert one_stage["upscale-first"].job == one_stage["interpolate-first"].job


def test_interpolate_first_runs_end_to_end(clip_with_audio: Path, tmp_path: Path) -> None:
    outputs = {}
    for order in ("upscale-first", "interpolate-first"):
        options = JobOptions(order=order, batch_size=5, crf=0, preset="ultrafast")  # type: ignore[arg-type]
        out = outputs[order] = tmp_path / f"{order}.mkv"
        result = Pipeline(clip_with_audio, out, options, RunOptions(work_dir=tmp_path / order, device="cpu")).run()
        assert result.frames_out == 2 * probe(clip_with_audio).frame_count
    a, b = (decode_rgb(p) for p in outputs.values())
    assert a.shape == b.shape and a.shape[1:3] == (2 * probe(clip_with_audio).height, 2 * probe(clip_with_audio).width)
    assert np.array_equal(a[::2], b[::2]) or psnr(a[::2], b[::2]) >= 40  # source frames: both upscale them alike
    assert psnr(a[1::2], b[1::2]) >= 25  # the made frames differ by where the flow was estimated
