"""The remote runner (``silkpurse enhance --remote``): the same plan and the same walker as the
embedded runner, with every stage called through its gRPC service over the shared store.

It reads top to bottom: probe the input here, ask the model services which weights and
precision their replicas run (``Describe``), build the :class:`~silkpurse.plan.JobPlan` from
those identities, upload the input into the store, and hand the plan to the
:class:`~silkpurse_cli.walker.PlanWalker` with :class:`RemoteStages`. The join writes the output
into the store; it is downloaded, checked and renamed into place here.

Addresses come from ``SILKPURSE_{EXTRACTOR,UPSCALER,INTERPOLATOR,ENCODER}_ADDR``: ``host:port``,
a comma list of replicas or a ``dns:///`` name; calls are balanced over the replicas and a
call that fails with UNAVAILABLE or RESOURCE_EXHAUSTED is retried on another
(:mod:`silkpurse.service.client`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from silkpurse import tasks
from silkpurse.errors import MediaError, OptionsError
from silkpurse.files import sha256_of
from silkpurse.media.probe import VideoInfo, count_frames, probe
from silkpurse.models import ModelKind, looks_like_path
from silkpurse.output import claim_output
from silkpurse.plan import JobOptions, JobPlan, build_plan, stages_needed
from silkpurse.progress import Reporter, SilentReporter
from silkpurse.service.client import (
    EncoderClient,
    ExtractorClient,
    InterpolatorClient,
    ModelDescription,
    UpscalerClient,
    connect,
    input_key_of,
    output_key_of,
)
from silkpurse.settings import Settings, get_settings
from silkpurse.store import BatchStore, open_store
from silkpurse_cli.walker import EnhanceResult, PlanWalker
from silkpurse_encoder.encode import check_output

StageKind = Literal["upscaler", "interpolator"]


@dataclass(frozen=True)
class Services:
    extractor: ExtractorClient
    upscaler: UpscalerClient
    interpolator: InterpolatorClient
    encoder: EncoderClient

    @classmethod
    def from_settings(cls, settings: Settings) -> Services:
        return cls(
            ExtractorClient(connect(settings.extractor_addr)),
            UpscalerClient(connect(settings.upscaler_addr)),
            InterpolatorClient(connect(settings.interpolator_addr)),
            EncoderClient(connect(settings.encoder_addr)),
        )


class RemoteStages:
    """The stage entry points called through the services (a :class:`~silkpurse_cli.walker.StageCalls`)."""

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
            claim.publish(verify=lambda tmp: _check_frames(tmp, output, result.frames))
        return tasks.JoinResult(
            str(output), result.frames, result.copied_streams, result.reencoded_streams, result.dropped_streams
        )

    def segment_done(self, key: str) -> bool:
        return self.store.exists(key)

    def drop(self, prefix: str) -> None:
        self.store.delete_prefix(prefix)


class RemotePipeline:
    """One enhance job through the services: the probed input, the replicas' models, the plan."""

    def __init__(
        self,
        source: Path,
        output: Path,
        options: JobOptions,
        *,
        keep_work: bool = False,
        reporter: Reporter | None = None,
        settings: Settings | None = None,
        services: Services | None = None,
    ) -> None:
        options.validate()
        self.settings = settings or get_settings()
        self.source, self.output, self.keep_work = source, output, keep_work
        self.reporter = reporter or SilentReporter()
        self.info: VideoInfo = probe(source)
        check_output(output, source)
        self.services = services or Services.from_settings(self.settings)
        self.store = open_store(self.settings)
        self.input_sha256 = sha256_of(source)
        needs_upscale, needs_interp = stages_needed(self.info, options)
        upscaler = self.services.upscaler.describe() if needs_upscale else None
        interpolator = self.services.interpolator.describe() if needs_interp else None
        _check_replica(
            "upscaler",
            upscaler,
            options.upscale_model,
            {"scale": options.scale, "tile": options.tile, "denoise_strength": options.denoise_strength},
        )
        _check_replica("interpolator", interpolator, options.interp_model, {"rife_scale": options.rife_scale})
        self.plan: JobPlan = build_plan(
            self.info,
            self.input_sha256,
            options,
            upscaler=upscaler.model if upscaler else None,
            interpolator=interpolator.model if interpolator else None,
        )

    def run(self) -> EnhanceResult:
        started = time.perf_counter()
        input_key = input_key_of(self.input_sha256, self.source)
        if not self.store.exists(input_key):
            self.store.upload(input_key, self.source)
        output_key = output_key_of(self.plan.job, self.output.name)
        calls = RemoteStages(self.services, self.store, self.plan.job, input_key, output_key)
        walker = PlanWalker(self.plan, self.info, calls, self.reporter, keep_work=self.keep_work)
        report = walker.run(self.output)
        if not self.keep_work:
            self.store.delete_prefix(f"outputs/{self.plan.job}")
        return walker.result(self.source, self.output, report, started)


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


def _check_frames(path: Path, output: Path, frames: int) -> None:
    """The downloaded output holds the frames the encoder service reported."""
    found = count_frames(path)
    if found != frames:
        raise MediaError(
            f"the downloaded {output.name} holds {found} frames, the encoder wrote {frames}", "run the job again"
        )
