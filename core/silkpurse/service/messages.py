"""Requests to tasks and back: the one place where protobuf messages meet the core's task
dataclasses, used by the servicers (``*_task`` functions: validate a request, build its task)
and by the client (``*_request`` functions).

Validation happens here, before any work and before any object is read: the job id is 24
lowercase hex digits; every key passes :func:`~silkpurse.store.validate_key` and lies under
``<job>/`` (or is the job's input ``inputs/<sha256><ext>`` or output ``outputs/<job>/<name>``);
frame counts and ranges are sane and consistent; rates positive; options valid. A request
that fails any check is refused with INVALID_ARGUMENT (an :class:`~silkpurse.errors.OptionsError`).
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import Any, cast

from silkpurse.errors import OptionsError, SilkpurseError
from silkpurse.media.codecs import EncodeOptions
from silkpurse.media.probe import VideoInfo
from silkpurse.plan import BACKENDS, Backend, ModelRef, Precision
from silkpurse.store import validate_key
from silkpurse.tasks import BatchRef, EncodeTask, ExtractTask, InterpolateTask, JoinTask, UpscaleTask
from silkpurse.v1 import common_pb2, encoder_pb2, extractor_pb2, interpolator_pb2, upscaler_pb2

#: Most frames one batch may hold (the plan's batch size is at most 1024).
MAX_BATCH_FRAMES = 10_000
MAX_FRAMES = 100_000_000
MAX_SIDE = 32_768
_JOB = re.compile(r"[0-9a-f]{24}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_INPUT_KEY = re.compile(r"inputs/([0-9a-f]{64})(\.[A-Za-z0-9]{1,8})?")
_PRECISIONS: dict[str, common_pb2.Precision] = {
    "fp32": common_pb2.PRECISION_FP32,
    "fp16": common_pb2.PRECISION_FP16,
    "bf16": common_pb2.PRECISION_BF16,
}


def invalid(what: str, fix: str = "send a request built from a job plan (see docs/services.md)") -> OptionsError:
    return OptionsError(f"invalid request: {what}", fix)


# -- checks -------------------------------------------------------------------------------------


def check_job(job: str) -> str:
    if not _JOB.fullmatch(job):
        raise invalid(f"job {job!r} is not a job id (24 lowercase hex digits)")
    return job


def check_key(job: str, key: str, what: str) -> str:
    """A key of this job's work: ``<job>/...``."""
    try:
        validate_key(key)
    except SilkpurseError:
        raise invalid(f"{what} key {key!r} is not a valid store key") from None
    if not key.startswith(f"{job}/"):
        raise invalid(f"{what} key {key!r} is outside the job's prefix {job}/")
    return key


def input_key_of(sha256: str, path: Path) -> str:
    """The store key of an input file: ``inputs/<sha256><ext>``."""
    ext = path.suffix.lower() if re.fullmatch(r"\.[A-Za-z0-9]{1,8}", path.suffix) else ""
    return f"inputs/{sha256}{ext}"


def check_input_key(key: str) -> str:
    """``inputs/<sha256><ext>``; returns the sha256."""
    match = _INPUT_KEY.fullmatch(key)
    if match is None:
        raise invalid(f"input {key!r} is not an input object (inputs/<sha256><ext>)")
    return match.group(1)


def check_output_key(job: str, key: str) -> str:
    """``outputs/<job>/<name>``; returns the name."""
    try:
        validate_key(key)
    except SilkpurseError:
        raise invalid(f"output key {key!r} is not a valid store key") from None
    parts = key.split("/")
    if len(parts) != 3 or parts[:2] != ["outputs", job]:
        raise invalid(f"output key {key!r} is not outputs/{job}/<name>")
    return parts[2]


def _frames(n: int, what: str, *, allow_zero: bool = False) -> int:
    if not (0 if allow_zero else 1) <= n <= MAX_BATCH_FRAMES:
        raise invalid(f"{what} holds {n} frames (1..{MAX_BATCH_FRAMES})")
    return n


