"""The ``enhance-video`` flow: one enhance job through the services, visible in Prefect.

It walks the same :class:`~silkpurse.plan.JobPlan` with the same
:class:`~silkpurse.walker.PlanWalker` as ``silkpurse enhance`` (there is no second description
of the pipeline): fetch and probe the input, plan it with the model replicas' identities,
upload the input into the store, and walk the plan with :class:`~silkpurse_orchestrator.stages.FlowStages`,
so every stage call is a task run. The walker pipelines per chunk and per batch and keeps as
many model calls in flight as the replicas take (``SILKPURSE_CALLS_PER_REPLICA`` per replica).
The joined output is checked (its frame count) and published: renamed into place at a path, or
copied whole at an ``s3://`` URI. A re-run with the same parameters is the same job: every
finished batch and segment is found in the store and not computed again.

Parameters mirror ``silkpurse enhance``'s options, typed, so the Prefect UI shows a form.
"""

# No `from __future__ import annotations`: Prefect builds the parameters form from the real types.

import inspect
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlsplit

from prefect import flow
from prefect.logging import get_run_logger
from pydantic import Field

from silkpurse.errors import OptionsError
from silkpurse.fetch import fetch_input, url_scheme
from silkpurse.files import sha256_of
from silkpurse.media.codecs import container_for
from silkpurse.media.probe import probe
from silkpurse.output import check_output_path, claim_output
from silkpurse.plan import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_CHUNK_FRAMES,
    DEFAULT_INTERP_MODEL,
    DEFAULT_UPSCALE_MODEL,
    JobOptions,
    JobPlan,
)
from silkpurse.s3 import S3Store
from silkpurse.service.client import input_key_of, output_key_of
from silkpurse.service.remote import RemoteStages, Services, check_frames, plan_for_replicas
from silkpurse.settings import Settings, get_settings
from silkpurse.store import BatchStore, open_store
from silkpurse.timeline import as_rate
from silkpurse.walker import PlanWalker
from silkpurse_orchestrator import FLOW_NAME
from silkpurse_orchestrator.report import FlowReporter, comparison, publish_comparison
from silkpurse_orchestrator.stages import FlowStages


@flow(name=FLOW_NAME, persist_result=False, log_prints=True)
def enhance_video(
    input: str,
    output: str,
    scale: Literal[1, 2, 3, 4] = 2,
    upscale_model: str = DEFAULT_UPSCALE_MODEL,
    interpolate: Annotated[int, Field(ge=1, le=16)] = 2,
    fps: str | None = None,
    interp_model: str = DEFAULT_INTERP_MODEL,
    rife_scale: float = 1.0,
    scene_threshold: Annotated[float | None, Field(gt=0)] = None,
    codec: Literal["h264", "h265", "av1"] = "h264",
    crf: Annotated[int | None, Field(ge=0, le=63)] = None,
    preset: str | None = None,
    ten_bit: bool | None = None,
    batch_size: Annotated[int, Field(ge=1, le=1024)] = DEFAULT_BATCH_SIZE,
    chunk_frames: Annotated[int, Field(ge=2, le=1_000_000)] = DEFAULT_CHUNK_FRAMES,
    order: Literal["upscale-first", "interpolate-first"] = "upscale-first",
    keep_work: bool = False,
) -> dict[str, Any]:
    """Enhance a recording through the silkpurse services: upscale, interpolate, encode.

    Args:
        input: The recording: s3://bucket/key, an http(s) URL or a path the worker reads.
        output: Where the result goes: s3://bucket/key.mp4 or a path the worker writes.
        scale: Upscale factor (1: off).
        upscale_model: The upscaler's model (its replicas must run it).
        interpolate: Frame-rate multiplier (1: off).
        fps: Target frame rate instead of a multiplier (60, 30000/1001).
        interp_model: The interpolator's model (its replicas must run it).
        rife_scale: RIFE's flow scale: 0.25, 0.5, 1, 2 or 4.
        scene_threshold: Scene-cut sensitivity (empty: the model's default).
        codec: Video codec of the output.
        crf: Quality, lower is better (empty: 18 h264, 20 h265, 30 av1).
        preset: Encoder preset (empty: the codec's default).
        ten_bit: 10-bit output (empty: as the source).
        batch_size: Frames per batch.
        chunk_frames: Frames per chunk (segments are encoded and resumed per chunk).
        order: Which model runs first when both do: interpolate the upscaled frames, or
            interpolate at the source size and upscale every output frame.
        keep_work: Keep the job's batches in the store after success.
    """
    options = job_options(locals())
    return run_job(input, output, options, keep_work=keep_work)


def job_options(parameters: Mapping[str, Any]) -> JobOptions:
    """The job's options from the flow's parameters: those given, the flow's defaults for the
    others (the flow and the Jobs API build them the same way)."""
    bound = inspect.signature(enhance_video.fn).bind_partial(**parameters)
    bound.apply_defaults()
    given = bound.arguments
    fps = given["fps"]
    return JobOptions(
        scale=given["scale"],
        upscale_model=given["upscale_model"],
        interpolate=1 if fps else given["interpolate"],
        fps=as_rate(fps) if fps else None,
        interp_model=given["interp_model"],
        rife_scale=given["rife_scale"],
        scene_threshold=given["scene_threshold"],
        codec=given["codec"],
        crf=given["crf"],
        preset=given["preset"],
        ten_bit=given["ten_bit"],
        batch_size=given["batch_size"],
        chunk_frames=given["chunk_frames"],
        order=given["order"],
    )


