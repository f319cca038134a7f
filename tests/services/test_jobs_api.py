"""The Jobs gRPC API (``silkpurse serve jobs``) against the real Prefect server, the served
enhance-video deployment and the real services: a job is submitted, watched to its end and
read; another is cancelled while it runs; bad requests get one clear status and message."""

from __future__ import annotations

import json
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from tests.services.conftest import FlowWorker, Server, free_port, start, stop, wait_serving

from silkpurse.media.probe import count_frames
from silkpurse.v1 import common_pb2, jobs_pb2, jobs_pb2_grpc

pytestmark = pytest.mark.slow

OPTIONS = {"scale": 2, "interpolate": 2, "batch_size": 8, "chunk_frames": 16}
#: Longest a test waits for a job (on a busy 2-core machine).
JOB_TIMEOUT_S = 300
Event = jobs_pb2.JobEvent
TERMINAL = (
    jobs_pb2.JOB_STATE_COMPLETED,
    jobs_pb2.JOB_STATE_FAILED,
    jobs_pb2.JOB_STATE_CRASHED,
    jobs_pb2.JOB_STATE_CANCELLED,
)


@pytest.fixture(scope="module")
def jobs_server(flow_worker: FlowWorker) -> Iterator[Server]:
    """``silkpurse serve jobs`` on a free loopback port, with the flow worker's environment."""
    server = start("jobs", flow_worker.log.parent, flow_worker.env)
    try:
        wait_serving(server)
        yield server
    finally:
        stop(server)


@pytest.fixture(scope="module")
def jobs(jobs_server: Server) -> Iterator[jobs_pb2_grpc.JobsServiceStub]:
    with grpc.insecure_channel(jobs_server.address) as channel:
        yield jobs_pb2_grpc.JobsServiceStub(channel)


def watch(
    jobs: jobs_pb2_grpc.JobsServiceStub, job_id: str, timeout: float = JOB_TIMEOUT_S
) -> Iterator[jobs_pb2.JobEvent]:
    for response in jobs.WatchJob(jobs_pb2.WatchJobRequest(job_id=job_id), timeout=timeout):
        yield response.event


def failure(call: grpc.RpcError) -> tuple[grpc.StatusCode, str]:
    return call.code(), call.details()  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def jobs_clip(make_clip: Callable[..., Path], clip_with_audio: Path) -> Path:
    """The audio clip with a title of its own: other content, so another job than the flow tests'
    runs of the same clip and options, and nothing they may leave in the shared store (calls of
    a stopped run still finishing on the services) can be resumed here and end the job before
    it is watched."""
    return make_clip(
        "jobs-api.mp4", "-i", str(clip_with_audio), "-map", "0", "-c", "copy", "-metadata", "title=jobs-api"
    )


def test_a_submitted_job_is_watched_to_completion_and_read(
    jobs: jobs_pb2_grpc.JobsServiceStub, jobs_server: Server, jobs_clip: Path, tmp_path: Path
) -> None:
    output = tmp_path / "job.mp4"
    request = jobs_pb2.SubmitJobRequest(
        input=str(jobs_clip), output=str(output), idempotency_key=f"test-{uuid.uuid4()}", **OPTIONS
    )
    submitted = jobs.SubmitJob(request, timeout=30)
    job_id = submitted.job.job_id
    assert not submitted.existing and uuid.UUID(job_id)
    assert submitted.job.state in (jobs_pb2.JOB_STATE_SCHEDULED, jobs_pb2.JOB_STATE_PENDING)
    assert submitted.job.input == str(jobs_clip) and submitted.job.output == str(output)
    assert json.loads(submitted.job.parameters_json) == {
        "input": str(jobs_clip),
        "output": str(output),
        **OPTIONS,
    }

    started = time.monotonic()
    events = list(watch(jobs, job_id))
    watched_s = time.monotonic() - started
    kinds = [jobs_pb2.JobEventType.Name(e.type) for e in events]
    states = [jobs_pb2.JobState.Name(e.job.state) for e in events]
    story = list(zip(kinds, states, [round(e.job.progress_percent, 1) for e in events], strict=True))
    assert events[0].type == jobs_pb2.JOB_EVENT_TYPE_SNAPSHOT, story
    running = [
        e.job.progress_percent
        for e in events
        if e.type == jobs_pb2.JOB_EVENT_TYPE_PROGRESS and e.job.state == jobs_pb2.JOB_STATE_RUNNING
    ]
    assert any(0 < p < 100 for p in running) and running == sorted(running), story  # events while it runs
    last = events[-1]
    assert last.type == jobs_pb2.JOB_EVENT_TYPE_STATE_CHANGED, story
    assert last.job.state == jobs_pb2.JOB_STATE_COMPLETED, f"{story}: {last.job.message}"
    assert last.job.progress_percent == 100.0

    got = jobs.GetJob(jobs_pb2.GetJobRequest(job_id=job_id), timeout=10).job
    assert got.state == jobs_pb2.JOB_STATE_COMPLETED and got.progress_percent == 100.0
    assert got.start_time.seconds and got.end_time.seconds and got.end_time.ToDatetime() >= got.start_time.ToDatetime()
    assert got.deployment == "enhance-video/default" and got.flow_run_name and got.ui_url.endswith(job_id)
    assert count_frames(output) == 2 * count_frames(jobs_clip)  # the output is in place

    # Checked once the job has ended: each submit is a few Prefect API calls, and before the
    # watch they could take as long as the job itself on a loaded machine.
    again = jobs.SubmitJob(request, timeout=30)  # a retried submit: the same job, not a second one
    assert again.existing and again.job.job_id == job_id
    other = jobs_pb2.SubmitJobRequest()
    other.CopyFrom(request)
    other.scale = 1
    with pytest.raises(grpc.RpcError) as reused:  # the same key for another job
        jobs.SubmitJob(other, timeout=30)
    code, message = failure(reused.value)
    assert code == grpc.StatusCode.ALREADY_EXISTS and "with other parameters" in message, message

    with pytest.raises(grpc.RpcError) as ended:
        jobs.CancelJob(jobs_pb2.CancelJobRequest(job_id=job_id), timeout=10)
    code, message = failure(ended.value)
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "already ended" in message
    print(f"job watched for {watched_s:.1f} s: {story}")


