"""The job plan: everything a job will do, decided before any frame is decoded.

A :class:`JobPlan` is built from the probed input, the options and the identities of the
models (weights sha256 and precision), with no torch, GPU or weights loaded, so a Prefect
flow, a gRPC client and ``silkpurse plan --json`` see the same work the embedded runner
does. It is plain data and round-trips through JSON.

The story of a job::

    input frames [0, n)  --chunks-->  chunk k owns input frames [a, b) and output frames [a', b')
    extract  chunk k      -> batches of [a, b) (+ frame b, the overlap interpolation needs)
    upscale  each batch   -> the same frames, scaled
    interpolate batch j   -> the outputs it owns (needs frame 0 of batch j + 1)
    encode   chunk k      -> segment k (output frames [a', b'))

    (``--order interpolate-first``: interpolate batch j from the decoded frames, then upscale
    the output frames it owns; the encoder reads the upscaled batches.)
    join     all segments -> the output, with the source's audio, subtitles, chapters, metadata

Every step names the store keys it reads and writes. A key names the bytes: it covers the
input's sha256, the batch format, each stage's code version and effective parameters, the
weights' sha256 and the precision (never the device: fp16 on two GPUs is the same work).
The job's prefix covers the input and the whole plan, so removing one job's work never
touches another's.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from fractions import Fraction
from functools import cached_property
from typing import Any, Literal

from silkpurse import timeline
from silkpurse.batch import FORMAT, KEY_SUFFIX
from silkpurse.errors import InputError, OptionsError
from silkpurse.media.codecs import EncodeOptions
from silkpurse.media.probe import VideoInfo
from silkpurse.store import validate_key

PLAN_VERSION = 1
DEFAULT_UPSCALE_MODEL = "realesr-animevideov3"
DEFAULT_INTERP_MODEL = "rife-hdv3"
#: Input frames per chunk at most (about 10 s of 30 fps video). A chunk is the unit of
#: encoding and of clean-up: the work directory holds about two chunks' batches at a time.
DEFAULT_CHUNK_FRAMES = 300
DEFAULT_BATCH_SIZE = 8

#: Bumped when a stage's output bytes change for the same inputs and parameters, so stored
#: work from an older silkpurse is never mistaken for this one's.
#: upscale and interpolate 2: channels_last weights (fp32 results may round differently).
CODE_VERSIONS = {"extract": 1, "upscale": 2, "interpolate": 2, "encode": 1, "speech": 1}
SPEECH_LEVELS = ("light", "normal", "strong")

StageName = Literal["extract", "upscale", "interpolate", "encode", "speech", "join"]
Precision = Literal["fp32", "fp16", "bf16"]
#: Which model stage runs first when a job both upscales and interpolates.
StageOrder = Literal["upscale-first", "interpolate-first"]
STAGE_ORDERS: tuple[StageOrder, ...] = ("upscale-first", "interpolate-first")
#: The form a network runs in (silkpurse.nn.accel): as loaded, torch.compile, or a TensorRT engine.
Backend = Literal["eager", "compile", "tensorrt"]
BACKENDS: tuple[Backend, ...] = ("eager", "compile", "tensorrt")


@dataclass(frozen=True)
class JobOptions:
    """What the user asks for; everything that changes the output's bytes."""

    scale: int = 2
    upscale_model: str = DEFAULT_UPSCALE_MODEL
    tile: int | None = None
    denoise_strength: float | None = None
    interpolate: int = 2
    fps: Fraction | None = None
    interp_model: str = DEFAULT_INTERP_MODEL
    rife_scale: float = 1.0
    scene_threshold: float | None = None
    codec: str = "h264"
    crf: int | None = None
    preset: str | None = None
    ten_bit: bool | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    chunk_frames: int = DEFAULT_CHUNK_FRAMES
    clean_audio: str | None = None
    """Clean the speech of the first audio track: ``light``, ``normal`` or ``strong`` (None: off)."""
    loudness: float = -16.0
    """Loudness target of the cleaned track, LUFS (-16 online video, -23 broadcast)."""
    keep_original_audio: bool = False
    """Keep the original track as a second track after the cleaned one."""
    precision: Precision | None = None
    """The models' compute precision; ``None``: the engines' choice (fp16 on CUDA, bf16 on CPUs
    with native bf16 for families faithful in it, else fp32). The plan's ``ModelRef`` carries
    the precision actually used, and the keys with it."""
    backend: Backend | None = None
    """The networks' form: ``eager`` (as loaded), ``compile`` (torch.compile) or ``tensorrt``
    (an engine built per model, shape and precision, cached on disk); each compiled form is
    checked against eager (>= 45 dB) before use. Compiled kernels round differently, so the
    backend is in the plan's ``ModelRef`` and the keys. ``None``: eager in process; through the
    services, whatever the replicas run."""
    order: StageOrder = "upscale-first"
    """``upscale-first``: interpolate the upscaled frames (the flow is estimated at the output
    size). ``interpolate-first``: interpolate at the source size, then upscale every output
    frame (the flow network sees scale**2 fewer pixels; the upscaler runs once per output
    frame). Only matters when a job does both; measured in docs/benchmarks.md."""

    def validate(self) -> None:
        if self.scale not in (1, 2, 3, 4):
            raise OptionsError(f"--scale {self.scale} is not supported", "use 1, 2, 3 or 4")
        if self.interpolate < 1:
            raise OptionsError(f"--interpolate {self.interpolate} is impossible", "use 1 (off) or a multiplier >= 2")
        if self.fps is not None and self.fps <= 0:
            raise OptionsError(f"--fps {self.fps} is impossible", "give a positive frame rate such as 60 or 30000/1001")
        if self.fps is not None and self.interpolate > 1:
            raise OptionsError("--interpolate and --fps both set the output frame rate", "give only one of them")
        if not 1 <= self.batch_size <= 1024:
            raise OptionsError(f"--batch-size {self.batch_size} is out of range", "use 1..1024")
        if not 2 <= self.chunk_frames <= 1_000_000:
            raise OptionsError(f"--chunk-frames {self.chunk_frames} is out of range", "use 2..1000000")
        if self.rife_scale not in (0.25, 0.5, 1.0, 2.0, 4.0):
            raise OptionsError(f"--rife-scale {self.rife_scale} is not supported", "use 0.25, 0.5, 1, 2 or 4")
        if self.tile is not None and self.tile < 0:
            raise OptionsError(f"--tile {self.tile} is impossible", "use 0 (off) or a tile size in pixels")
        if self.scene_threshold is not None and not self.scene_threshold > 0:
            raise OptionsError(
                f"--scene-threshold {self.scene_threshold} is impossible",
                "use e.g. 0.12, or 1 to disable cut detection",
            )
        if self.precision not in (None, "fp32", "fp16", "bf16"):
            raise OptionsError(f"--precision {self.precision!r} is not a precision", "use fp32, fp16 or bf16")
        if self.backend not in (None, *BACKENDS):
            raise OptionsError(f"--backend {self.backend!r} is not a backend", f"use one of {', '.join(BACKENDS)}")
        if self.order not in STAGE_ORDERS:
            raise OptionsError(f"--order {self.order!r} is not a stage order", "use upscale-first or interpolate-first")
        if self.clean_audio is not None and self.clean_audio not in SPEECH_LEVELS:
            raise OptionsError(f"--clean-audio {self.clean_audio!r} is not a level", "use light, normal or strong")
        if not -40 <= self.loudness <= -5:
            raise OptionsError(
                f"--loudness {self.loudness:g} LUFS is out of range", "use -16 (online) or -23 (broadcast)"
            )
        self.encode_options().validate()

    def encode_options(self) -> EncodeOptions:
        return EncodeOptions(codec=self.codec, crf=self.crf, preset=self.preset, ten_bit=self.ten_bit)

    def output_rate(self, in_rate: Fraction) -> Fraction:
        if self.fps is not None:
            return timeline.output_rate(in_rate, fps=self.fps)
        return timeline.output_rate(in_rate, multiplier=self.interpolate)


