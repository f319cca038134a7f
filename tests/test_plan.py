"""The job plan: pure arithmetic on probed facts, the same wherever it is built."""

from __future__ import annotations

import json
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import pytest

from silkpurse.errors import ModelError, OptionsError
from silkpurse.media.colour import Colour
from silkpurse.media.probe import VideoInfo
from silkpurse.plan import JobOptions, JobPlan, ModelRef, build_plan, chunk_bounds
from silkpurse.tasks import check_model, encode_task, interpolate_task

UPSCALER = ModelRef("realesr-animevideov3", "a" * 64, "fp32", "SRVGGNetCompact")
INTERPOLATOR = ModelRef("rife-hdv3", "b" * 64, "fp32", "IFNet-HDv3")


def facts(frames: int = 100, rate: Fraction = Fraction(30000, 1001), keyframes: tuple[int, ...] = ()) -> VideoInfo:
    return VideoInfo(
        path=Path("in.mp4"),
        container="mov,mp4",
        width=64,
        height=48,
        coded_width=64,
        coded_height=48,
        rotation=0,
        codec="h264",
        pix_fmt="yuv420p",
        bit_depth=8,
        rate=rate,
        frame_count=frames,
        duration=frames / float(rate),
        start_time=0.0,
        vfr=False,
        colour=Colour("smpte170m", "tv", "smpte170m", "smpte170m"),
        keyframes=keyframes,
    )


def plan(options: JobOptions | None = None, info: VideoInfo | None = None, **models: ModelRef) -> JobPlan:
    refs = {"upscaler": UPSCALER, "interpolator": INTERPOLATOR, **models}
    return build_plan(info or facts(), "c" * 64, options or JobOptions(), **refs)


def test_chunks_cut_at_keyframes_in_their_second_half_else_at_the_maximum() -> None:
    assert chunk_bounds(100, (0, 37, 70, 95), 40) == [0, 37, 70, 100]
    assert chunk_bounds(100, (0, 10), 40) == [0, 40, 80, 100]  # no keyframe in a second half
    assert chunk_bounds(30, (), 300) == [0, 30]


@pytest.mark.parametrize("rate_out", [Fraction(60000, 1001), Fraction(60), Fraction(24000, 1001) * 5])
@pytest.mark.parametrize(("chunk_frames", "batch_size"), [(7, 3), (40, 8), (1000, 5)])
def test_every_output_frame_belongs_to_exactly_one_interpolation_step(
    rate_out: Fraction, chunk_frames: int, batch_size: int
) -> None:
    p = plan(JobOptions(interpolate=1, fps=rate_out, chunk_frames=chunk_frames, batch_size=batch_size))
    owned = [j for s in p.steps if s.stage == "interpolate" for j in range(s.first, s.first + s.frames)]
    assert owned == list(range(p.frames_out))
    segments = [j for c in p.chunks for j in range(c.out_first, c.out_end)]
    assert segments == owned


def test_the_last_pair_of_a_chunk_reads_the_overlap_frame() -> None:
    p = plan(JobOptions(chunk_frames=10, batch_size=4))
    first, last = p.chunks[0], p.chunks[-1]
    assert first.batches[-1].overlap and (first.batches[-1].first, first.batches[-1].frames) == (10, 1)
    assert not last.batches[-1].overlap  # nothing after the last chunk
    task = interpolate_task(p, p.step("c00000/interpolate/f00000008"))
    assert task.next is not None and task.next.first == 10 and task.source.frames == 2
    encode = encode_task(p, p.step("c00000/encode"), facts())
    assert [(r.first, r.frames) for r in encode.sources] == [(0, 8), (8, 8), (16, 4)]


def test_the_plan_round_trips_through_json() -> None:
    p = plan(JobOptions(fps=Fraction(60), interpolate=1, chunk_frames=30))
    assert JobPlan.from_json(json.loads(json.dumps(p.to_json()))) == p


def test_keys_name_the_weights_and_precision_and_jobs_differ_by_option() -> None:
    base = plan()
    fp16 = plan(upscaler=replace(UPSCALER, precision="fp16"))
    other_weights = plan(interpolator=replace(INTERPOLATOR, sha256="d" * 64))
    assert base.stages["extract"] == fp16.stages["extract"]
    assert base.stages["upscale"].digest != fp16.stages["upscale"].digest
    assert base.stages["interpolate"].digest != fp16.stages["interpolate"].digest  # chained upstream
    assert base.stages["upscale"] == other_weights.stages["upscale"]
    assert base.stages["interpolate"].digest != other_weights.stages["interpolate"].digest
    assert len({base.job, fp16.job, other_weights.job, plan(JobOptions(crf=30)).job}) == 4
    assert all(key.startswith(base.job + "/") for s in base.steps for key in (*s.inputs, *s.outputs))


def test_a_compiled_backend_names_other_bytes_and_eager_keeps_the_keys_it_had() -> None:
    base = plan()
    compiled = plan(upscaler=replace(UPSCALER, backend="compile"))
    assert base.stages["extract"] == compiled.stages["extract"]
    assert base.stages["upscale"].digest != compiled.stages["upscale"].digest
    assert base.stages["interpolate"].digest != compiled.stages["interpolate"].digest  # chained upstream
    # Eager models are keyed as before backends were named, so their stored work still resumes.
    assert base.stages["upscale"].params["model"] == {
        "name": UPSCALER.name,
        "sha256": UPSCALER.sha256,
        "precision": "fp32",
        "family": UPSCALER.family,
    }
    assert JobPlan.from_json(json.loads(json.dumps(compiled.to_json()))) == compiled


def test_a_stage_refuses_a_model_in_another_backend() -> None:
    identity = {"weights_sha256": UPSCALER.sha256, "precision": "fp32"}
    check_model(UPSCALER, identity, "upscaler")
    with pytest.raises(ModelError, match=r"in fp32 \(eager\), but the job was planned for .* \(compile\)"):
        check_model(replace(UPSCALER, backend="compile"), identity, "upscaler")
    check_model(replace(UPSCALER, backend="compile"), {**identity, "backend": "compile"}, "upscaler")


def test_impossible_options_are_refused_before_planning() -> None:
    with pytest.raises(OptionsError, match="chunk-frames"):
        plan(JobOptions(chunk_frames=1))
    with pytest.raises(OptionsError, match="below the input"):
        plan(JobOptions(interpolate=1, fps=Fraction(24)))
    with pytest.raises(OptionsError, match="--backend 'fast' is not a backend"):
        plan(JobOptions(backend="fast"))  # type: ignore[arg-type]