@pytest.fixture(scope="module")
def long_small_clip(make_clip: Callable[..., Path]) -> Path:
    """4 s at 96x64, 30 fps: many small batches (each stage call takes a fraction of a second),
    so a job runs long enough to be cancelled while running, and stops soon after."""
    return make_clip("long-small.mp4", "-f", "lavfi", "-i", "testsrc2=size=96x64:rate=30:duration=4", "-c:v", "libx264")


def test_a_running_job_is_cancelled(
    jobs: jobs_pb2_grpc.JobsServiceStub, flow_worker: FlowWorker, long_small_clip: Path, tmp_path: Path
) -> None:
    output = tmp_path / "cancelled.mp4"
    request = jobs_pb2.SubmitJobRequest(input=str(long_small_clip), output=str(output), **OPTIONS)
    job_id = jobs.SubmitJob(request, timeout=30).job.job_id
    submitted = time.monotonic()

    # While the job waits for the worker: a watch with a short deadline ends DEADLINE_EXCEEDED,
    # and a server that drains ends its open watches at once (UNAVAILABLE); the job goes on.
    with pytest.raises(grpc.RpcError) as short:
        list(watch(jobs, job_id, timeout=1.0))
    assert failure(short.value)[0] == grpc.StatusCode.DEADLINE_EXCEEDED
    draining = start("jobs", flow_worker.log.parent, flow_worker.env)
    try:
        wait_serving(draining)
        with grpc.insecure_channel(draining.address) as channel:
            stream = jobs_pb2_grpc.JobsServiceStub(channel).WatchJob(
                jobs_pb2.WatchJobRequest(job_id=job_id), timeout=60
            )
            assert next(stream).event.type == jobs_pb2.JOB_EVENT_TYPE_SNAPSHOT
            draining.process.send_signal(signal.SIGTERM)
            stopped = time.monotonic()
            with pytest.raises(grpc.RpcError) as drained:
                list(stream)
            code, message = failure(drained.value)
            assert code == grpc.StatusCode.UNAVAILABLE and "shutting down" in message, message
            assert draining.process.wait(10) == 0 and time.monotonic() - stopped < 5
    finally:
        stop(draining)

    events = watch(jobs, job_id)
    for event in events:  # until the flow reports frames done
        assert event.job.state not in TERMINAL, event.job.message
        if event.job.state == jobs_pb2.JOB_STATE_RUNNING and event.job.progress_percent > 0:
            break
    running_s = time.monotonic() - submitted
    cancelled = jobs.CancelJob(jobs_pb2.CancelJobRequest(job_id=job_id), timeout=30).job
    assert cancelled.state in (jobs_pb2.JOB_STATE_CANCELLING, jobs_pb2.JOB_STATE_CANCELLED)
    again = jobs.CancelJob(jobs_pb2.CancelJobRequest(job_id=job_id), timeout=30).job  # not an error
    assert again.state in (jobs_pb2.JOB_STATE_CANCELLING, jobs_pb2.JOB_STATE_CANCELLED)

    rest = list(events)
    states = [jobs_pb2.JobState.Name(e.job.state) for e in rest]
    assert rest and rest[-1].job.state == jobs_pb2.JOB_STATE_CANCELLED, states
    got = jobs.GetJob(jobs_pb2.GetJobRequest(job_id=job_id), timeout=10).job
    assert got.state == jobs_pb2.JOB_STATE_CANCELLED and 0 < got.progress_percent < 100
    assert not output.exists()
    cancel_s = time.monotonic() - submitted - running_s
    print(f"running with frames done {running_s:.1f} s after the submit; cancelled {cancel_s:.1f} s later")


