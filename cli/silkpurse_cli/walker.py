"""Walking a job plan: the one story every runner of the command line tells.

:class:`PlanWalker` runs a :class:`~silkpurse.plan.JobPlan` chunk by chunk through a
:class:`StageCalls`: the embedded runner's calls the stage entry points in this process, a
remote runner's calls the same entry points in the services. The walker decides only the
order and the overlap:

* a decoding thread yields each chunk's batches as they reach the store (a chunk ahead at most);
* a model thread upscales each batch as it arrives and interpolates batch j as soon as batch
  j + 1 is upscaled;
* this thread encodes each chunk's segment from its batches as they are computed, then drops
  the chunk's batches, so the store holds about two chunks' batches at a time;
* finally the segments are joined into the output.

Chunks whose segment a previous run stored are skipped whole; inside a chunk, every stage
entry point skips the batches it finds finished, so an interrupted job resumes where it stopped.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol

from silkpurse import tasks
from silkpurse.concurrency import background
from silkpurse.media.probe import VideoInfo, probe
from silkpurse.plan import Chunk, JobPlan
from silkpurse.progress import Reporter


class StageCalls(Protocol):
    """How a runner reaches each stage's entry point (in process, or through a service)."""

    def extract(self, task: tasks.ExtractTask) -> Iterator[tasks.ExtractedBatch]: ...

    def upscale(self, task: tasks.UpscaleTask) -> tasks.UpscaleResult: ...

    def interpolate(self, task: tasks.InterpolateTask) -> tasks.InterpolateResult: ...

    def encode_segment(self, task: tasks.EncodeTask, ready: Iterator[str]) -> tasks.SegmentResult:
        """Encode the task's segment; ``ready`` yields each source key once it is stored (in order)."""
        ...

    def clean_speech(self, task: tasks.SpeechTask) -> tasks.SpeechResult: ...

    def join(self, task: tasks.JoinTask, output: Path) -> tasks.JoinResult: ...

    def segment_done(self, key: str) -> bool: ...

    def drop(self, prefix: str) -> None:
        """Delete the work stored under ``prefix``."""
        ...


@dataclass
class WorkCounts:
    """What a run computed and what it found finished (``--json`` reports both)."""

    segments_computed: int = 0
    segments_resumed: int = 0
    batches_computed: int = 0
    batches_resumed: int = 0
    cuts: list[int] = field(default_factory=list)
    duplicates: list[int] = field(default_factory=list)


@dataclass(kw_only=True)
class EnhanceResult(WorkCounts):
    input: str
    output: str
    job: str
    frames_in: int
    frames_out: int
    rate_in: str
    rate_out: str
    size_in: tuple[int, int]
    size_out: tuple[int, int]
    duration_in: float
    duration_out: float
    seconds: float
    chunks: int
    streams_copied: list[str] = field(default_factory=list)
    streams_reencoded: list[str] = field(default_factory=list)
    streams_dropped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def fps(self) -> float:
        return self.frames_out / self.seconds if self.seconds else 0.0

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "output_fps": round(self.fps, 3)}