def batch_from(job: str, msg: common_pb2.BatchRef, what: str, *, allow_empty: bool = False) -> BatchRef:
    if not 0 <= msg.first <= MAX_FRAMES:
        raise invalid(f"{what} starts at frame {msg.first}")
    _frames(msg.frames, what, allow_zero=allow_empty)
    return BatchRef(check_key(job, msg.key, what), int(msg.first), int(msg.frames))


def rational_from(msg: common_pb2.Rational, what: str) -> Fraction:
    if msg.den <= 0 or msg.num <= 0:
        raise invalid(f"{what} {msg.num}/{msg.den} is not a positive rate")
    return Fraction(msg.num, msg.den)


def model_from(msg: common_pb2.ModelRef) -> ModelRef:
    if not _SHA256.fullmatch(msg.sha256):
        raise invalid(f"model sha256 {msg.sha256!r} is not 64 lowercase hex digits")
    names = {v: k for k, v in _PRECISIONS.items()}
    if msg.precision not in names:
        raise invalid("model precision is not given")
    if msg.backend not in ("", *BACKENDS):
        raise invalid(f"model backend {msg.backend!r} is not one of {', '.join(BACKENDS)}")
    return ModelRef(msg.name, msg.sha256, cast(Precision, names[msg.precision]), msg.family, _backend(msg))


def video_from(text: str) -> tuple[VideoInfo, str]:
    """The input's facts and its store key (the facts' ``path``), checked."""
    try:
        info = VideoInfo.from_json(json.loads(text))
    except (ValueError, TypeError, KeyError, AttributeError, ZeroDivisionError) as err:
        raise invalid(f"video_info_json is not silkpurse's VideoInfo JSON ({type(err).__name__})") from None
    key = str(info.path)
    check_input_key(key)
    if not (0 < info.frame_count <= MAX_FRAMES and 0 < info.width <= MAX_SIDE and 0 < info.height <= MAX_SIDE):
        raise invalid(f"video facts of {key} are not sane ({info.frame_count} frames of {info.width}x{info.height})")
    if info.rate <= 0:
        raise invalid(f"video rate {info.rate} of {key} is not positive")
    return info, key


def encode_options_from(msg: common_pb2.EncodeOptions) -> EncodeOptions:
    options = EncodeOptions(
        codec=msg.codec or "h264",
        crf=msg.crf if msg.HasField("crf") else None,
        preset=msg.preset if msg.HasField("preset") else None,
        ten_bit=msg.ten_bit if msg.HasField("ten_bit") else None,
    )
    options.validate()
    return options


def _consecutive(refs: list[BatchRef], what: str) -> None:
    for a, b in zip(refs, refs[1:], strict=False):
        if a.end != b.first:
            raise invalid(f"{what} are not consecutive ({a.key} ends at {a.end}, {b.key} starts at {b.first})")


# -- requests to tasks (servers) ----------------------------------------------------------------


def extract_task(request: extractor_pb2.ExtractRequest) -> tuple[str, ExtractTask, str]:
    """The job, the task (its source's path still the input key) and the input key."""
    job = check_job(request.job)
    info, key = video_from(request.video_info_json)
    if not request.batches:
        raise invalid("no batches to extract")
    refs = [batch_from(job, b, "batch") for b in request.batches]
    _consecutive(refs, "batches")
    if refs[-1].end > info.frame_count:
        raise invalid(f"batches end at frame {refs[-1].end}, the input has {info.frame_count}")
    return job, ExtractTask(request.step, info, tuple(refs)), key


