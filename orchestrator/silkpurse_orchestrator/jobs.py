"""The Jobs gRPC API (``silkpurse.v1.JobsService``): other systems start, read, follow and
cancel runs of the ``enhance-video/default`` deployment.

A job is a flow run; its id is the flow run's UUID. The service keeps no state: every answer is
read from the Prefect server (``PREFECT_API_URL``), so replicas are interchangeable and a
restart loses nothing.

* ``SubmitJob`` validates every field into the flow's parameters (one clear INVALID_ARGUMENT
  message for the first bad one), then creates the flow run from the deployment. Each submit
  carries a Prefect idempotency key (the caller's, or a fresh one), so neither the caller's
  retries nor the Prefect client's own create a second run.
* ``GetJob`` reads the flow run and its progress artifact (published by the flow's
  :class:`~silkpurse_orchestrator.report.FlowReporter`).
* ``WatchJob`` polls both every :data:`POLL_S` and sends an event only on a change, until the
  run ends, the caller cancels or its deadline passes, or this server drains.
* ``CancelJob`` proposes Prefect's ``Cancelling`` state; the runner serving the deployment then
  stops the run's process and marks it ``Cancelled`` (a run no worker has picked up is
  cancelled by the server at once).

The server is the core's :func:`~silkpurse.service.server.serve` (health, reflection, graceful
shutdown, metrics, logs, the one error mapping), port 50055 by default. Errors:
:class:`~silkpurse.errors.OptionsError` INVALID_ARGUMENT, unknown job NOT_FOUND, Prefect server
unreachable UNAVAILABLE (see :mod:`silkpurse.service.status`).
"""

from __future__ import annotations

import json
import logging
import re
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import grpc
import httpx
from google.protobuf.timestamp_pb2 import Timestamp
from prefect import get_client
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.actions import DeploymentFlowRunCreate
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterType
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.client.schemas.responses import OrchestrationResult
from prefect.client.schemas.sorting import ArtifactSort
from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError
from prefect.settings import PREFECT_API_URL
from prefect.states import Cancelling, Scheduled, to_state_create
from prefect.utilities.urls import url_for

from silkpurse.errors import OptionsError, SilkpurseError
from silkpurse.fetch import url_scheme
from silkpurse.media.codecs import CODECS, container_for
from silkpurse.service.server import serve
from silkpurse.service.settings import ServiceSettings
from silkpurse.service.status import AlreadyExists, NotFound, NotReady, Unreachable, WrongState
from silkpurse.v1 import common_pb2, jobs_pb2, jobs_pb2_grpc
from silkpurse_orchestrator import DEPLOYMENT
from silkpurse_orchestrator.flow import job_options

SERVICE = jobs_pb2.DESCRIPTOR.services_by_name["JobsService"].full_name
log = logging.getLogger("silkpurse.jobs")

#: Seconds between two looks at a watched job (two requests to the Prefect API each).
POLL_S = 0.5
#: Tag of the flow runs this API started (shown in the Prefect UI).
TAG = "jobs-api"
#: Longest input or output URI, and idempotency key, accepted.
MAX_URI = 4096
MAX_KEY = 128