@dataclass(frozen=True)
class ModelRef:
    """Which model, exactly: what a stage's keys need to name its output bytes."""

    name: str
    sha256: str
    precision: Precision
    family: str = ""
    backend: Backend = "eager"


@dataclass(frozen=True)
class BatchRange:
    """Input frames ``[first, end)`` handled together. An ``overlap`` batch holds the one
    frame after a chunk that its last pair interpolates towards; it owns no output."""

    first: int
    end: int
    overlap: bool = False

    @property
    def frames(self) -> int:
        return self.end - self.first

    @property
    def name(self) -> str:
        return f"f{self.first:08d}"


@dataclass(frozen=True)
class Chunk:
    index: int
    first: int
    """First input frame the chunk owns."""
    end: int
    """One past its last owned input frame."""
    out_first: int
    """First output frame the chunk's segment holds."""
    out_end: int
    batches: tuple[BatchRange, ...]
    """Owned batches in order, then the overlap batch where interpolation needs one."""

    @property
    def name(self) -> str:
        return f"c{self.index:05d}"

    @property
    def owned(self) -> tuple[BatchRange, ...]:
        return tuple(b for b in self.batches if not b.overlap)


@dataclass(frozen=True)
class StageParams:
    """One stage's effective parameters and the digest its keys carry (chained upstream)."""

    stage: StageName
    params: dict[str, Any]
    digest: str