def upscale_task(request: upscaler_pb2.UpscaleRequest) -> tuple[str, UpscaleTask]:
    job = check_job(request.job)
    source = batch_from(job, request.source, "source")
    output = batch_from(job, request.output, "output")
    if (source.first, source.frames) != (output.first, output.frames):
        raise invalid(f"output frames [{output.first}, {output.end}) differ from the source's")
    if source.key == output.key:
        raise invalid("output key is the source key")
    if request.scale not in (1, 2, 3, 4):
        raise invalid(f"scale {request.scale} is not 1, 2, 3 or 4")
    task = UpscaleTask(
        request.step,
        source=source,
        output=output,
        model=model_from(request.model),
        scale=request.scale,
        tile=request.tile if request.HasField("tile") else None,
        denoise_strength=request.denoise_strength if request.HasField("denoise_strength") else None,
    )
    return job, task


def interpolate_task(request: interpolator_pb2.InterpolateRequest) -> tuple[str, InterpolateTask]:
    job = check_job(request.job)
    source = batch_from(job, request.source, "source")
    following = batch_from(job, request.next, "next") if request.HasField("next") else None
    output = batch_from(job, request.output, "output", allow_empty=True)
    if following is not None and following.first != source.end:
        raise invalid(f"next batch starts at {following.first}, not at the source's end {source.end}")
    if output.key in (source.key, following.key if following else None):
        raise invalid("output key is an input key")
    if not source.end <= request.frames_in <= MAX_FRAMES:
        raise invalid(f"frames_in {request.frames_in} is less than the source's end {source.end}")
    scene = request.scene_threshold if request.HasField("scene_threshold") else None
    if scene is not None and not scene > 0:
        raise invalid(f"scene threshold {scene} is not positive")
    task = InterpolateTask(
        request.step,
        source=source,
        next=following,
        output=output,
        frames_in=int(request.frames_in),
        rate_in=rational_from(request.rate_in, "rate_in"),
        rate_out=rational_from(request.rate_out, "rate_out"),
        model=model_from(request.model),
        rife_scale=request.rife_scale,
        scene_threshold=scene,
    )
    return job, task


def encode_task(request: encoder_pb2.EncodeSegmentRequest) -> tuple[str, EncodeTask, str]:
    job = check_job(request.job)
    info, key = video_from(request.video_info_json)
    if not request.sources:
        raise invalid("no batches to encode")
    refs = [batch_from(job, b, "source") for b in request.sources]
    _consecutive(refs, "sources")
    if refs[0].first != request.first or sum(r.frames for r in refs) != request.frames:
        raise invalid(
            f"sources cover [{refs[0].first}, {refs[-1].end}), the segment [{request.first}, +{request.frames})"
        )
    if not (0 < request.width <= MAX_SIDE and 0 < request.height <= MAX_SIDE):
        raise invalid(f"size {request.width}x{request.height} is not sane")
    task = EncodeTask(
        request.step,
        sources=tuple(refs),
        segment=check_key(job, request.segment, "segment"),
        first=int(request.first),
        frames=int(request.frames),
        rate=rational_from(request.rate, "rate"),
        size=(request.width, request.height),
        sixteen_bit=request.sixteen_bit,
        options=encode_options_from(request.options),
        source=info,
    )
    return job, task, key


def join_task(request: encoder_pb2.JoinRequest) -> tuple[str, JoinTask, str, str]:
    """The job, the task, the input key and the output key."""
    job = check_job(request.job)
    info, key = video_from(request.video_info_json)
    if not request.segments:
        raise invalid("no segments to join")
    segments = tuple(check_key(job, s, "segment") for s in request.segments)
    if not 1 <= request.frames <= MAX_FRAMES:
        raise invalid(f"frames {request.frames} is not sane")
    check_output_key(job, request.output)
    task = JoinTask(
        request.step,
        segments,
        int(request.frames),
        rational_from(request.rate, "rate"),
        info,
        encode_options_from(request.options),
    )
    return job, task, key, request.output


# -- tasks to requests (client) -----------------------------------------------------------------


def batch_msg(ref: BatchRef) -> common_pb2.BatchRef:
    return common_pb2.BatchRef(key=ref.key, first=ref.first, frames=ref.frames)


def batch_of(msg: common_pb2.BatchRef) -> BatchRef:
    return BatchRef(msg.key, int(msg.first), int(msg.frames))