class PlanWalker:
    def __init__(
        self, plan: JobPlan, info: VideoInfo, calls: StageCalls, reporter: Reporter, *, keep_work: bool
    ) -> None:
        self.plan, self.info, self.calls, self.reporter = plan, info, calls, reporter
        self.keep_work = keep_work
        self.counts = WorkCounts()

    def run(self, output: Path) -> tasks.JoinResult:
        plan = self.plan
        self._announce()
        todo = [c for c in plan.chunks if not self._segment_resumed(c)]
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="speech") as audio:
            # The speech clean-up needs nothing from the video: it runs beside it.
            speech = audio.submit(self._clean_speech) if "speech" in plan.stages else None
            final = background(self._computed(background(self._extracted(todo), name="extract")), name="compute")
            for chunk in todo:
                self._encode(chunk, final)
            if speech is not None:
                speech.result()
        report = self.calls.join(tasks.join_task(plan, plan.step("join"), self.info), output)
        if not self.keep_work:
            self.calls.drop(plan.job)
        for message in report.dropped_streams:
            self.reporter.note(f"dropped {message}")
        return report

    def result(self, source: Path, output: Path, report: tasks.JoinResult, started: float) -> EnhanceResult:
        """The run's summary (``--json``), once :meth:`run` has written ``output``."""
        plan, info = self.plan, self.info
        return EnhanceResult(
            input=str(source),
            output=str(output),
            job=plan.job,
            frames_in=plan.frames_in,
            frames_out=report.frames,
            rate_in=_rate(plan.rate_in),
            rate_out=_rate(plan.rate_out),
            size_in=plan.size_in,
            size_out=plan.size_out,
            duration_in=round(info.duration, 6),
            duration_out=round(probe(output, limits=False).duration, 6),  # our own output, already checked
            seconds=round(time.perf_counter() - started, 3),
            chunks=len(plan.chunks),
            **asdict(self.counts),
            streams_copied=report.copied_streams,
            streams_reencoded=report.reencoded_streams,
            streams_dropped=report.dropped_streams,
            notes=[f"variable frame rate converted to {_rate(info.rate)} fps"] if info.vfr else [],
        )

    def _announce(self) -> None:
        plan = self.plan
        self.reporter.stage("decode", plan.frames_in)
        if plan.upscaler is not None:
            self.reporter.stage("upscale", plan.frames_in)
        if plan.interpolator is not None:
            self.reporter.stage("interpolate", plan.frames_out)
        self.reporter.stage("encode", plan.frames_out)
        if self.info.vfr:
            self.reporter.note(f"variable frame rate input: converted to a constant {float(plan.rate_in):g} fps")

    def _segment_resumed(self, chunk: Chunk) -> bool:
        if not self.calls.segment_done(self.plan.segment_key(chunk)):
            return False
        self.counts.segments_resumed += 1
        for stage in ("decode", "upscale", "interpolate", "encode"):
            frames = chunk.out_end - chunk.out_first if stage in ("interpolate", "encode") else chunk.end - chunk.first
            self.reporter.advance(stage, frames, resumed=True)
        return True

    # -- the three threads --------------------------------------------------------------------

    def _extracted(self, chunks: list[Chunk]) -> Iterator[Chunk]:
        """Decoding thread: a chunk's batches as they reach the store (one item per batch)."""
        for chunk in chunks:
            task = tasks.extract_task(self.plan, self.plan.step(f"{chunk.name}/extract"), self.info)
            for done in self.calls.extract(task):
                self._count(done.resumed)
                if done.batch.first < chunk.end:  # the overlap frame is the next chunk's to count
                    self.reporter.advance("decode", done.batch.frames, resumed=done.resumed)
                yield chunk

    def _computed(self, extracted: Iterator[Chunk]) -> Iterator[tuple[Chunk, str]]:
        """Model thread: upscale each batch as it arrives; interpolate batch j as soon as
        batch j + 1 is ready. Yields the keys of each chunk's final batches, in order."""
        plan = self.plan
        position: dict[int, int] = {}
        for chunk in extracted:
            j = position[chunk.index] = position.get(chunk.index, -1) + 1
            batch = chunk.batches[j]
            key = plan.batch_key("extract", chunk, batch)
            if plan.upscaler is not None:
                key = self._upscale(chunk, j)
            if plan.interpolator is None:
                if not batch.overlap:
                    yield chunk, key
                continue
            if j > 0:
                yield chunk, self._interpolate(chunk, j - 1)
            if j == len(chunk.batches) - 1 and not batch.overlap:
                yield chunk, self._interpolate(chunk, j)

    def _upscale(self, chunk: Chunk, j: int) -> str:
        step = self.plan.step(f"{chunk.name}/upscale/{chunk.batches[j].name}")
        result = self.calls.upscale(tasks.upscale_task(self.plan, step))
        self._count(result.resumed)
        if not chunk.batches[j].overlap:
            self.reporter.advance("upscale", result.output.frames, resumed=result.resumed)
        return result.output.key

    def _interpolate(self, chunk: Chunk, j: int) -> str:
        step = self.plan.step(f"{chunk.name}/interpolate/{chunk.batches[j].name}")
        result = self.calls.interpolate(tasks.interpolate_task(self.plan, step))
        self._count(result.resumed)
        self.counts.cuts.extend(result.cuts)
        self.counts.duplicates.extend(result.duplicates)
        self.reporter.advance("interpolate", result.output.frames, resumed=result.resumed)
        return result.output.key

    def _encode(self, chunk: Chunk, final: Iterator[tuple[Chunk, str]]) -> None:
        """Encoding (this thread): the chunk's segment from its batches as they are computed;
        then its batches are dropped."""
        task = tasks.encode_task(self.plan, self.plan.step(f"{chunk.name}/encode"), self.info)

        def ready() -> Iterator[str]:
            for source in task.sources:
                produced, key = next(final)
                assert (produced.index, key) == (chunk.index, source.key), "batches arrive in plan order"
                self.reporter.advance("encode", source.frames)
                yield key

        result = self.calls.encode_segment(task, ready())
        self.counts.segments_computed += not result.resumed
        if not self.keep_work:
            self.calls.drop(self.plan.chunk_prefix(chunk))

    def _clean_speech(self) -> tasks.SpeechResult:
        result = self.calls.clean_speech(tasks.speech_task(self.plan, self.plan.step("speech"), self.info))
        if result.method:
            self.reporter.note(f"speech cleaned ({result.method}, {result.real_time_factor:.2f}x real time)")
        return result

    def _count(self, resumed: bool) -> None:
        if resumed:
            self.counts.batches_resumed += 1
        else:
            self.counts.batches_computed += 1


def _rate(rate: Fraction) -> str:
    return f"{rate.numerator}/{rate.denominator}"
