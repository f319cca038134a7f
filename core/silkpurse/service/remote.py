"""Running a job plan through the services: the stage calls over gRPC and the store.

Every remote runner (``silkpurse enhance --remote``, the Prefect flow) uses these: it probes the
input, asks the model services which weights and precision their replicas run
(:func:`plan_for_replicas`), uploads the input into the store and hands the plan to the
:class:`~silkpurse.walker.PlanWalker` with :class:`RemoteStages` and :meth:`Services.fanout`
(calls in flight per stage, from the replica counts).

Addresses come from ``SILKPURSE_{EXTRACTOR,UPSCALER,INTERPOLATOR,ENCODER}_ADDR``: ``host:port``,
a comma list of replicas or a ``dns:///`` name; calls are balanced over the replicas and a
call that fails with UNAVAILABLE or RESOURCE_EXHAUSTED is retried on another
(:mod:`silkpurse.service.client`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from silkpurse import tasks
from silkpurse.errors import MediaError, OptionsError
from silkpurse.media.probe import VideoInfo, count_frames
from silkpurse.models import ModelKind, looks_like_path
from silkpurse.output import claim_output
from silkpurse.plan import JobOptions, JobPlan, build_plan, stages_needed
from silkpurse.service.client import (
    EncoderClient,
    ExtractorClient,
    InterpolatorClient,
    ModelDescription,
    UpscalerClient,
    connect,
    replica_count,
)
from silkpurse.settings import Settings
from silkpurse.store import BatchStore
from silkpurse.walker import Fanout

StageKind = Literal["upscaler", "interpolator"]


@dataclass(frozen=True)
class Services:
    extractor: ExtractorClient
    upscaler: UpscalerClient
    interpolator: InterpolatorClient
    encoder: EncoderClient
    fanout: Fanout = Fanout()

    @classmethod
    def from_settings(cls, settings: Settings) -> Services:
        per_replica = settings.calls_per_replica
        return cls(
            ExtractorClient(connect(settings.extractor_addr)),
            UpscalerClient(connect(settings.upscaler_addr)),
            InterpolatorClient(connect(settings.interpolator_addr)),
            EncoderClient(connect(settings.encoder_addr)),
            Fanout(
                upscale=per_replica * replica_count(settings.upscaler_addr),
                interpolate=per_replica * replica_count(settings.interpolator_addr),
                encode=replica_count(settings.encoder_addr),
            ),
        )


def plan_for_replicas(info: VideoInfo, input_sha256: str, options: JobOptions, services: Services) -> JobPlan:
    """The job's plan with the exact weights and precision the model replicas run (a replica
    runs one model with one set of options: a job asking for others is refused before any work)."""
    options.validate()
    needs_upscale, needs_interp = stages_needed(info, options)
    upscaler = services.upscaler.describe() if needs_upscale else None
    interpolator = services.interpolator.describe() if needs_interp else None
    _check_replica(
        "upscaler",
        upscaler,
        options.upscale_model,
        {"scale": options.scale, "tile": options.tile, "denoise_strength": options.denoise_strength},
    )
    _check_replica("interpolator", interpolator, options.interp_model, {"rife_scale": options.rife_scale})
    for stage, replica in (("upscaler", upscaler), ("interpolator", interpolator)):
        if replica is not None and options.precision not in (None, replica.model.precision):
            raise OptionsError(
                f"the {stage} service runs {replica.model.precision}, but this job asks for {options.precision}",
                f"drop --precision, or start {stage} replicas with that precision",
            )
        if replica is not None and options.backend not in (None, replica.model.backend):
            raise OptionsError(
                f"the {stage} service runs the {replica.model.backend} backend, "
                f"but this job asks for {options.backend}",
                f"drop --backend, or start {stage} replicas with --backend {options.backend}",
            )
    return build_plan(
        info,
        input_sha256,
        options,
        upscaler=upscaler.model if upscaler else None,
        interpolator=interpolator.model if interpolator else None,
    )


class RemoteStages:
    """The stage entry points called through the services (a :class:`~silkpurse.walker.StageCalls`)."""

    def __init__(self, services: Services, store: BatchStore, job: str, input_key: str, output_key: str) -> None:
        self.services, self.store = services, store
        self.job, self.input_key, self.output_key = job, input_key, output_key

    def extract(self, task: tasks.ExtractTask) -> Iterator[tasks.ExtractedBatch]:
        return self.services.extractor.extract_stream(self.job, task, self.input_key)

    def upscale(self, task: tasks.UpscaleTask) -> tasks.UpscaleResult:
        return self.services.upscaler.upscale(self.job, task)

    def interpolate(self, task: tasks.InterpolateTask) -> tasks.InterpolateResult:
        return self.services.interpolator.interpolate(self.job, task)

    def encode_segment(self, task: tasks.EncodeTask, ready: Iterator[str]) -> tasks.SegmentResult:
        for _key in ready:  # the encoder reads the batches from the store once all are there
            pass
        return self.services.encoder.encode_segment(self.job, task, self.input_key)

    def clean_speech(self, task: tasks.SpeechTask) -> tasks.SpeechResult:
        raise OptionsError(
            "--clean-audio is not available through the services yet (the encoder service has no CleanSpeech call)",
            "run the job without --remote, or clean the audio first with `silkpurse clean-audio`",
        )

    def join(self, task: tasks.JoinTask, output: Path) -> tasks.JoinResult:
        result = self.services.encoder.join(self.job, task, self.input_key, self.output_key)
        # Published like every output (locked, unique temporary name, checked, renamed): inside the
        # CLI's claim of ``output`` this joins it.
        with claim_output(output) as claim:
            self.store.download(self.output_key, claim.temp)
            claim.publish(verify=lambda tmp: check_frames(tmp, output, result.frames))
        return tasks.JoinResult(
            str(output), result.frames, result.copied_streams, result.reencoded_streams, result.dropped_streams
        )

    def segment_done(self, key: str) -> bool:
        return self.store.exists(key)

    def drop(self, prefix: str) -> None:
        self.store.delete_prefix(prefix)


def _check_replica(
    stage: StageKind, description: ModelDescription | None, model: str, wanted: dict[str, object]
) -> None:
    """A replica runs one model with one set of options: say so before any work, not per call."""
    if description is None:
        return
    runs = {"model": description.model.name, **description.options}
    kind: ModelKind = "upscale" if stage == "upscaler" else "interpolate"
    wanted = {"model": Path(model).stem if looks_like_path(model, kind) else model, **wanted}
    differing = {k: v for k, v in wanted.items() if k in runs and runs[k] != v}
    if differing:
        given = ", ".join(f"{k}={v}" for k, v in differing.items())
        running = ", ".join(f"{k}={runs[k]}" for k in differing)
        raise OptionsError(
            f"the {stage} service runs {running}, but this job asks for {given}",
            f"run the job with the {stage}'s options, or start {stage} replicas with these",
        )


def check_frames(path: Path, output: Path | str, frames: int) -> None:
    """The downloaded copy of ``output`` at ``path`` holds the frames the encoder service reported."""
    found = count_frames(path)
    if found != frames:
        raise MediaError(
            f"the downloaded {Path(output).name} holds {found} frames, the encoder wrote {frames}", "run the job again"
        )
