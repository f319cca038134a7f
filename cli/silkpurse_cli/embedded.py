"""The embedded runner: a whole job in one process, walking the job plan over a local store.

It reads top to bottom: probe the input, load the engines the options need (a bad model or
device fails before any decoding), build the :class:`~silkpurse.plan.JobPlan` from the engines'
identities, then for each chunk: extract -> upscale -> interpolate -> encode a segment, and
finally join the segments with the source's audio, subtitles and metadata. Every step is a
stage's own entry point (``silkpurse_<stage>.stage``), the very functions the services wrap.

Three threads overlap the work: ffmpeg decoding (a chunk ahead at most), model inference
(PyTorch releases the GIL) and ffmpeg encoding. A chunk's batches are deleted once its segment
is stored, so the work directory holds about two chunks' batches whatever the video's length.
Running the same command again after an interruption reuses every finished segment and batch.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from silkpurse import tasks
from silkpurse.batch import FrameBatch
from silkpurse.concurrency import background
from silkpurse.errors import StoreError
from silkpurse.files import sha256_of
from silkpurse.media.probe import VideoInfo, probe
from silkpurse.plan import Chunk, JobOptions, JobPlan, ModelRef, build_plan, stages_needed
from silkpurse.progress import Reporter, SilentReporter
from silkpurse.settings import Settings, get_settings
from silkpurse.store import LocalStore
from silkpurse_encoder.encode import check_output
from silkpurse_encoder.stage import encode_segment, join_segments, segment_done
from silkpurse_extractor.stage import extract_stream

if TYPE_CHECKING:
    from silkpurse_interpolator.engine import Interpolator
    from silkpurse_upscaler.engine import Upscaler


@dataclass(frozen=True)
class RunOptions:
    """Where and how this process runs a job; nothing here changes the output's bytes."""

    device: str | None = None
    keep_work: bool = False
    work_dir: Path | None = None


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