def run_job(
    input: str, output: str, options: JobOptions, *, keep_work: bool, settings: Settings | None = None
) -> dict[str, Any]:
    """The flow's body, inside a flow run."""
    started = time.perf_counter()
    log = get_run_logger()
    settings = settings or get_settings()
    options.validate()
    destination = Destination.parse(output, settings)
    source = fetch_input(input, settings)
    info = probe(source)
    destination.check(source)
    services = Services.from_settings(settings)
    store = open_store(settings)
    input_sha256 = sha256_of(source)
    plan = plan_for_replicas(info, input_sha256, options, services)
    log.info(
        "job %s: %d frames in %d chunks, %s -> %s, fan-out %s",
        plan.job,
        plan.frames_in,
        len(plan.chunks),
        plan.size_in,
        plan.size_out,
        services.fanout,
    )
    input_key = input_key_of(input_sha256, source)
    if not store.exists(input_key):
        store.upload(input_key, source)
    store.put(f"{plan.job}/plan.json", json.dumps(plan.to_json()).encode())  # the plan by reference
    remote = RemoteStages(services, store, plan.job, input_key, output_key_of(plan.job, destination.name))
    stages = FlowStages(remote)
    reporter = FlowReporter()
    walker = PlanWalker(plan, info, stages, reporter, keep_work=keep_work, fanout=services.fanout)
    try:
        joined = walker.run(Path(destination.name))
        published = destination.publish(store, remote.output_key, joined.frames, source, plan)
        store.delete_prefix(f"outputs/{plan.job}")
        result = walker.result(input, output, joined, started, output_file=published)
        reporter.publish_summary(result)
    finally:
        reporter.close()
        destination.cleanup()
    return result.to_json()


class Destination:
    """Where the output goes: a path the worker writes, or an ``s3://`` URI on the store's server."""

    def __init__(self, uri: str, settings: Settings, *, bucket: str | None, key: str | None, path: Path | None) -> None:
        self.uri, self.settings, self.bucket, self.key, self.path = uri, settings, bucket, key, path
        self.name = Path(key).name if key else Path(uri).name
        self._local: Path | None = None

    @classmethod
    def parse(cls, uri: str, settings: Settings) -> "Destination":
        scheme = url_scheme(uri)  # refuses schemes other than http(s):// and s3://
        if scheme is None:
            return cls(uri, settings, bucket=None, key=None, path=Path(uri))
        if scheme != "s3":
            raise OptionsError(f"the output {uri} is not a path or an s3:// URI", "give s3://bucket/key.mp4 or a path")
        parts = urlsplit(uri)
        bucket, key = parts.netloc, unquote(parts.path.lstrip("/"))
        if not bucket or not key or key.endswith("/"):
            raise OptionsError(f"the output {uri} names no object", "give s3://bucket/key.mp4")
        allowed = {settings.s3_bucket, *(b.strip() for b in settings.s3_output_buckets.split(",") if b.strip())}
        if bucket not in allowed:
            raise OptionsError(
                f"the output {uri} is in bucket {bucket}, which silkpurse may not write",
                f"use bucket {settings.s3_bucket} or add {bucket} to SILKPURSE_S3_OUTPUT_BUCKETS",
            )
        if not settings.s3_endpoint:
            raise OptionsError(f"the output {uri} needs an object store", "set SILKPURSE_S3_ENDPOINT")
        return cls(uri, settings, bucket=bucket, key=key, path=None)

    def check(self, source: Path) -> None:
        """Refuse, before any work, an output no container holds or a path that can't be written."""
        container_for(Path(self.name))
        if self.path is not None:
            check_output_path(self.path, source)

    def publish(self, store: BatchStore, key: str, frames: int, source: Path, plan: JobPlan) -> Path:
        """Check the joined output's frames, show one frame before/after, and put it in place.
        Returns a local copy of the output."""
        if self.path is not None:
            with claim_output(self.path, inputs=[source]) as claim:
                store.download(key, claim.temp)
                self._verified(claim.temp, frames, source, plan)
                claim.publish()
            return self.path
        assert self.bucket is not None and self.key is not None
        if not isinstance(store, S3Store):
            raise OptionsError(f"the output {self.uri} needs the S3 store", "set SILKPURSE_S3_ENDPOINT")
        self._local = self.settings.work_dir / "flow-outputs" / f"{plan.job}{Path(self.name).suffix}"
        self._local.parent.mkdir(parents=True, exist_ok=True)
        store.download(key, self._local)
        self._verified(self._local, frames, source, plan)
        store.copy_out(key, self.bucket, self.key)
        return self._local

    def cleanup(self) -> None:
        if self._local is not None:
            self._local.unlink(missing_ok=True)

    def _verified(self, path: Path, frames: int, source: Path, plan: JobPlan) -> None:
        check_frames(path, self.name, frames)
        seconds = 0.5 * plan.frames_in / plan.rate_in
        try:
            publish_comparison(comparison(source, path, seconds), seconds)
        except Exception as err:  # the picture is a report, never a reason to lose the output
            get_run_logger().warning("no before/after image: %s", err)