@dataclass(frozen=True)
class Step:
    """One unit of work: the keys it reads and writes and the steps it waits for."""

    id: str
    stage: StageName
    chunk: int
    batch: int | None
    """Position in the chunk's ``batches`` (batch-level steps only)."""
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    needs: tuple[str, ...]
    first: int
    """First frame produced (input numbering up to upscale, output numbering after)."""
    frames: int
    """Frames produced."""


@dataclass(frozen=True)
class JobPlan:
    version: int
    job: str
    """The job's store prefix: a digest of the input and the whole plan."""
    input: dict[str, Any]
    """Path, sha256 and the video facts the plan was built from."""
    options: JobOptions
    upscaler: ModelRef | None
    interpolator: ModelRef | None
    frames_in: int
    frames_out: int
    rate_in: Fraction
    rate_out: Fraction
    size_in: tuple[int, int]
    size_out: tuple[int, int]
    bit_depth: int
    stages: dict[str, StageParams]
    chunks: tuple[Chunk, ...]
    steps: tuple[Step, ...] = field(repr=False)

    # -- what the runners ask -------------------------------------------------------------

    def step(self, step_id: str) -> Step:
        return self._steps_by_id[step_id]

    def steps_of(self, chunk: int, stage: StageName | None = None) -> list[Step]:
        return [s for s in self.steps if s.chunk == chunk and (stage is None or s.stage == stage)]

    def chunk_prefix(self, chunk: Chunk) -> str:
        return f"{self.job}/{chunk.name}"

    def batch_key(self, stage: StageName, chunk: Chunk, batch: BatchRange) -> str:
        digest = self.stages[stage].digest
        return validate_key(f"{self.job}/{chunk.name}/{stage}-{digest}/{batch.name}{KEY_SUFFIX}")

    def segment_key(self, chunk: Chunk) -> str:
        return validate_key(f"{self.job}/segments/{chunk.name}-{self.stages['encode'].digest}.mkv")

    def speech_key(self) -> str:
        return validate_key(f"{self.job}/audio/speech-{self.stages['speech'].digest}.flac")

    @property
    def interpolates_first(self) -> bool:
        """Both model stages run, the interpolator on the source frames (``--order interpolate-first``)."""
        both = self.upscaler is not None and self.interpolator is not None
        return both and self.options.order == "interpolate-first"

    def last_frame_stage(self) -> StageName:
        """The stage whose batches the encoder reads."""
        if self.interpolates_first:
            return "upscale"
        if self.interpolator is not None:
            return "interpolate"
        return "upscale" if self.upscaler is not None else "extract"

    @property
    def work_bytes_per_chunk(self) -> int:
        """Bytes of batches one chunk of the longest kind keeps until its segment is written."""
        longest = max(self.chunks, key=lambda c: c.end - c.first)
        depth = 2 if self.bit_depth > 8 else 1
        w_in, h_in = self.size_in
        w_out, h_out = self.size_out
        frames_in = longest.end - longest.first + 1
        frames_out = longest.out_end - longest.out_first
        total = frames_in * w_in * h_in * 3 * depth
        if self.interpolates_first:  # source-size outputs, then each of them upscaled
            return total + frames_out * (w_in * h_in + w_out * h_out) * 3 * depth
        if self.upscaler is not None:
            total += frames_in * w_out * h_out * 3 * depth
        if self.interpolator is not None:
            total += frames_out * w_out * h_out * 3 * depth
        return total

    # -- JSON -------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return _jsonable(asdict(self))

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> JobPlan:
        if data.get("version") != PLAN_VERSION:
            raise OptionsError(
                f"job plan version {data.get('version')!r} is not {PLAN_VERSION}",
                "build the plan again with this silkpurse",
            )
        options = dict(data["options"])
        options["fps"] = Fraction(options["fps"]) if options.get("fps") is not None else None
        return cls(
            version=PLAN_VERSION,
            job=data["job"],
            input=dict(data["input"]),
            options=JobOptions(**options),
            upscaler=ModelRef(**data["upscaler"]) if data.get("upscaler") else None,
            interpolator=ModelRef(**data["interpolator"]) if data.get("interpolator") else None,
            frames_in=int(data["frames_in"]),
            frames_out=int(data["frames_out"]),
            rate_in=Fraction(data["rate_in"]),
            rate_out=Fraction(data["rate_out"]),
            size_in=(int(data["size_in"][0]), int(data["size_in"][1])),
            size_out=(int(data["size_out"][0]), int(data["size_out"][1])),
            bit_depth=int(data["bit_depth"]),
            stages={k: StageParams(**v) for k, v in data["stages"].items()},
            chunks=tuple(
                Chunk(**{**c, "batches": tuple(BatchRange(**b) for b in c["batches"])}) for c in data["chunks"]
            ),
            steps=tuple(
                Step(**{**s, **{k: tuple(s[k]) for k in ("inputs", "outputs", "needs")}}) for s in data["steps"]
            ),
        )

    @cached_property
    def _steps_by_id(self) -> dict[str, Step]:
        return {s.id: s for s in self.steps}


