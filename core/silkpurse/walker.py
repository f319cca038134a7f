"""Walking a job plan: the one story every runner tells (the command line, the services'
remote runner and the Prefect flow).

:class:`PlanWalker` runs a :class:`~silkpurse.plan.JobPlan` chunk by chunk through a
:class:`StageCalls`: the embedded runner's calls the stage entry points in this process, a
remote runner's calls the same entry points in the services, the flow's wraps those in Prefect
tasks. The walker decides only the order, the overlap and how many calls are in flight
(:class:`Fanout`: one each in process, one per replica through the services):

* a decoding thread yields each chunk's batches as they reach the store;
* a dispatching thread submits each batch's upscale as it arrives, and the interpolation of
  batch j as soon as batches j and j + 1 are upscaled (never waiting for the rest of the video);
* encoders build each chunk's segment from its final batches as they are computed (up to
  ``Fanout.encode`` chunks at a time), then drop the chunk's batches, so the store holds a few
  chunks' batches at a time;
* finally the segments are joined into the output.

Chunks whose segment a previous run stored are skipped whole; inside a chunk, every stage
entry point skips the batches it finds finished, so an interrupted job resumes where it stopped.
Every thread the walker starts runs in a copy of its caller's :mod:`contextvars` context, so a
runner's context (a Prefect flow run's, for one) reaches the calls.
"""

from __future__ import annotations

import contextvars
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, ParamSpec, Protocol, TypeVar

from silkpurse import tasks
from silkpurse.concurrency import background
from silkpurse.media.probe import VideoInfo, probe
from silkpurse.plan import Chunk, JobPlan
from silkpurse.progress import Reporter

P = ParamSpec("P")
T = TypeVar("T")


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