@pytest.mark.parametrize(
    ("call", "code", "words"),
    [
        ("get-unknown", grpc.StatusCode.NOT_FOUND, "no job"),
        ("watch-unknown", grpc.StatusCode.NOT_FOUND, "no job"),
        ("cancel-unknown", grpc.StatusCode.NOT_FOUND, "no job"),
        ("get-malformed", grpc.StatusCode.INVALID_ARGUMENT, "is not a job id"),
        ("submit-no-input", grpc.StatusCode.INVALID_ARGUMENT, "input is missing"),
        ("submit-scale-7", grpc.StatusCode.INVALID_ARGUMENT, "scale 7 is not supported"),
        ("submit-fps-and-interpolate", grpc.StatusCode.INVALID_ARGUMENT, "both set the output frame rate"),
        ("submit-bad-output", grpc.StatusCode.INVALID_ARGUMENT, "cannot write .txt files"),
    ],
)
def test_bad_requests_get_one_clear_status_and_message(
    jobs: jobs_pb2_grpc.JobsServiceStub, call: str, code: grpc.StatusCode, words: str
) -> None:
    unknown = str(uuid.uuid4())
    good = {"input": "/data/in.mp4", "output": "/data/out.mp4"}
    calls = {
        "get-unknown": lambda: jobs.GetJob(jobs_pb2.GetJobRequest(job_id=unknown), timeout=10),
        "watch-unknown": lambda: list(jobs.WatchJob(jobs_pb2.WatchJobRequest(job_id=unknown), timeout=10)),
        "cancel-unknown": lambda: jobs.CancelJob(jobs_pb2.CancelJobRequest(job_id=unknown), timeout=10),
        "get-malformed": lambda: jobs.GetJob(jobs_pb2.GetJobRequest(job_id="job-1"), timeout=10),
        "submit-no-input": lambda: jobs.SubmitJob(jobs_pb2.SubmitJobRequest(output="/data/out.mp4"), timeout=10),
        "submit-scale-7": lambda: jobs.SubmitJob(jobs_pb2.SubmitJobRequest(**good, scale=7), timeout=10),
        "submit-fps-and-interpolate": lambda: jobs.SubmitJob(
            jobs_pb2.SubmitJobRequest(**good, interpolate=2, fps=common_pb2.Rational(num=60, den=1)), timeout=10
        ),
        "submit-bad-output": lambda: jobs.SubmitJob(
            jobs_pb2.SubmitJobRequest(input="/data/in.mp4", output="/data/out.txt"), timeout=10
        ),
    }
    with pytest.raises(grpc.RpcError) as refused:
        calls[call]()
    got_code, message = failure(refused.value)
    assert got_code == code and words in message, (got_code, message)
    assert "\n" not in message and message.endswith(".")


def test_an_unreachable_prefect_server_is_unavailable(flow_worker: FlowWorker) -> None:
    """The service serves without Prefect (health SERVING) and says UNAVAILABLE, quickly."""
    env = {**flow_worker.env, "PREFECT_API_URL": f"http://127.0.0.1:{free_port()}/api"}
    server = start("jobs", flow_worker.log.parent, env)
    try:
        wait_serving(server)
        with grpc.insecure_channel(server.address) as channel:
            jobs = jobs_pb2_grpc.JobsServiceStub(channel)
            started = time.monotonic()
            with pytest.raises(grpc.RpcError) as down:
                jobs.GetJob(jobs_pb2.GetJobRequest(job_id=str(uuid.uuid4())), timeout=20)
            code, message = failure(down.value)
            assert code == grpc.StatusCode.UNAVAILABLE and "does not answer" in message, message
            assert time.monotonic() - started < 5
    finally:
        stop(server)