# -- building a plan --------------------------------------------------------------------------


def build_plan(
    info: VideoInfo,
    input_sha256: str,
    options: JobOptions,
    *,
    upscaler: ModelRef | None,
    interpolator: ModelRef | None,
) -> JobPlan:
    """The whole job, from facts alone. ``upscaler``/``interpolator`` are required exactly
    when the options turn that stage on (see :func:`stages_needed`)."""
    options.validate()
    if options.clean_audio is not None and not info.audio:
        raise InputError(f"{info.path} has no audio track", "drop --clean-audio; there is no speech to clean")
    rate_out = options.output_rate(info.rate)
    needs_upscale, needs_interp = stages_needed(info, options)
    if needs_upscale != (upscaler is not None) or needs_interp != (interpolator is not None):
        raise ValueError("model references must be given exactly for the stages the options turn on")
    n_in = info.frame_count
    n_out = timeline.output_count(n_in, info.rate, rate_out) if needs_interp else n_in
    size_out = (info.width * options.scale, info.height * options.scale)
    stages = _stage_params(info, input_sha256, options, rate_out, upscaler, interpolator)
    chunks = tuple(_chunks(info, options, rate_out, needs_interp))
    job = _digest(
        {
            "input": input_sha256,
            "stages": {k: v.digest for k, v in stages.items()},
            "chunks": [(c.first, c.end) for c in chunks],
            "batch_size": options.batch_size,
        }
    )[:24]
    plan = JobPlan(
        version=PLAN_VERSION,
        job=job,
        input={
            "path": str(info.path),
            "sha256": input_sha256,
            "container": info.container,
            "codec": info.codec,
            "duration": info.duration,
            "vfr": info.vfr,
            "audio": len(info.audio),
            "subtitles": len(info.subtitles),
        },
        options=options,
        upscaler=upscaler,
        interpolator=interpolator,
        frames_in=n_in,
        frames_out=n_out,
        rate_in=info.rate,
        rate_out=rate_out,
        size_in=(info.width, info.height),
        size_out=size_out,
        bit_depth=16 if info.bit_depth > 8 else 8,
        stages=stages,
        chunks=chunks,
        steps=(),
    )
    return replace(plan, steps=tuple(_steps(plan)))


def stages_needed(info: VideoInfo, options: JobOptions) -> tuple[bool, bool]:
    """Whether the options turn on the upscaler and the interpolator for this input."""
    return options.scale > 1, options.output_rate(info.rate) != info.rate