class Pipeline:
    """One enhance job: the probed input, the engines, the plan and the store."""

    def __init__(
        self,
        source: Path,
        output: Path,
        options: JobOptions,
        run: RunOptions | None = None,
        *,
        reporter: Reporter | None = None,
        settings: Settings | None = None,
    ) -> None:
        options.validate()
        self.settings = settings or get_settings()
        self.run_options = run or RunOptions()
        self.source, self.output = source, output
        self.reporter = reporter or SilentReporter()
        self.info: VideoInfo = probe(source)
        check_output(output, source)
        needs_upscale, needs_interp = stages_needed(self.info, options)
        device = self.run_options.device or self.settings.device
        self.upscaler = _load_upscaler(options, device) if needs_upscale else None
        self.interpolator = _load_interpolator(options, device) if needs_interp else None
        self.plan: JobPlan = build_plan(
            self.info,
            sha256_of(source),
            options,
            upscaler=_model_ref(self.upscaler),
            interpolator=_model_ref(self.interpolator),
        )
        self.work_dir = self.run_options.work_dir or self.settings.work_dir
        self.store = LocalStore(self.work_dir)
        self.counts = WorkCounts()

    # -- the story ----------------------------------------------------------------------------
    def run(self) -> EnhanceResult:
        started = time.perf_counter()
        plan, info = self.plan, self.info
        with _job_lock(self.work_dir, plan.job):
            self._check_disk_space()
            self._announce()
            todo = [c for c in plan.chunks if not self._segment_resumed(c)]
            final = background(self._computed(background(self._extracted(todo), name="extract")), name="compute")
            for chunk in todo:
                self._encode(chunk, final)
            report = join_segments(tasks.join_task(plan, plan.step("join"), info), self.store, self.output)
            if not self.run_options.keep_work:
                self.store.delete_prefix(plan.job)
        for message in report.dropped_streams:
            self.reporter.note(f"dropped {message}")
        out_info = probe(self.output)
        return EnhanceResult(
            input=str(self.source),
            output=str(self.output),
            job=plan.job,
            frames_in=plan.frames_in,
            frames_out=report.frames,
            rate_in=_rate(plan.rate_in),
            rate_out=_rate(plan.rate_out),
            size_in=plan.size_in,
            size_out=plan.size_out,
            duration_in=round(info.duration, 6),
            duration_out=round(out_info.duration, 6),
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
        if self.upscaler is not None:
            self.reporter.stage("upscale", plan.frames_in)
        if self.interpolator is not None:
            self.reporter.stage("interpolate", plan.frames_out)
        self.reporter.stage("encode", plan.frames_out)
        if self.info.vfr:
            self.reporter.note(f"variable frame rate input: converted to a constant {float(plan.rate_in):g} fps")

    def _check_disk_space(self) -> None:
        """Fail before any work when two chunks' batches cannot fit, not hours later."""
        needed = 2 * self.plan.work_bytes_per_chunk
        free = shutil.disk_usage(self.work_dir).free
        if needed > free * 0.95:
            raise StoreError(
                f"this job keeps up to {needed / 1e9:.1f} GB of frame batches in {self.work_dir} at a time, "
                f"but only {free / 1e9:.1f} GB are free",
                "point --work-dir (or SILKPURSE_WORK_DIR) at a larger disk, or lower --chunk-frames",
            )

    # -- the three threads --------------------------------------------------------------------
    def _segment_resumed(self, chunk: Chunk) -> bool:
        if not segment_done(self.store, self.plan.segment_key(chunk)):
            return False
        self.counts.segments_resumed += 1
        for stage in ("decode", "upscale", "interpolate", "encode"):
            frames = chunk.out_end - chunk.out_first if stage in ("interpolate", "encode") else chunk.end - chunk.first
            self.reporter.advance(stage, frames, resumed=True)
        return True

    def _extracted(self, chunks: list[Chunk]) -> Iterator[tuple[Chunk, tasks.BatchRef]]:
        """Decoding thread: each chunk's batches as they reach the store."""
        for chunk in chunks:
            task = tasks.extract_task(self.plan, self.plan.step(f"{chunk.name}/extract"), self.info)
            for done in extract_stream(task, self.store):
                self._count(done.resumed)
                if done.batch.first < chunk.end:  # the overlap frame is the next chunk's to count
                    self.reporter.advance("decode", done.batch.frames, resumed=done.resumed)
                yield chunk, done.batch

    def _computed(self, extracted: Iterator[tuple[Chunk, tasks.BatchRef]]) -> Iterator[tuple[Chunk, str]]:
        """Model thread: upscale each batch as it arrives; interpolate batch j as soon as
        batch j + 1 is ready. Yields the keys of each chunk's final batches, in order."""
        plan = self.plan
        position: dict[int, int] = {}
        for chunk, _ref in extracted:
            j = position[chunk.index] = position.get(chunk.index, -1) + 1
            batch = chunk.batches[j]
            key = plan.batch_key("extract", chunk, batch)
            if self.upscaler is not None:
                key = self._upscale(chunk, j)
            if self.interpolator is None:
                if not batch.overlap:
                    yield chunk, key
                continue
            if j > 0:
                yield chunk, self._interpolate(chunk, j - 1)
            if j == len(chunk.batches) - 1 and not batch.overlap:
                yield chunk, self._interpolate(chunk, j)

    def _upscale(self, chunk: Chunk, j: int) -> str:
        from silkpurse_upscaler.stage import upscale

        assert self.upscaler is not None
        step = self.plan.step(f"{chunk.name}/upscale/{chunk.batches[j].name}")
        result = upscale(tasks.upscale_task(self.plan, step), self.store, self.upscaler)
        self._count(result.resumed)
        if not chunk.batches[j].overlap:
            self.reporter.advance("upscale", result.output.frames, resumed=result.resumed)
        return result.output.key

    def _interpolate(self, chunk: Chunk, j: int) -> str:
        from silkpurse_interpolator.stage import interpolate

        assert self.interpolator is not None
        step = self.plan.step(f"{chunk.name}/interpolate/{chunk.batches[j].name}")
        result = interpolate(tasks.interpolate_task(self.plan, step), self.store, self.interpolator)
        self._count(result.resumed)
        self.counts.cuts.extend(result.cuts)
        self.counts.duplicates.extend(result.duplicates)
        self.reporter.advance("interpolate", result.output.frames, resumed=result.resumed)
        return result.output.key

    def _encode(self, chunk: Chunk, final: Iterator[tuple[Chunk, str]]) -> None:
        """Encoding (this thread): the chunk's segment from its batches as they are computed;
        then its batches are dropped."""
        task = tasks.encode_task(self.plan, self.plan.step(f"{chunk.name}/encode"), self.info)

        def batches() -> Iterator[FrameBatch]:
            for _ in task.sources:
                produced, key = next(final)
                assert produced.index == chunk.index, "batches arrive in plan order"
                batch = self.store.get_batch(key)
                self.reporter.advance("encode", len(batch))
                yield batch

        encode_segment(task, self.store, batches())
        self.counts.segments_computed += 1
        if not self.run_options.keep_work:
            self.store.delete_prefix(self.plan.chunk_prefix(chunk))

    def _count(self, resumed: bool) -> None:
        if resumed:
            self.counts.batches_resumed += 1
        else:
            self.counts.batches_computed += 1


def enhance(
    source: Path, output: Path, options: JobOptions, run: RunOptions | None = None, *, reporter: Reporter | None = None
) -> EnhanceResult:
    """Run the whole job on ``source`` and write ``output``."""
    return Pipeline(source, output, options, run, reporter=reporter).run()


def _load_upscaler(options: JobOptions, device: str) -> Upscaler:
    from silkpurse_upscaler.engine import Upscaler

    return Upscaler(
        options.upscale_model,
        scale=options.scale,
        device=device,
        tile=options.tile,
        denoise_strength=options.denoise_strength,
    )


def _load_interpolator(options: JobOptions, device: str) -> Interpolator:
    from silkpurse_interpolator.engine import Interpolator

    return Interpolator(options.interp_model, device=device, rife_scale=options.rife_scale)


def _model_ref(engine: Upscaler | Interpolator | None) -> ModelRef | None:
    if engine is None:
        return None
    identity = engine.identity()
    return ModelRef(engine.name, identity["weights_sha256"], identity["precision"], identity["family"])


@contextmanager
def _job_lock(work_dir: Path, job: str) -> Iterator[None]:
    """One process per job: the same command started twice must not share a work directory."""
    path = work_dir / f"{job}.lock"
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "?"
            raise StoreError(
                f"another silkpurse run (pid {holder}) is working on this job in {work_dir}",
                "wait for it to finish, or stop it; finished work is kept either way",
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            path.unlink(missing_ok=True)


def _rate(rate: Any) -> str:
    return f"{rate.numerator}/{rate.denominator}"
