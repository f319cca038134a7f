"""The embedded runner: a whole job in one process, walking the job plan over a local store.

It reads top to bottom: probe the input, load the engines the options need (a bad model or
device fails before any decoding), build the :class:`~silkpurse.plan.JobPlan` from the engines'
identities, take the job's lock, check that two chunks' batches fit on the disk, and hand the
plan to the :class:`~silkpurse.walker.PlanWalker` with :class:`LocalStages`: each stage's own
entry point (``silkpurse_<stage>.stage``), the very functions the services wrap, called in this
process over a :class:`~silkpurse.store.LocalStore` in the work directory.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from silkpurse import tasks
from silkpurse.device import usable_cores
from silkpurse.errors import OptionsError, StoreError
from silkpurse.files import sha256_of
from silkpurse.media.probe import VideoInfo, probe
from silkpurse.plan import JobOptions, JobPlan, build_plan, stages_needed
from silkpurse.progress import Reporter, SilentReporter
from silkpurse.settings import Settings, get_settings
from silkpurse.store import LocalStore
from silkpurse.walker import EnhanceResult, Fanout, PlanWalker
from silkpurse_encoder.encode import check_output
from silkpurse_encoder.stage import clean_speech, encode_segment, join_segments, segment_done
from silkpurse_extractor.stage import extract_stream

if TYPE_CHECKING:
    from silkpurse.nn.transfer import ResidentBatches
    from silkpurse_interpolator.engine import Interpolator
    from silkpurse_upscaler.engine import Upscaler


@dataclass(frozen=True)
class RunOptions:
    """Where and how this process runs a job; nothing here changes the output's bytes."""

    device: str | None = None
    keep_work: bool = False
    work_dir: Path | None = None
    encoders: int | None = None
    """Chunk segments encoded at once (``None``: :func:`default_encoders`)."""

    def __post_init__(self) -> None:
        if self.encoders is not None and not 1 <= self.encoders <= MAX_ENCODERS:
            raise OptionsError(
                f"{self.encoders} encoders at once is impossible", f"use 1 to {MAX_ENCODERS} (--encoders)"
            )


#: Each encoder is an ffmpeg process with its own threads and two chunks of frames in flight.
MAX_ENCODERS = 32


def default_encoders(models_on_cpu: bool) -> int:
    """Chunk segments to encode at once. With models on the CPU one: the networks use every
    core, and an encoder runs beside them already. Otherwise (a GPU, or no model) the cores are
    the encoders', and one x264 process neither uses 16 cores well nor keeps up with a GPU: one
    encoder per 4 cores (each still threads itself; unmeasured on a GPU machine, see
    docs/benchmarks.md). The count never changes the bytes: each segment is encoded alone."""
    if models_on_cpu:
        return 1
    return max(1, min(8, usable_cores() // 4))


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
            upscaler=self.upscaler.model_ref() if self.upscaler else None,
            interpolator=self.interpolator.model_ref() if self.interpolator else None,
        )
        self.work_dir = self.run_options.work_dir or self.settings.work_dir
        self.store = LocalStore(self.work_dir)
        engines = [e for e in (self.upscaler, self.interpolator) if e is not None]
        self.encoders = self.run_options.encoders or default_encoders(any(e.device.type == "cpu" for e in engines))

    def run(self) -> EnhanceResult:
        started = time.perf_counter()
        plan, info = self.plan, self.info
        # Upscaled batches stay on the device for the interpolator (their store copies are for resume).
        resident = plan.upscaler is not None and plan.interpolator is not None and not plan.interpolates_first
        calls = LocalStages(self.store, self.upscaler, self.interpolator, resident=resident)
        walker = PlanWalker(
            plan, info, calls, self.reporter, keep_work=self.run_options.keep_work, fanout=Fanout(encode=self.encoders)
        )
        with _job_lock(self.work_dir, plan.job):
            self._check_disk_space()
            report = walker.run(self.output)
        return walker.result(self.source, self.output, report, started)

    def _check_disk_space(self) -> None:
        """Fail before any work when the chunks in flight cannot fit, not hours later."""
        needed = (self.encoders + 1) * self.plan.work_bytes_per_chunk
        free = shutil.disk_usage(self.work_dir).free
        if needed > free * 0.95:
            raise StoreError(
                f"this job keeps up to {needed / 1e9:.1f} GB of frame batches in {self.work_dir} at a time, "
                f"but only {free / 1e9:.1f} GB are free",
                "point --work-dir (or SILKPURSE_WORK_DIR) at a larger disk, or lower --chunk-frames or --encoders",
            )


class LocalStages:
    """The stage entry points called in this process, over a local store."""

    def __init__(
        self, store: LocalStore, upscaler: Upscaler | None, interpolator: Interpolator | None, *, resident: bool = False
    ) -> None:
        self.store, self.upscaler, self.interpolator = store, upscaler, interpolator
        self.resident: ResidentBatches | None = None
        if resident:
            from silkpurse.nn.transfer import ResidentBatches

            self.resident = ResidentBatches()

    def extract(self, task: tasks.ExtractTask) -> Iterator[tasks.ExtractedBatch]:
        return extract_stream(task, self.store)

    def upscale(self, task: tasks.UpscaleTask) -> tasks.UpscaleResult:
        from silkpurse_upscaler.stage import upscale

        assert self.upscaler is not None
        return upscale(task, self.store, self.upscaler, self.resident)

    def interpolate(self, task: tasks.InterpolateTask) -> tasks.InterpolateResult:
        from silkpurse_interpolator.stage import interpolate

        assert self.interpolator is not None
        return interpolate(task, self.store, self.interpolator, self.resident)

    def encode_segment(self, task: tasks.EncodeTask, ready: Iterator[str]) -> tasks.SegmentResult:
        # Frames stream into ffmpeg as they are computed: encoding overlaps the models.
        return encode_segment(task, self.store, (self.store.get_batch(key) for key in ready))

    def clean_speech(self, task: tasks.SpeechTask) -> tasks.SpeechResult:
        return clean_speech(task, self.store)

    def join(self, task: tasks.JoinTask, output: Path) -> tasks.JoinResult:
        return join_segments(task, self.store, output)

    def segment_done(self, key: str) -> bool:
        return segment_done(self.store, key)

    def drop(self, prefix: str) -> None:
        if self.resident is not None:
            self.resident.drop_prefix(prefix)
        self.store.delete_prefix(prefix)


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
        precision=options.precision,
        backend=options.backend or "eager",
    )


def _load_interpolator(options: JobOptions, device: str) -> Interpolator:
    from silkpurse_interpolator.engine import Interpolator

    return Interpolator(
        options.interp_model,
        device=device,
        rife_scale=options.rife_scale,
        precision=options.precision,
        backend=options.backend or "eager",
    )


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