def chunk_bounds(n: int, keyframes: tuple[int, ...] | list[int], max_frames: int) -> list[int]:
    """Chunk boundaries ``[0, ..., n]``: each chunk at most ``max_frames`` long, cut at the
    last keyframe in its second half where there is one (encoders put keyframes at scene
    cuts, and a chunk that starts on one is cheap to seek to), else at ``max_frames``."""
    bounds = [0]
    while n - bounds[-1] > max_frames:
        start = bounds[-1]
        candidates = [k for k in keyframes if start + max_frames // 2 <= k <= start + max_frames]
        bounds.append(max(candidates) if candidates else start + max_frames)
    bounds.append(n)
    return bounds


def _chunks(info: VideoInfo, options: JobOptions, rate_out: Fraction, interpolates: bool) -> Iterator[Chunk]:
    n = info.frame_count
    bounds = chunk_bounds(n, info.keyframes, options.chunk_frames)
    for index, (first, end) in enumerate(zip(bounds, bounds[1:], strict=False)):
        batches = [BatchRange(b, min(b + options.batch_size, end)) for b in range(first, end, options.batch_size)]
        if interpolates and timeline.needs_next_frame(end, n):
            batches.append(BatchRange(end, end + 1, overlap=True))
        outputs = timeline.outputs_of(first, end, n, info.rate, rate_out) if interpolates else range(first, end)
        yield Chunk(index, first, end, outputs.start, outputs.stop, tuple(batches))


def _model_params(model: ModelRef) -> dict[str, Any]:
    """A model's part of its stage's digest. The eager backend is left out, so eager jobs keep
    the keys they had before backends were named (their stored work resumes)."""
    params = asdict(model)
    if model.backend == "eager":
        del params["backend"]
    return params


def _stage_params(
    info: VideoInfo,
    input_sha256: str,
    options: JobOptions,
    rate_out: Fraction,
    upscaler: ModelRef | None,
    interpolator: ModelRef | None,
) -> dict[str, StageParams]:
    stages: dict[str, StageParams] = {}

    def add(stage: StageName, params: dict[str, Any], upstream: str | None) -> None:
        full = {"code": CODE_VERSIONS.get(stage, 1), "format": FORMAT, **params}
        digest = _digest({"upstream": upstream, **full})[:16]
        stages[stage] = StageParams(stage, full, digest)

    add(
        "extract",
        {
            "input": input_sha256,
            "rate": _rate(info.rate),
            "vfr": info.vfr,
            "bit_depth": 16 if info.bit_depth > 8 else 8,
        },
        None,
    )
    model_stages: dict[StageName, dict[str, Any]] = {}
    if upscaler is not None:
        model_stages["upscale"] = {
            "model": _model_params(upscaler),
            "scale": options.scale,
            "tile": options.tile,
            "denoise_strength": options.denoise_strength,
        }
    if interpolator is not None:
        model_stages["interpolate"] = {
            "model": _model_params(interpolator),
            "rate_out": _rate(rate_out),
            "rife_scale": options.rife_scale,
            "scene_threshold": options.scene_threshold,
            "frames_in": info.frame_count,
        }
    order: list[StageName] = ["upscale", "interpolate"]
    if len(model_stages) == 2 and options.order == "interpolate-first":
        order.reverse()
    last = "extract"
    for stage in order:  # each stage's digest chains its upstream's: the order is in every key after it
        if stage in model_stages:
            add(stage, model_stages[stage], stages[last].digest)
            last = stage
    encode = options.encode_options()
    add("encode", {**asdict(encode), "rate_out": _rate(rate_out)}, stages[last].digest)
    if options.clean_audio is not None:
        add(
            "speech",
            {
                "input": input_sha256,
                "stream": info.audio[0].index,
                "level": options.clean_audio,
                "loudness": options.loudness,
                "keep_original": options.keep_original_audio,
            },
            None,
        )
    return stages


def _steps(plan: JobPlan) -> Iterator[Step]:
    for chunk in plan.chunks:
        extract_id = f"{chunk.name}/extract"
        extract_keys = [plan.batch_key("extract", chunk, b) for b in chunk.batches]
        yield Step(
            extract_id,
            "extract",
            chunk.index,
            None,
            (),
            tuple(extract_keys),
            (),
            chunk.first,
            sum(b.frames for b in chunk.batches),
        )
        frames_ids = [extract_id] * len(chunk.batches)
        frames_keys = extract_keys
        if plan.interpolates_first:
            yield from _interpolate_first_steps(plan, chunk, extract_id, extract_keys)
            continue
        if plan.upscaler is not None:
            up_keys = [plan.batch_key("upscale", chunk, b) for b in chunk.batches]
            up_ids = [f"{chunk.name}/upscale/{b.name}" for b in chunk.batches]
            for j, (batch, step_id, key) in enumerate(zip(chunk.batches, up_ids, up_keys, strict=True)):
                yield Step(
                    step_id,
                    "upscale",
                    chunk.index,
                    j,
                    (extract_keys[j],),
                    (key,),
                    (extract_id,),
                    batch.first,
                    batch.frames,
                )
            frames_ids, frames_keys = up_ids, up_keys
        final_ids, final_keys = frames_ids, frames_keys
        if plan.interpolator is not None:
            final_ids, final_keys = [], []
            for j, batch in enumerate(chunk.owned):
                has_next = j + 1 < len(chunk.batches)
                inputs = tuple(frames_keys[j : j + 2]) if has_next else (frames_keys[j],)
                needs = tuple(dict.fromkeys(frames_ids[j : j + 2] if has_next else [frames_ids[j]]))
                outputs = timeline.outputs_of(batch.first, batch.end, plan.frames_in, plan.rate_in, plan.rate_out)
                step_id = f"{chunk.name}/interpolate/{batch.name}"
                key = plan.batch_key("interpolate", chunk, batch)
                yield Step(step_id, "interpolate", chunk.index, j, inputs, (key,), needs, outputs.start, len(outputs))
                final_ids.append(step_id)
                final_keys.append(key)
        else:
            owned = len(chunk.owned)
            final_ids, final_keys = final_ids[:owned], final_keys[:owned]
        yield Step(
            f"{chunk.name}/encode",
            "encode",
            chunk.index,
            None,
            tuple(final_keys),
            (plan.segment_key(chunk),),
            tuple(dict.fromkeys(final_ids)),
            chunk.out_first,
            chunk.out_end - chunk.out_first,
        )
    yield from _join_steps(plan)


def _interpolate_first_steps(plan: JobPlan, chunk: Chunk, extract_id: str, extract_keys: list[str]) -> Iterator[Step]:
    """A chunk with ``--order interpolate-first``: batch j is interpolated from the decoded
    batches j and j + 1, its output frames are upscaled, and the segment is encoded from those."""
    final_ids, final_keys = [], []
    for j, batch in enumerate(chunk.owned):
        has_next = j + 1 < len(chunk.batches)
        inputs = tuple(extract_keys[j : j + 2]) if has_next else (extract_keys[j],)
        outputs = timeline.outputs_of(batch.first, batch.end, plan.frames_in, plan.rate_in, plan.rate_out)
        interp_id, interp_key = f"{chunk.name}/interpolate/{batch.name}", plan.batch_key("interpolate", chunk, batch)
        yield Step(
            interp_id, "interpolate", chunk.index, j, inputs, (interp_key,), (extract_id,), outputs.start, len(outputs)
        )
        up_id, up_key = f"{chunk.name}/upscale/{batch.name}", plan.batch_key("upscale", chunk, batch)
        yield Step(
            up_id, "upscale", chunk.index, j, (interp_key,), (up_key,), (interp_id,), outputs.start, len(outputs)
        )
        final_ids.append(up_id)
        final_keys.append(up_key)
    yield Step(
        f"{chunk.name}/encode",
        "encode",
        chunk.index,
        None,
        tuple(final_keys),
        (plan.segment_key(chunk),),
        tuple(final_ids),
        chunk.out_first,
        chunk.out_end - chunk.out_first,
    )


def _join_steps(plan: JobPlan) -> Iterator[Step]:
    last_chunk = len(plan.chunks) - 1
    inputs = tuple(plan.segment_key(c) for c in plan.chunks)
    needs = tuple(f"{c.name}/encode" for c in plan.chunks)
    if "speech" in plan.stages:  # the speech clean-up needs nothing from the video
        key = plan.speech_key()
        yield Step("speech", "speech", 0, None, (), (key,), (), 0, 0)
        inputs, needs = (*inputs, key), (*needs, "speech")
    yield Step("join", "join", last_chunk, None, inputs, (), needs, 0, plan.frames_out)


def _digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(_jsonable(data), sort_keys=True).encode()).hexdigest()


def _rate(rate: Fraction) -> str:
    return f"{rate.numerator}/{rate.denominator}"


def _jsonable(value: Any) -> Any:
    if isinstance(value, Fraction):
        return _rate(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value