def model_msg(ref: ModelRef) -> common_pb2.ModelRef:
    return common_pb2.ModelRef(
        name=ref.name, sha256=ref.sha256, precision=_PRECISIONS[ref.precision], family=ref.family, backend=ref.backend
    )


def model_of(msg: common_pb2.ModelRef) -> ModelRef:
    names = {v: k for k, v in _PRECISIONS.items()}
    return ModelRef(msg.name, msg.sha256, cast(Precision, names.get(msg.precision, "fp32")), msg.family, _backend(msg))


def _backend(msg: common_pb2.ModelRef) -> Backend:
    """A model message's backend; older peers send none, which means eager."""
    return cast(Backend, msg.backend) if msg.backend in BACKENDS else "eager"


def rational_msg(rate: Fraction) -> common_pb2.Rational:
    rate = Fraction(rate)
    return common_pb2.Rational(num=rate.numerator, den=rate.denominator)


def encode_options_msg(options: EncodeOptions) -> common_pb2.EncodeOptions:
    fields: dict[str, Any] = {"codec": options.codec}
    for name in ("crf", "preset", "ten_bit"):
        if getattr(options, name) is not None:
            fields[name] = getattr(options, name)
    return common_pb2.EncodeOptions(**fields)


def video_json(info: VideoInfo, input_key: str) -> str:
    """The facts as a service reads them: ``path`` is the input's store key."""
    check_input_key(input_key)
    return json.dumps(replace(info, path=Path(input_key)).to_json())


def extract_request(job: str, task: ExtractTask, input_key: str) -> extractor_pb2.ExtractRequest:
    return extractor_pb2.ExtractRequest(
        job=job,
        step=task.step,
        video_info_json=video_json(task.source, input_key),
        batches=[batch_msg(b) for b in task.batches],
    )


def upscale_request(job: str, task: UpscaleTask) -> upscaler_pb2.UpscaleRequest:
    request = upscaler_pb2.UpscaleRequest(
        job=job,
        step=task.step,
        source=batch_msg(task.source),
        output=batch_msg(task.output),
        model=model_msg(task.model),
        scale=task.scale,
    )
    if task.tile is not None:
        request.tile = task.tile
    if task.denoise_strength is not None:
        request.denoise_strength = task.denoise_strength
    return request


def interpolate_request(job: str, task: InterpolateTask) -> interpolator_pb2.InterpolateRequest:
    request = interpolator_pb2.InterpolateRequest(
        job=job,
        step=task.step,
        source=batch_msg(task.source),
        output=batch_msg(task.output),
        frames_in=task.frames_in,
        rate_in=rational_msg(task.rate_in),
        rate_out=rational_msg(task.rate_out),
        model=model_msg(task.model),
        rife_scale=task.rife_scale,
    )
    if task.next is not None:
        request.next.CopyFrom(batch_msg(task.next))
    if task.scene_threshold is not None:
        request.scene_threshold = task.scene_threshold
    return request


def encode_request(job: str, task: EncodeTask, input_key: str) -> encoder_pb2.EncodeSegmentRequest:
    return encoder_pb2.EncodeSegmentRequest(
        job=job,
        step=task.step,
        sources=[batch_msg(b) for b in task.sources],
        segment=task.segment,
        first=task.first,
        frames=task.frames,
        rate=rational_msg(task.rate),
        width=task.size[0],
        height=task.size[1],
        sixteen_bit=task.sixteen_bit,
        options=encode_options_msg(task.options),
        video_info_json=video_json(task.source, input_key),
    )


def join_request(job: str, task: JoinTask, input_key: str, output_key: str) -> encoder_pb2.JoinRequest:
    return encoder_pb2.JoinRequest(
        job=job,
        step=task.step,
        segments=list(task.segments),
        frames=task.frames,
        rate=rational_msg(task.rate),
        video_info_json=video_json(task.source, input_key),
        options=encode_options_msg(task.options),
        output=output_key,
    )