STATES: dict[StateType, jobs_pb2.JobState] = {
    StateType.SCHEDULED: jobs_pb2.JOB_STATE_SCHEDULED,
    StateType.PENDING: jobs_pb2.JOB_STATE_PENDING,
    StateType.RUNNING: jobs_pb2.JOB_STATE_RUNNING,
    StateType.PAUSED: jobs_pb2.JOB_STATE_PAUSED,
    StateType.CANCELLING: jobs_pb2.JOB_STATE_CANCELLING,
    StateType.COMPLETED: jobs_pb2.JOB_STATE_COMPLETED,
    StateType.FAILED: jobs_pb2.JOB_STATE_FAILED,
    StateType.CRASHED: jobs_pb2.JOB_STATE_CRASHED,
    StateType.CANCELLED: jobs_pb2.JOB_STATE_CANCELLED,
}
TERMINAL = frozenset(
    {jobs_pb2.JOB_STATE_COMPLETED, jobs_pb2.JOB_STATE_FAILED, jobs_pb2.JOB_STATE_CRASHED, jobs_pb2.JOB_STATE_CANCELLED}
)
#: States in which the progress artifact may move (or has a last value worth showing).
_WITH_PROGRESS = frozenset(
    {
        jobs_pb2.JOB_STATE_RUNNING,
        jobs_pb2.JOB_STATE_PAUSED,
        jobs_pb2.JOB_STATE_CANCELLING,
        jobs_pb2.JOB_STATE_FAILED,
        jobs_pb2.JOB_STATE_CRASHED,
        jobs_pb2.JOB_STATE_CANCELLED,
    }
)
CODEC_NAMES: dict[int, str] = {
    jobs_pb2.VIDEO_CODEC_UNSPECIFIED: "h264",
    jobs_pb2.VIDEO_CODEC_H264: "h264",
    jobs_pb2.VIDEO_CODEC_H265: "h265",
    jobs_pb2.VIDEO_CODEC_AV1: "av1",
}
_NAME = re.compile(r"^[^\x00-\x20\x7f]{1,255}$")  # a model name: printable, no spaces
_KEY = re.compile(r"^[\x21-\x7e]{1,128}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


# --- requests into the flow's parameters ---------------------------------------------------------


def flow_parameters(request: jobs_pb2.SubmitJobRequest) -> dict[str, Any]:
    """The enhance-video flow's parameters for ``request``: the URIs and the fields it sets
    (the flow's defaults apply to the others). Raises :class:`OptionsError` naming the first
    field that is wrong, in the request's own words."""
    parameters: dict[str, Any] = {"input": _input(request.input), "output": _output(request.output)}
    has = request.HasField
    codec = CODEC_NAMES.get(request.codec)
    if codec is None:
        raise OptionsError(f"codec {request.codec} is not a VideoCodec", "use VIDEO_CODEC_H264, _H265 or _AV1")
    if has("scale"):
        if request.scale not in (1, 2, 3, 4):
            raise OptionsError(f"scale {request.scale} is not supported", "use 1 (off), 2, 3 or 4")
        parameters["scale"] = request.scale
    if has("upscale_model"):
        parameters["upscale_model"] = _model("upscale_model", request.upscale_model)
    if has("interpolate"):
        if not 1 <= request.interpolate <= 16:
            raise OptionsError(f"interpolate {request.interpolate} is out of range", "use 1 (off) to 16")
        parameters["interpolate"] = request.interpolate
    if has("fps"):
        if has("interpolate") and request.interpolate != 1:
            raise OptionsError("interpolate and fps both set the output frame rate", "give only one of them")
        parameters["fps"] = _rate(request.fps)
    if has("interp_model"):
        parameters["interp_model"] = _model("interp_model", request.interp_model)
    if has("rife_scale"):
        if request.rife_scale not in (0.25, 0.5, 1.0, 2.0, 4.0):
            raise OptionsError(f"rife_scale {request.rife_scale:g} is not supported", "use 0.25, 0.5, 1, 2 or 4")
        parameters["rife_scale"] = request.rife_scale
    if has("scene_threshold"):
        if not 0 < request.scene_threshold < float("inf"):
            raise OptionsError(
                f"scene_threshold {request.scene_threshold:g} is impossible", "use e.g. 0.12, or 1 to disable cuts"
            )
        parameters["scene_threshold"] = request.scene_threshold
    if request.codec != jobs_pb2.VIDEO_CODEC_UNSPECIFIED:
        parameters["codec"] = codec
    if has("crf"):
        low, high = CODECS[codec].crf_range
        if not low <= request.crf <= high:
            raise OptionsError(f"crf {request.crf} is out of range for {codec}", f"use {low}..{high}")
        parameters["crf"] = request.crf
    if has("preset"):
        if request.preset not in CODECS[codec].presets:
            raise OptionsError(
                f"preset {request.preset!r} is not one of {codec}'s", f"use one of {', '.join(CODECS[codec].presets)}"
            )
        parameters["preset"] = request.preset
    if has("ten_bit"):
        parameters["ten_bit"] = request.ten_bit
    if has("batch_size"):
        if not 1 <= request.batch_size <= 1024:
            raise OptionsError(f"batch_size {request.batch_size} is out of range", "use 1..1024")
        parameters["batch_size"] = request.batch_size
    if has("chunk_frames"):
        if not 2 <= request.chunk_frames <= 1_000_000:
            raise OptionsError(f"chunk_frames {request.chunk_frames} is out of range", "use 2..1000000")
        parameters["chunk_frames"] = request.chunk_frames
    if request.keep_work:
        parameters["keep_work"] = True
    if request.idempotency_key and not _KEY.match(request.idempotency_key):
        raise OptionsError(
            "idempotency_key is not 1 to 128 printable ASCII characters", "use e.g. a UUID or your own request id"
        )
    job_options(parameters).validate()  # the plan's own rules, the options the flow will build
    return parameters


def _uri(field: str, value: str) -> str:
    if not value:
        raise OptionsError(f"{field} is missing", f"set {field} to an s3:// URI or a path the flow worker can reach")
    if len(value) > MAX_URI or _CONTROL.search(value) or value != value.strip():
        raise OptionsError(f"{field} is not a usable URI or path", f"give at most {MAX_URI} characters, no controls")
    return value


def _input(value: str) -> str:
    url_scheme(_uri("input", value))  # an InputError (INVALID_ARGUMENT) for schemes silkpurse does not read
    return value


def _output(value: str) -> str:
    """A path, or ``s3://bucket/key`` whose name picks a container. (Which buckets may be written
    is the flow worker's setting: a refused bucket fails the run, with that message.)"""
    _uri("output", value)
    scheme = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", value)
    name = value
    if scheme and scheme.group(1).lower() != "file":
        parts = urlsplit(value)
        key = unquote(parts.path.lstrip("/"))
        if scheme.group(1).lower() != "s3" or not parts.netloc or not key or key.endswith("/"):
            raise OptionsError(f"output {value} is not a path or an s3:// URI", "give s3://bucket/key.mp4 or a path")
        name = key
    try:
        container_for(Path(name))
    except OptionsError as err:
        raise OptionsError(f"output {value}: {err.what}", err.fix) from None
    return value


def _model(field: str, name: str) -> str:
    if not _NAME.match(name):
        raise OptionsError(f"{field} {name!r} is not a model name", "give e.g. realesr-animevideov3 or rife-hdv3")
    return name


def _rate(rate: common_pb2.Rational) -> str:
    if rate.num <= 0 or rate.den <= 0:
        raise OptionsError(f"fps {rate.num}/{rate.den} is impossible", "give a positive rate, e.g. 60/1 or 30000/1001")
    return str(rate.num) if rate.den == 1 else f"{rate.num}/{rate.den}"


def job_uuid(job_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(job_id)
    except ValueError:
        shown = job_id if len(job_id) <= 64 else job_id[:64] + "..."
        raise OptionsError(f"job_id {shown!r} is not a job id", "give the UUID SubmitJob returned") from None


# --- the Prefect API ---------------------------------------------------------------------------


@contextmanager
def prefect_api(what: str) -> Iterator[SyncPrefectClient]:
    """A client of the Prefect API, its failures turned into silkpurse's errors (one line each)."""
    try:
        with get_client(sync_client=True) as client:
            yield client
    except SilkpurseError:
        raise
    except ObjectNotFound:
        raise NotFound(f"{what}: not found on the Prefect server") from None
    except PrefectHTTPStatusError as err:
        raise _http_error(what, err.response) from None
    except httpx.TransportError as err:
        raise Unreachable(
            f"the Prefect server at {PREFECT_API_URL.value()} does not answer ({type(err).__name__}) to {what}",
            "start it, or point PREFECT_API_URL at it; then retry",
        ) from None


def _http_error(what: str, response: httpx.Response) -> SilkpurseError:
    code = response.status_code
    try:
        detail = str(response.json().get("detail", "")).replace("\n", " ")
    except (ValueError, AttributeError):
        detail = response.text[:200].replace("\n", " ")
    if code >= 500 or code in (408, 429):
        return Unreachable(f"the Prefect server failed {what} (HTTP {code}: {detail})", "retry later")
    if code in (401, 403):
        return WrongState(f"the Prefect server refused {what} (HTTP {code})", "check PREFECT_API_KEY or _AUTH_STRING")
    return OptionsError(f"the Prefect server refused {what} (HTTP {code}: {detail})")


def _timestamp(when: datetime | None) -> Timestamp | None:
    if when is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(when.astimezone(UTC))
    return stamp


def _now() -> Timestamp:
    stamp = Timestamp()
    stamp.GetCurrentTime()
    return stamp


def job_message(flow_run: FlowRun, progress: float) -> jobs_pb2.Job:
    state = flow_run.state
    job_state = STATES.get(state.type, jobs_pb2.JOB_STATE_UNSPECIFIED) if state else jobs_pb2.JOB_STATE_UNSPECIFIED
    parameters = flow_run.parameters or {}
    return jobs_pb2.Job(
        job_id=str(flow_run.id),
        state=job_state,
        state_name=state.name if state and state.name else "",
        progress_percent=100.0 if job_state == jobs_pb2.JOB_STATE_COMPLETED else progress,
        message=(state.message or "").strip() if state else "",
        input=str(parameters.get("input", "")),
        output=str(parameters.get("output", "")),
        create_time=_timestamp(flow_run.created),
        start_time=_timestamp(flow_run.start_time),
        end_time=_timestamp(flow_run.end_time),
        state_time=_timestamp(state.timestamp if state else None),
        flow_run_name=flow_run.name or "",
        ui_url=url_for("flow-run", obj_id=flow_run.id) or "",
        deployment=DEPLOYMENT,
        parameters_json=json.dumps(parameters, sort_keys=True, default=str),
    )


class Jobs:
    """The jobs on the Prefect server: flow runs of :data:`DEPLOYMENT` (runs of anything else are
    not jobs, and unknown to this API)."""

    def __init__(self) -> None:
        self._deployment_id: uuid.UUID | None = None
        self._lock = threading.Lock()

    def deployment_id(self, client: SyncPrefectClient, *, refresh: bool = False) -> uuid.UUID:
        with self._lock:
            if self._deployment_id is None or refresh:
                try:
                    self._deployment_id = client.read_deployment_by_name(DEPLOYMENT).id
                except ObjectNotFound:
                    raise WrongState(
                        f"the deployment {DEPLOYMENT} is not on the Prefect server at {PREFECT_API_URL.value()}",
                        "start `silkpurse-orchestrator serve`, which serves it",
                    ) from None
            return self._deployment_id

    def flow_run(self, client: SyncPrefectClient, job_id: uuid.UUID) -> FlowRun:
        try:
            flow_run = client.read_flow_run(job_id)
        except ObjectNotFound:
            raise NotFound(f"no job {job_id}", "give the job_id SubmitJob returned") from None
        if flow_run.deployment_id is None or (
            flow_run.deployment_id != self.deployment_id(client)
            and flow_run.deployment_id != self.deployment_id(client, refresh=True)
        ):
            raise NotFound(f"no job {job_id} (that flow run is not one of {DEPLOYMENT})")
        return flow_run

    def progress(self, client: SyncPrefectClient, job_id: uuid.UUID) -> float:
        """The run's progress artifact, 0..100 (0 before the flow has published one)."""
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[job_id]), type=ArtifactFilterType(any_=["progress"])
            ),
            sort=ArtifactSort.UPDATED_DESC,
            limit=1,
        )
        if not artifacts:
            return 0.0
        try:
            return min(max(float(artifacts[0].data), 0.0), 100.0)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return 0.0

    def job(self, client: SyncPrefectClient, job_id: uuid.UUID, flow_run: FlowRun | None = None) -> jobs_pb2.Job:
        flow_run = flow_run or self.flow_run(client, job_id)
        state = STATES.get(flow_run.state.type) if flow_run.state else None
        progress = self.progress(client, job_id) if state in _WITH_PROGRESS else 0.0
        return job_message(flow_run, progress)

    def submit(self, parameters: dict[str, Any], idempotency_key: str) -> tuple[jobs_pb2.Job, bool]:
        """Create the flow run; returns the job and whether the key named an earlier one."""
        key = f"silkpurse-jobs:{idempotency_key}" if idempotency_key else f"silkpurse-jobs:{uuid.uuid4()}"
        with prefect_api(f"the submit of a {DEPLOYMENT} run") as client:
            deployment_id = self.deployment_id(client, refresh=True)
            create = DeploymentFlowRunCreate(
                parameters=parameters, state=to_state_create(Scheduled()), tags=[TAG], idempotency_key=key
            )
            response = client.request(
                "POST",
                "/deployments/{id}/create_flow_run",
                path_params={"id": deployment_id},
                json=create.model_dump(mode="json", exclude_unset=True),
            )
            flow_run = FlowRun.model_validate(response.json())
            existing = response.status_code != httpx.codes.CREATED
            if existing:
                given = {k: (flow_run.parameters or {}).get(k) for k in parameters}
                if given != parameters:
                    raise AlreadyExists(
                        f"idempotency_key {idempotency_key!r} started job {flow_run.id} with other parameters",
                        "use a new key for a new job",
                    )
            return self.job(client, flow_run.id, flow_run), existing

    def cancel(self, job_id: uuid.UUID) -> jobs_pb2.Job:
        with prefect_api(f"the cancel of job {job_id}") as client:
            flow_run = self.flow_run(client, job_id)
            job = self.job(client, job_id, flow_run)
            if job.state in (jobs_pb2.JOB_STATE_CANCELLING, jobs_pb2.JOB_STATE_CANCELLED):
                return job
            if job.state not in TERMINAL:
                result: OrchestrationResult[Any] = client.set_flow_run_state(job_id, Cancelling())
                job = self.job(client, job_id)
                if job.state not in TERMINAL and job.state != jobs_pb2.JOB_STATE_CANCELLING:
                    reason = getattr(result.details, "reason", None) or result.status.value
                    raise WrongState(f"the Prefect server did not cancel job {job_id} ({reason})", "try again")
            if job.state in TERMINAL and job.state != jobs_pb2.JOB_STATE_CANCELLED:
                ended = jobs_pb2.JobState.Name(job.state)
                raise WrongState(f"job {job_id} has already ended ({ended})", "there is nothing to cancel")
            return job


