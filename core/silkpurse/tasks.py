"""Stage contracts: the typed input of each stage's one entry point, cut from the job plan,
and the typed result it returns.

A task is what one call of a stage needs and nothing more: store keys with their frame
ranges, the model identity, the effective options. Tasks are small plain data, so the
embedded runner passes them to a function, the flow to a gRPC call, and the services map them
onto protobuf messages; the stage's entry point (``silkpurse_<stage>.stage``) does the work,
owns the check whether its output already exists, and returns a typed result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from silkpurse.errors import ModelError
from silkpurse.media.codecs import EncodeOptions
from silkpurse.media.probe import VideoInfo
from silkpurse.plan import JobPlan, ModelRef, Step


@dataclass(frozen=True)
class BatchRef:
    """A batch in the store: its key and the frames it holds (stream numbering of its stage)."""

    key: str
    first: int
    frames: int

    @property
    def end(self) -> int:
        return self.first + self.frames


@dataclass(frozen=True)
class ExtractTask:
    step: str
    source: VideoInfo
    batches: tuple[BatchRef, ...]
    """Consecutive input-frame batches to decode and store, in order."""


@dataclass(frozen=True)
class UpscaleTask:
    step: str
    source: BatchRef
    output: BatchRef
    model: ModelRef
    scale: int
    tile: int | None
    denoise_strength: float | None


@dataclass(frozen=True)
class InterpolateTask:
    step: str
    source: BatchRef
    next: BatchRef | None
    """The batch whose first frame the last pair of ``source`` interpolates towards."""
    output: BatchRef
    """Output frames this batch owns (output numbering)."""
    frames_in: int
    rate_in: Fraction
    rate_out: Fraction
    model: ModelRef
    rife_scale: float
    scene_threshold: float | None


@dataclass(frozen=True)
class EncodeTask:
    """Encode a chunk's batches (output numbering, in order) into one segment."""

    step: str
    sources: tuple[BatchRef, ...]
    segment: str
    first: int
    frames: int
    rate: Fraction
    size: tuple[int, int]
    sixteen_bit: bool
    options: EncodeOptions
    source: VideoInfo
    """The input's facts: colour tags and bit depth the segment is encoded with."""


@dataclass(frozen=True)
class SpeechTask:
    """Clean the speech of the source's first audio track into an object of the store."""

    step: str
    source: VideoInfo
    stream: int
    """ffprobe's index of the audio stream."""
    output: str
    level: str
    loudness: float


@dataclass(frozen=True)
class JoinTask:
    """Join the segments into the output with the source's audio, subtitles and metadata."""

    step: str
    segments: tuple[str, ...]
    frames: int
    rate: Fraction
    source: VideoInfo
    options: EncodeOptions
    speech: str | None = None
    """The cleaned track's key: it replaces the source's first audio track."""
    keep_original_audio: bool = False


# -- results -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExtractedBatch:
    batch: BatchRef
    resumed: bool
    """Found finished in the store rather than decoded."""


@dataclass(frozen=True)
class ExtractResult:
    step: str
    batches: tuple[BatchRef, ...]
    decoded: int
    resumed: int


@dataclass(frozen=True)
class UpscaleResult:
    step: str
    output: BatchRef
    resumed: bool
    """Found finished in the store rather than computed."""


@dataclass(frozen=True)
class InterpolateResult:
    step: str
    output: BatchRef
    cuts: list[int]
    """Input indices ``i`` where the pair (i, i+1) is a scene cut."""
    duplicates: list[int]
    """Input indices ``i`` where frame i+1 repeats frame i exactly."""
    interpolated: int
    """Output frames that went through the network (0 when resumed)."""
    resumed: bool


@dataclass(frozen=True)
class SegmentResult:
    step: str
    segment: str
    frames: int
    resumed: bool


@dataclass(frozen=True)
class SpeechResult:
    step: str
    output: str
    resumed: bool
    method: str = ""
    """``model`` or ``ffmpeg`` (empty when resumed)."""
    real_time_factor: float = 0.0