@dataclass(frozen=True)
class Fanout:
    """How many calls of each stage a walker keeps in flight: 1 each for one in-process engine,
    the replica count for a service (its calls are balanced over the replicas)."""

    upscale: int = 1
    interpolate: int = 1
    encode: int = 1

    def __post_init__(self) -> None:
        if min(self.upscale, self.interpolate, self.encode) < 1:
            raise ValueError(f"every stage needs at least one call in flight: {self}")


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
        self,
        plan: JobPlan,
        info: VideoInfo,
        calls: StageCalls,
        reporter: Reporter,
        *,
        keep_work: bool,
        fanout: Fanout | None = None,
    ) -> None:
        self.plan, self.info, self.calls, self.reporter = plan, info, calls, reporter
        self.keep_work = keep_work
        self.fanout = fanout or Fanout()
        self.counts = WorkCounts()
        self._lock = threading.Lock()  # counts and progress are advanced from several threads
        # Chunks whose batches may be in the store at once: one being encoded per encoder, and
        # the next one being computed. The decoding thread waits for a slot before each chunk.
        self._chunk_slots = threading.Semaphore(self.fanout.encode + 1)
        self._stopping = threading.Event()

    def run(self, output: Path) -> tasks.JoinResult:
        plan = self.plan
        self._announce()
        todo = [c for c in plan.chunks if not self._segment_resumed(c)]
        fanout = self.fanout
        upscalers = ThreadPoolExecutor(fanout.upscale, thread_name_prefix="upscale")
        interpolators = ThreadPoolExecutor(fanout.interpolate, thread_name_prefix="interpolate")
        try:
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="speech") as audio:
                # The speech clean-up needs nothing from the video: it runs beside it.
                speech = _submit(audio, self._clean_speech) if "speech" in plan.stages else None
                # Enough batches dispatched ahead of the encoder to keep every model call busy
                # (the chunk slots bound what the store holds).
                depth = max(2, fanout.upscale + fanout.interpolate)
                extracted = background(self._extracted(todo), name="extract")
                final = background(self._computed(extracted, upscalers, interpolators), depth, name="dispatch")
                try:
                    self._encode_all(todo, final)
                finally:
                    final.close()
                if speech is not None:
                    speech.result()
        finally:
            # Done, or failed/interrupted: drop what has not started and do not wait for a model
            # call in flight (Ctrl-C returns at once; the interpreter joins those threads at exit).
            self._stopping.set()
            for pool in (upscalers, interpolators):
                pool.shutdown(wait=False, cancel_futures=True)
        report = self.calls.join(tasks.join_task(plan, plan.step("join"), self.info), output)
        if not self.keep_work:
            self.calls.drop(plan.job)
        for message in report.dropped_streams:
            self.reporter.note(f"dropped {message}")
        return report

    def result(
        self,
        source: Path | str,
        output: Path | str,
        report: tasks.JoinResult,
        started: float,
        *,
        output_file: Path | None = None,
    ) -> EnhanceResult:
        """The run's summary (``--json``), once :meth:`run` has written ``output`` (a path, or
        a URI whose local copy is ``output_file``)."""
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
            # our own output, already checked
            duration_out=round(probe(output_file or Path(output), limits=False).duration, 6),
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

    # -- the threads ----------------------------------------------------------------------------

    def _extracted(self, chunks: list[Chunk]) -> Iterator[Chunk]:
        """Decoding thread: a chunk's batches as they reach the store (one item per batch),
        once the chunk has a slot."""
        for chunk in chunks:
            while not self._chunk_slots.acquire(timeout=0.1):
                if self._stopping.is_set():
                    return
            task = tasks.extract_task(self.plan, self.plan.step(f"{chunk.name}/extract"), self.info)
            for done in self.calls.extract(task):
                self._count(done.resumed)
                if done.batch.first < chunk.end:  # the overlap frame is the next chunk's to count
                    self._advance("decode", done.batch.frames, resumed=done.resumed)
                yield chunk

    def _computed(
        self, extracted: Iterator[Chunk], upscalers: ThreadPoolExecutor, interpolators: ThreadPoolExecutor
    ) -> Iterator[tuple[Chunk, Future[str]]]:
        """Dispatching thread: submit each batch's upscale as it arrives, and batch j's
        interpolation once batches j and j + 1 are upscaled. Yields the future key of each
        chunk's final batches, in plan order."""
        plan = self.plan
        position: dict[int, int] = {}
        upscaled: dict[tuple[int, int], Future[str]] = {}
        for chunk in extracted:
            j = position[chunk.index] = position.get(chunk.index, -1) + 1
            batch, last = chunk.batches[j], j == len(chunk.batches) - 1
            if plan.upscaler is not None:
                upscaled[chunk.index, j] = _submit(upscalers, self._upscale, chunk, j)
            else:
                upscaled[chunk.index, j] = _finished(plan.batch_key("extract", chunk, batch))
            if plan.interpolator is None:
                if not batch.overlap:
                    yield chunk, upscaled.pop((chunk.index, j))
                continue
            if j > 0:
                before = upscaled.pop((chunk.index, j - 1))
                yield chunk, _submit(interpolators, self._interpolate, chunk, j - 1, before, upscaled[chunk.index, j])
            if last:
                this = upscaled.pop((chunk.index, j))
                if not batch.overlap:
                    yield chunk, _submit(interpolators, self._interpolate, chunk, j, this, None)

    def _upscale(self, chunk: Chunk, j: int) -> str:
        step = self.plan.step(f"{chunk.name}/upscale/{chunk.batches[j].name}")
        result = self.calls.upscale(tasks.upscale_task(self.plan, step))
        self._count(result.resumed)
        if not chunk.batches[j].overlap:
            self._advance("upscale", result.output.frames, resumed=result.resumed)
        return result.output.key

    def _interpolate(self, chunk: Chunk, j: int, this: Future[str], following: Future[str] | None) -> str:
        """Interpolate batch j once its frames and the next batch's first frame are upscaled."""
        this.result()
        if following is not None:
            following.result()
        step = self.plan.step(f"{chunk.name}/interpolate/{chunk.batches[j].name}")
        result = self.calls.interpolate(tasks.interpolate_task(self.plan, step))
        self._count(result.resumed)
        with self._lock:
            self.counts.cuts.extend(result.cuts)
            self.counts.duplicates.extend(result.duplicates)
        self._advance("interpolate", result.output.frames, resumed=result.resumed)
        return result.output.key

    def _encode_all(self, chunks: list[Chunk], final: Iterator[tuple[Chunk, Future[str]]]) -> None:
        """This thread hands each chunk's final batches, in order, to the chunk's encoder; up to
        ``Fanout.encode`` chunks are encoded at a time."""
        feeds: list[queue.SimpleQueue[Future[str]]] = []
        with ThreadPoolExecutor(self.fanout.encode, thread_name_prefix="encode") as encoders:
            encoding: deque[Future[None]] = deque()
            try:
                for chunk in chunks:
                    # Never wait here for an encoder: the next chunk's batches keep flowing to the
                    # model calls while the previous chunk is encoded (its encode waits in the
                    # pool for a free encoder; the chunk slots bound what the store holds).
                    while encoding and encoding[0].done():
                        encoding.popleft().result()
                    task = tasks.encode_task(self.plan, self.plan.step(f"{chunk.name}/encode"), self.info)
                    feeds.append(queue.SimpleQueue())
                    encoding.append(_submit(encoders, self._encode, task, chunk, feeds[-1]))
                    for _ in task.sources:
                        produced, key = next(final)
                        assert produced.index == chunk.index, "batches arrive in plan order"
                        feeds[-1].put(key)
                        _raise_if_failed(encoding)
                for pending in encoding:
                    pending.result()
            except BaseException:
                # An encoder waiting for batches that will never come must stop, or leaving
                # this block would wait for it forever.
                for feed in feeds:
                    feed.put(_failed(WalkStopped("the job stopped before this chunk's batches were computed")))
                raise

    def _encode(self, task: tasks.EncodeTask, chunk: Chunk, feed: queue.SimpleQueue[Future[str]]) -> None:
        """An encoding thread: the chunk's segment from its batches as they are computed; then
        its batches are dropped."""

        def ready() -> Iterator[str]:
            for source in task.sources:
                key = feed.get().result()
                assert key == source.key, "batches arrive in plan order"
                self._advance("encode", source.frames)
                yield key

        result = self.calls.encode_segment(task, ready())
        with self._lock:
            self.counts.segments_computed += not result.resumed
        if not self.keep_work:
            self.calls.drop(self.plan.chunk_prefix(chunk))
        self._chunk_slots.release()

    def _clean_speech(self) -> tasks.SpeechResult:
        result = self.calls.clean_speech(tasks.speech_task(self.plan, self.plan.step("speech"), self.info))
        if result.method:
            self.reporter.note(f"speech cleaned ({result.method}, {result.real_time_factor:.2f}x real time)")
        return result

    def _count(self, resumed: bool) -> None:
        with self._lock:
            if resumed:
                self.counts.batches_resumed += 1
            else:
                self.counts.batches_computed += 1

    def _advance(self, stage: str, frames: int, *, resumed: bool = False) -> None:
        self.reporter.advance(stage, frames, resumed=resumed)  # reporters are thread-safe


def _submit(pool: ThreadPoolExecutor, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> Future[T]:
    """Run ``fn`` in ``pool`` within a copy of this thread's context (one copy per call: a
    context can be entered by one thread at a time)."""
    context = contextvars.copy_context()
    return pool.submit(lambda: context.run(fn, *args, **kwargs))


def _finished(value: T) -> Future[T]:
    done: Future[T] = Future()
    done.set_result(value)
    return done


class WalkStopped(Exception):
    """Handed to an encoder whose chunk will not be completed (the walk failed elsewhere)."""


def _failed(error: BaseException) -> Future[str]:
    failed: Future[str] = Future()
    failed.set_exception(error)
    return failed


def _raise_if_failed(futures: deque[Future[None]]) -> None:
    """Stop feeding batches as soon as an encoder has failed (its error says why)."""
    for future in futures:
        if future.done() and future.exception() is not None:
            future.result()


def _rate(rate: Fraction) -> str:
    return f"{rate.numerator}/{rate.denominator}"