# --- the servicer ------------------------------------------------------------------------------


def _changed(before: jobs_pb2.Job, after: jobs_pb2.Job) -> jobs_pb2.JobEventType | None:
    if (before.state, before.state_name, before.message) != (after.state, after.state_name, after.message):
        return jobs_pb2.JOB_EVENT_TYPE_STATE_CHANGED
    if before.progress_percent != after.progress_percent:
        return jobs_pb2.JOB_EVENT_TYPE_PROGRESS
    return None


def _event(kind: jobs_pb2.JobEventType, job: jobs_pb2.Job) -> jobs_pb2.WatchJobResponse:
    return jobs_pb2.WatchJobResponse(event=jobs_pb2.JobEvent(type=kind, job=job, time=_now()))


class JobsServicer(jobs_pb2_grpc.JobsServiceServicer):
    """A thin adapter from the four calls to :class:`Jobs`; errors are mapped by the core's
    interceptor."""

    def __init__(self, poll_s: float = POLL_S) -> None:
        self.jobs = Jobs()
        self.poll_s = poll_s
        self.stopping = threading.Event()

    def SubmitJob(  # noqa: N802 (gRPC's method name)
        self, request: jobs_pb2.SubmitJobRequest, context: grpc.ServicerContext
    ) -> jobs_pb2.SubmitJobResponse:
        parameters = flow_parameters(request)
        job, existing = self.jobs.submit(parameters, request.idempotency_key)
        log.info("submitted", extra={"job_id": job.job_id, "existing": existing, "flow_run": job.flow_run_name})
        return jobs_pb2.SubmitJobResponse(job=job, existing=existing)

    def GetJob(  # noqa: N802
        self, request: jobs_pb2.GetJobRequest, context: grpc.ServicerContext
    ) -> jobs_pb2.GetJobResponse:
        job_id = job_uuid(request.job_id)
        with prefect_api(f"the read of job {job_id}") as client:
            return jobs_pb2.GetJobResponse(job=self.jobs.job(client, job_id))

    def WatchJob(  # noqa: N802
        self, request: jobs_pb2.WatchJobRequest, context: grpc.ServicerContext
    ) -> Iterator[jobs_pb2.WatchJobResponse]:
        job_id = job_uuid(request.job_id)
        gone = threading.Event()  # the call ended: cancelled by the client, or its deadline passed
        context.add_callback(gone.set)
        with prefect_api(f"the watch of job {job_id}") as client:
            job = self.jobs.job(client, job_id)
            yield _event(jobs_pb2.JOB_EVENT_TYPE_SNAPSHOT, job)
            while job.state not in TERMINAL:
                if gone.wait(self.poll_s) or not context.is_active():
                    return
                if self.stopping.is_set():
                    raise NotReady("the jobs service is shutting down", "watch the job again (another replica answers)")
                flow_run = client.read_flow_run(job_id)
                now = self.jobs.job(client, job_id, flow_run)
                kind = _changed(job, now)
                if kind is not None:
                    job = now
                    yield _event(kind, job)

    def CancelJob(  # noqa: N802
        self, request: jobs_pb2.CancelJobRequest, context: grpc.ServicerContext
    ) -> jobs_pb2.CancelJobResponse:
        job = self.jobs.cancel(job_uuid(request.job_id))
        log.info("cancel", extra={"job_id": job.job_id, "state": jobs_pb2.JobState.Name(job.state)})
        return jobs_pb2.CancelJobResponse(job=job)

    def warm_up(self) -> None:
        """Say in the log whether the Prefect server answers and serves the deployment; the
        service serves either way (calls answer UNAVAILABLE while Prefect is down)."""
        try:
            with prefect_api("the start-up check") as client:
                deployment_id = self.jobs.deployment_id(client, refresh=True)
            log.info("prefect", extra={"api": PREFECT_API_URL.value(), "deployment_id": str(deployment_id)})
        except SilkpurseError as err:
            log.warning("prefect not ready", extra={"api": PREFECT_API_URL.value(), "error": str(err)})


def main(settings: ServiceSettings) -> int:
    """Serve the Jobs API until SIGTERM/SIGINT (``silkpurse serve jobs``, ``silkpurse-orchestrator
    jobs``); returns the exit status."""
    if not PREFECT_API_URL.value():
        raise OptionsError(
            "the Jobs API needs a Prefect server and PREFECT_API_URL is not set",
            "set it to the server's API, e.g. http://127.0.0.1:4200/api",
        )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per Prefect API request
    servicer = JobsServicer()
    return serve(
        servicer,
        jobs_pb2_grpc.add_JobsServiceServicer_to_server,
        SERVICE,
        "jobs",
        settings,
        warm_up=servicer.warm_up,
        unlimited=frozenset({"SubmitJob", "GetJob", "CancelJob"}),  # short; the limit counts the watches
        on_drain=servicer.stopping.set,
    )