@dataclass
class JoinResult:
    """The finished output: its frames and what happened to the source's other streams."""

    output: str
    frames: int = 0
    copied_streams: list[str] = field(default_factory=list)
    reencoded_streams: list[str] = field(default_factory=list)
    dropped_streams: list[str] = field(default_factory=list)


# -- cutting tasks from a plan --------------------------------------------------------------------


def extract_task(plan: JobPlan, step: Step, info: VideoInfo) -> ExtractTask:
    chunk = plan.chunks[step.chunk]
    refs = tuple(BatchRef(k, b.first, b.frames) for k, b in zip(step.outputs, chunk.batches, strict=True))
    return ExtractTask(step.id, info, refs)


def upscale_task(plan: JobPlan, step: Step) -> UpscaleTask:
    assert plan.upscaler is not None
    return UpscaleTask(
        step.id,
        source=BatchRef(step.inputs[0], step.first, step.frames),
        output=BatchRef(step.outputs[0], step.first, step.frames),
        model=plan.upscaler,
        scale=plan.options.scale,
        tile=plan.options.tile,
        denoise_strength=plan.options.denoise_strength,
    )


def interpolate_task(plan: JobPlan, step: Step) -> InterpolateTask:
    assert plan.interpolator is not None and step.batch is not None
    batches = plan.chunks[step.chunk].batches
    batch = batches[step.batch]
    following = batches[step.batch + 1] if len(step.inputs) > 1 else None
    return InterpolateTask(
        step.id,
        source=BatchRef(step.inputs[0], batch.first, batch.frames),
        next=BatchRef(step.inputs[1], following.first, following.frames) if following is not None else None,
        output=BatchRef(step.outputs[0], step.first, step.frames),
        frames_in=plan.frames_in,
        rate_in=plan.rate_in,
        rate_out=plan.rate_out,
        model=plan.interpolator,
        rife_scale=plan.options.rife_scale,
        scene_threshold=plan.options.scene_threshold,
    )


def encode_task(plan: JobPlan, step: Step, info: VideoInfo) -> EncodeTask:
    if plan.interpolator is not None:
        ranges = [(plan.step(s).first, plan.step(s).frames) for s in step.needs]
    else:  # without interpolation, output frames are the chunk's own input frames
        ranges = [(b.first, b.frames) for b in plan.chunks[step.chunk].owned]
    refs = [BatchRef(key, first, frames) for key, (first, frames) in zip(step.inputs, ranges, strict=True)]
    return EncodeTask(
        step.id,
        sources=tuple(refs),
        segment=step.outputs[0],
        first=step.first,
        frames=step.frames,
        rate=plan.rate_out,
        size=plan.size_out,
        sixteen_bit=plan.bit_depth > 8,
        options=plan.options.encode_options(),
        source=info,
    )


def speech_task(plan: JobPlan, step: Step, info: VideoInfo) -> SpeechTask:
    options = plan.options
    assert options.clean_audio is not None
    return SpeechTask(step.id, info, info.audio[0].index, step.outputs[0], options.clean_audio, options.loudness)


def join_task(plan: JobPlan, step: Step, info: VideoInfo) -> JoinTask:
    speech = plan.speech_key() if "speech" in plan.stages else None
    segments = tuple(key for key in step.inputs if key != speech)
    return JoinTask(
        step.id,
        segments,
        plan.frames_out,
        plan.rate_out,
        info,
        plan.options.encode_options(),
        speech=speech,
        keep_original_audio=plan.options.keep_original_audio,
    )


def check_model(expected: ModelRef, identity: dict[str, Any], stage: str) -> None:
    """A stage computes a task only with the exact weights, precision and backend its keys name."""
    got = (identity.get("weights_sha256"), identity.get("precision"), identity.get("backend", "eager"))
    if got != (expected.sha256, expected.precision, expected.backend):
        raise ModelError(
            f"the {stage} runs weights {str(got[0])[:12]} in {got[1]} ({got[2]}), but the job was planned for "
            f"{expected.name} ({expected.sha256[:12]}) in {expected.precision} ({expected.backend})",
            "run the job with the model the plan names, or plan it again for this one",
        )
