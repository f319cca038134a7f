"""Requests and tasks: every task of a real plan survives the trip through its request, and
requests naming anything outside their job are refused before any work (no servers here)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from silkpurse import tasks
from silkpurse.errors import OptionsError
from silkpurse.files import sha256_of
from silkpurse.media.probe import probe
from silkpurse.plan import JobOptions, JobPlan, ModelRef, build_plan
from silkpurse.service import messages
from silkpurse.service.client import channel_target, input_key_of, output_key_of

UPSCALER = ModelRef("realesr-animevideov3", "a" * 64, "fp32", "compact")
INTERPOLATOR = ModelRef("rife-hdv3", "b" * 64, "fp16", "ifnet-hdv3", backend="tensorrt")


@pytest.fixture(scope="module")
def planned(clip_with_audio: Path) -> tuple[JobPlan, object, str]:
    info, sha256 = probe(clip_with_audio), sha256_of(clip_with_audio)
    options = JobOptions(scale=2, interpolate=2, batch_size=8, chunk_frames=16, crf=20, tile=0)
    plan = build_plan(info, sha256, options, upscaler=UPSCALER, interpolator=INTERPOLATOR)
    return plan, info, input_key_of(sha256, clip_with_audio)


def test_every_task_of_a_plan_round_trips_through_its_request(planned: tuple[JobPlan, object, str]) -> None:
    plan, info, input_key = planned
    at_key = replace(info, path=Path(input_key))  # type: ignore[type-var]
    for step in plan.steps:
        if step.stage == "extract":
            task = tasks.extract_task(plan, step, info)  # type: ignore[arg-type]
            job, back, key = messages.extract_task(messages.extract_request(plan.job, task, input_key))
            assert (job, back, key) == (plan.job, replace(task, source=at_key), input_key)
        elif step.stage == "upscale":
            up = tasks.upscale_task(plan, step)
            assert messages.upscale_task(messages.upscale_request(plan.job, up)) == (plan.job, up)
        elif step.stage == "interpolate":
            it = tasks.interpolate_task(plan, step)
            assert messages.interpolate_task(messages.interpolate_request(plan.job, it)) == (plan.job, it)
        elif step.stage == "encode":
            en = tasks.encode_task(plan, step, info)  # type: ignore[arg-type]
            got = messages.encode_task(messages.encode_request(plan.job, en, input_key))
            assert got == (plan.job, replace(en, source=at_key), input_key)
    join = tasks.join_task(plan, plan.step("join"), info)  # type: ignore[arg-type]
    output = output_key_of(plan.job, "out.mkv")
    got_join = messages.join_task(messages.join_request(plan.job, join, input_key, output))
    assert got_join == (plan.job, replace(join, source=at_key), input_key, output)


def test_requests_outside_their_job_are_refused(planned: tuple[JobPlan, object, str]) -> None:
    plan, info, input_key = planned
    other = "f" * 24
    join = tasks.join_task(plan, plan.step("join"), info)  # type: ignore[arg-type]
    encode = tasks.encode_task(plan, plan.steps_of(0, "encode")[0], info)  # type: ignore[arg-type]
    bad = [
        messages.join_request(plan.job, join, input_key, f"outputs/{other}/out.mp4"),
        messages.join_request(plan.job, join, input_key, "out.mp4"),
        messages.join_request(
            plan.job, replace(join, segments=(f"{other}/segments/c.mkv",)), input_key, output_key_of(plan.job, "o.mp4")
        ),
        messages.encode_request(plan.job, replace(encode, sources=encode.sources[::-1]), input_key),
        messages.encode_request(plan.job, replace(encode, segment=f"{other}/segments/c.mkv"), input_key),
        messages.encode_request(plan.job, replace(encode, frames=encode.frames + 1), input_key),
    ]
    for request in bad:
        with pytest.raises(OptionsError):
            messages.encode_task(request) if hasattr(request, "sources") else messages.join_task(request)  # type: ignore[arg-type]
    with pytest.raises(OptionsError):
        messages.video_json(info, "videos/clip.mp4")  # type: ignore[arg-type]
    upscale = messages.upscale_request("NOT-A-JOB", tasks.upscale_task(plan, plan.steps_of(0, "upscale")[0]))
    with pytest.raises(OptionsError, match="not a job id"):
        messages.upscale_task(upscale)


def test_a_model_in_an_unknown_backend_is_refused() -> None:
    msg = messages.model_msg(UPSCALER)
    assert messages.model_from(msg) == UPSCALER and msg.backend == "eager"
    msg.backend = "warp-drive"
    with pytest.raises(OptionsError, match="model backend 'warp-drive' is not one of eager, compile, tensorrt"):
        messages.model_from(msg)
    msg.backend = ""  # an older peer's message
    assert messages.model_from(msg).backend == "eager"


def test_a_list_of_replicas_is_one_balanced_target() -> None:
    assert channel_target("127.0.0.1:1,127.0.0.1:2") == "ipv4:127.0.0.1:1,127.0.0.1:2"
    assert channel_target("localhost:5") == "ipv4:127.0.0.1:5"
    assert channel_target("dns:///upscaler.internal:50052") == "dns:///upscaler.internal:50052"
    assert channel_target("[::1]:7") == "ipv6:[::1]:7"
