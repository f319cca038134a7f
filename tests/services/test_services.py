"""The four gRPC services as real processes: health and reflection, a whole job through the
client wrappers (byte-identical to the embedded run), idempotency, validation before any read,
error mapping, the concurrency limit and graceful shutdown."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from tests.services.conftest import (
    STAGES,
    Server,
    Services,
    health_status,
    service_env,
    start,
    stop,
    wait_serving,
)

from silkpurse.batch import FrameBatch
from silkpurse.errors import OptionsError
from silkpurse.media.probe import probe
from silkpurse.nn.engine import cpu_has_native_bf16
from silkpurse.plan import JobOptions, ModelRef
from silkpurse.service.client import (
    InterpolatorClient,
    RemoteError,
    UpscalerClient,
    connect,
)
from silkpurse.service.server import Limiter, ServiceInterceptor, ServiceState
from silkpurse.service.status import DeadlinePassed, NotReady, Overloaded, status_of
from silkpurse.settings import Settings
from silkpurse.store import BatchStore
from silkpurse.tasks import BatchRef, UpscaleTask
from silkpurse.v1 import extractor_pb2, extractor_pb2_grpc

REPO = Path(__file__).resolve().parents[2]
JOB = "0123456789abcdef01234567"


def test_generated_code_matches_the_protos() -> None:
    result = subprocess.run(
        ["bash", str(REPO / "scripts" / "gen-protos"), "--check"],
        capture_output=True,
        text=True,
        env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_health_is_not_serving_until_warm_then_serving(services: Services) -> None:
    for stage in ("upscaler", "interpolator"):
        seen = [s for s in services[stage].statuses if s != "NO_ANSWER"]
        assert seen[0] == "NOT_SERVING" and seen[-1] == "SERVING", (stage, services[stage].statuses)
        assert '"msg": "serving"' in services[stage].log_text()
    for stage, server in services.servers.items():
        assert health_status(server.address) == "SERVING"
        name = {"extractor": "Extractor", "upscaler": "Upscaler", "interpolator": "Interpolator"}.get(stage, "Encoder")
        assert health_status(server.address, f"silkpurse.v1.{name}Service") == "SERVING"


def test_reflection_lists_and_describes_the_services(services: Services) -> None:
    with grpc.insecure_channel(services["upscaler"].address) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        names = set(database.get_services())
        assert {"silkpurse.v1.UpscalerService", "grpc.health.v1.Health"} <= names
        described = database.FindFileContainingSymbol("silkpurse.v1.UpscalerService")
        assert described.name == "silkpurse/v1/upscaler.proto"


def test_describe_gives_the_replicas_model(services: Services) -> None:
    up = UpscalerClient(connect(services["upscaler"].address)).describe()
    assert up.model.name == "realesr-animevideov3" and up.model.precision == (
        "bf16" if cpu_has_native_bf16() else "fp32"
    )
    assert up.identity["weights_sha256"] == up.model.sha256 and up.options["scale"] == 2
    it = InterpolatorClient(connect(services["interpolator"].address)).describe()
    assert it.model.name == "rife-hdv3" and it.options == {"rife_scale": 1.0}
    assert up.model.backend == it.model.backend == "eager"


def test_a_job_asking_for_another_backend_than_the_replicas_run_is_refused(
    services: Services, clip_with_audio: Path, tmp_path: Path
) -> None:
    from silkpurse_cli.remote import RemotePipeline

    options = JobOptions(scale=2, interpolate=2, backend="compile")
    with pytest.raises(OptionsError, match="runs the eager backend, but this job asks for compile"):
        RemotePipeline(clip_with_audio, tmp_path / "out.mp4", options, settings=remote_settings(services))


def remote_settings(services: Services, **addresses: str) -> Settings:
    s3 = services.s3
    return Settings(
        s3_endpoint=s3.endpoint,
        s3_access_key=s3.access_key,
        s3_secret_key=s3.secret_key,
        s3_bucket=s3.bucket,
        s3_secure=False,
        **{**{f"{stage}_addr": services[stage].address for stage in STAGES}, **addresses},
    )


@pytest.mark.slow
def test_enhance_remote_is_byte_identical_to_the_embedded_run(
    services: Services, clip_with_audio: Path, tmp_path: Path
) -> None:
    from silkpurse_cli.embedded import Pipeline, RunOptions
    from silkpurse_cli.remote import RemotePipeline

    options = JobOptions(scale=2, interpolate=2, batch_size=8, chunk_frames=16)
    embedded_out = tmp_path / "embedded.mp4"
    Pipeline(clip_with_audio, embedded_out, options, RunOptions(device="cpu", work_dir=tmp_path / "embedded")).run()

    remote = RemotePipeline(clip_with_audio, tmp_path / "remote.mp4", options, settings=remote_settings(services))
    result = remote.run()
    assert result.chunks > 1 and result.segments_computed == result.chunks
    assert (tmp_path / "remote.mp4").read_bytes() == embedded_out.read_bytes()
    assert not services.store.exists(remote.plan.segment_key(remote.plan.chunks[0]))  # the job's work is removed

    again = RemotePipeline(clip_with_audio, tmp_path / "again.mp4", options, settings=remote_settings(services))
    assert again.plan.job == remote.plan.job  # the replicas' identities plan the same job


@pytest.mark.slow
def test_enhance_remote_over_two_replicas_of_each_model_stage(
    services: Services, clip_with_audio: Path, tmp_path: Path
) -> None:
    from silkpurse_cli.embedded import Pipeline, RunOptions
    from silkpurse_cli.remote import RemotePipeline

    env = {**services.env, "SILKPURSE_WORK_DIR": str(tmp_path / "second")}
    extra = {stage: start(stage, services.log_dir, env) for stage in ("upscaler", "interpolator")}
    try:
        wait_serving(*extra.values())
        addresses = {f"{s}_addr": f"{services[s].address},{extra[s].address}" for s in extra}
        options = JobOptions(scale=2, interpolate=2, batch_size=8, chunk_frames=16, crf=20)
        settings = remote_settings(services, **addresses)
        result = RemotePipeline(clip_with_audio, tmp_path / "out.mp4", options, settings=settings).run()
        assert result.frames_out == 60
        embedded = tmp_path / "embedded.mp4"
        Pipeline(clip_with_audio, embedded, options, RunOptions(device="cpu", work_dir=tmp_path / "e")).run()
        assert (tmp_path / "out.mp4").read_bytes() == embedded.read_bytes()
        for stage, server in extra.items():  # both replicas of each stage did part of the work
            assert server.metric("silkpurse_calls_total", method=METHOD[stage], code="OK") > 0, stage
            assert services[stage].metric("silkpurse_calls_total", method=METHOD[stage], code="OK") > 0, stage
    finally:
        for server in extra.values():
            stop(server)


METHOD = {"upscaler": "Upscale", "interpolator": "Interpolate"}


# -- single calls on batches made here --------------------------------------------------------


def put_source(store: BatchStore, name: str, size: tuple[int, int] = (48, 64), frames: int = 2) -> BatchRef:
    key = f"{JOB}/c00000/extract-test/{name}.safetensors"
    rng = np.random.default_rng(abs(hash(name)) % 2**32)
    pixels = rng.integers(0, 256, (frames, *size, 3), dtype=np.uint8)
    store.put_batch(key, FrameBatch(pixels, 0, Fraction(30)))
    return BatchRef(key, 0, frames)


def upscale_task(source: BatchRef, model: ModelRef, name: str) -> UpscaleTask:
    output = replace(source, key=f"{JOB}/c00000/upscale-test/{name}.safetensors")
    return UpscaleTask("c00000/upscale/" + name, source, output, model, scale=2, tile=None, denoise_strength=None)


def computed(server: Server, stage: str = "upscale") -> tuple[float, float]:
    return (
        server.metric("silkpurse_batches_total", stage=stage, result="computed"),
        server.metric("silkpurse_batches_total", stage=stage, result="resumed"),
    )


def test_the_same_upscale_twice_computes_once(services: Services) -> None:
    client = UpscalerClient(connect(services["upscaler"].address))
    task = upscale_task(put_source(services.store, "twice"), client.describe().model, "twice")
    before = computed(services["upscaler"])
    first, second = client.upscale(JOB, task), client.upscale(JOB, task)
    assert (first.resumed, second.resumed) == (False, True)
    after = computed(services["upscaler"])
    assert (after[0] - before[0], after[1] - before[1]) == (1, 1)


def test_a_key_outside_the_job_is_refused_before_anything_is_read(services: Services) -> None:
    client = UpscalerClient(connect(services["upscaler"].address))
    model = client.describe().model
    good = put_source(services.store, "outside")
    before = computed(services["upscaler"])
    outsiders = [
        replace(good, key="fedcba9876543210fedcba98/c00000/extract-test/outside.safetensors"),  # another job
        replace(good, key=f"{JOB}/../etc/passwd"),
        replace(good, key="inputs/" + "0" * 64),
    ]
    for source in outsiders:
        with pytest.raises(RemoteError) as caught:
            client.upscale(JOB, upscale_task(source, model, "outside"))
        assert caught.value.code is grpc.StatusCode.INVALID_ARGUMENT, str(caught.value)
    assert "outside the job's prefix" in str(caught.value) or "not a valid store key" in str(caught.value)
    assert computed(services["upscaler"]) == before
    assert not services.store.exists(f"{JOB}/c00000/upscale-test/outside.safetensors")

    # The extractor refuses video facts that do not name the job's input object.
    with grpc.insecure_channel(services["extractor"].address) as channel:
        stub = extractor_pb2_grpc.ExtractorServiceStub(channel)
        request = extractor_pb2.ExtractRequest(
            job=JOB, step="c00000/extract", video_info_json='{"path": "/etc/passwd"}', batches=[]
        )
        with pytest.raises(grpc.RpcError) as rpc:
            list(stub.Extract(request, timeout=10))
        assert rpc.value.code() is grpc.StatusCode.INVALID_ARGUMENT


def test_a_corrupted_batch_is_data_loss_naming_its_key(services: Services) -> None:
    client = UpscalerClient(connect(services["upscaler"].address))
    source = put_source(services.store, "corrupt")
    data = bytearray(services.store.get(source.key))
    data[-10] ^= 0xFF  # a frame byte: the batch's CRC-32 no longer matches
    services.store.put(source.key, bytes(data))
    with pytest.raises(RemoteError) as caught:
        client.upscale(JOB, upscale_task(source, client.describe().model, "corrupt"))
    assert caught.value.code is grpc.StatusCode.DATA_LOSS
    assert source.key in str(caught.value) and "\n" not in str(caught.value)


def test_a_missing_batch_is_not_found(services: Services) -> None:
    client = UpscalerClient(connect(services["upscaler"].address))
    source = BatchRef(f"{JOB}/c00000/extract-test/never.safetensors", 0, 2)
    with pytest.raises(RemoteError) as caught:
        client.upscale(JOB, upscale_task(source, client.describe().model, "never"))
    assert caught.value.code is grpc.StatusCode.NOT_FOUND and source.key in str(caught.value)


def test_another_model_is_failed_precondition_and_nothing_computed(services: Services) -> None:
    client = UpscalerClient(connect(services["upscaler"].address))
    model = replace(client.describe().model, sha256="f" * 64)
    before = computed(services["upscaler"])
    with pytest.raises(RemoteError) as caught:
        client.upscale(JOB, upscale_task(put_source(services.store, "model"), model, "model"))
    assert caught.value.code is grpc.StatusCode.FAILED_PRECONDITION
    task = replace(upscale_task(put_source(services.store, "scale"), client.describe().model, "scale"), scale=4)
    with pytest.raises(RemoteError) as caught:
        client.upscale(JOB, task)
    assert caught.value.code is grpc.StatusCode.FAILED_PRECONDITION and "scale 4" in str(caught.value)
    compiled = replace(client.describe().model, backend="compile")
    with pytest.raises(RemoteError) as caught:
        client.upscale(JOB, upscale_task(put_source(services.store, "backend"), compiled, "backend"))
    assert caught.value.code is grpc.StatusCode.FAILED_PRECONDITION and "(compile)" in str(caught.value)
    assert computed(services["upscaler"]) == before


class _Context:
    """The part of a ServicerContext the admission reads."""

    def __init__(self, remaining: float | None) -> None:
        self.remaining = remaining

    def time_remaining(self) -> float | None:
        return self.remaining

    def is_active(self) -> bool:
        return True


def _interceptor(limit: int = 1, queue: int = 1) -> ServiceInterceptor:
    state = ServiceState("upscaler")
    state.ready.set()
    return ServiceInterceptor("silkpurse.v1.UpscalerService", state, Limiter(limit, queue, 5.0), frozenset())


def test_a_call_whose_deadline_passed_is_refused_before_any_work() -> None:
    interceptor = _interceptor()
    with pytest.raises(DeadlinePassed), interceptor._admitted("Upscale", _Context(0.0)):  # type: ignore[arg-type]
        pytest.fail("admitted after its deadline")
    assert status_of(DeadlinePassed("late")) is grpc.StatusCode.DEADLINE_EXCEEDED


def test_a_queued_call_whose_deadline_passes_is_refused_and_the_slot_kept() -> None:
    interceptor = _interceptor(limit=1, queue=1)
    with interceptor._admitted("Upscale", _Context(None)):  # type: ignore[arg-type]
        context = _Context(0.3)
        started = time.monotonic()

        def expire() -> None:
            time.sleep(0.2)
            context.remaining = 0.0

        with ThreadPoolExecutor(1) as pool:
            pool.submit(expire)
            with pytest.raises(DeadlinePassed), interceptor._admitted("Upscale", context):  # type: ignore[arg-type]
                pytest.fail("admitted while the slot was taken")
        assert time.monotonic() - started < 2
    with interceptor._admitted("Upscale", _Context(None)):  # type: ignore[arg-type]
        pass  # the slot is free again


def test_a_call_beyond_the_limit_and_queue_is_overloaded_at_once() -> None:
    interceptor = _interceptor(limit=1, queue=0)
    with interceptor._admitted("Upscale", _Context(None)):  # type: ignore[arg-type]
        started = time.monotonic()
        with pytest.raises(Overloaded) as caught, interceptor._admitted("Upscale", _Context(None)):  # type: ignore[arg-type]
            pass
        assert time.monotonic() - started < 0.5
    assert status_of(caught.value) is grpc.StatusCode.RESOURCE_EXHAUSTED


def test_calls_before_warm_up_or_while_draining_are_unavailable() -> None:
    interceptor = _interceptor()
    interceptor.state.ready.clear()
    with pytest.raises(NotReady), interceptor._admitted("Upscale", _Context(None)):  # type: ignore[arg-type]
        pass
    interceptor.state.ready.set()
    interceptor.state.draining.set()
    with pytest.raises(NotReady) as caught, interceptor._admitted("Upscale", _Context(None)):  # type: ignore[arg-type]
        pass
    assert status_of(caught.value) is grpc.StatusCode.UNAVAILABLE


# -- a replica of its own: the concurrency limit and SIGTERM ----------------------------------


@pytest.fixture(scope="module")
def busy_upscaler(services: Services, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A second upscaler replica on the session's S3 store that computes one call at a time and
    queues none."""
    root = tmp_path_factory.mktemp("busy")
    env = service_env(
        root, services.s3, SILKPURSE_MAX_CONCURRENT="1", SILKPURSE_MAX_QUEUE="0", SILKPURSE_SHUTDOWN_GRACE_S="30"
    )
    server = start("upscaler", root, env)
    wait_serving(server)
    yield server
    stop(server)


def slow_task(services: Services, name: str, model: ModelRef) -> UpscaleTask:
    """A batch that takes about a second on two CPU cores."""
    return upscale_task(put_source(services.store, name, size=(192, 256), frames=4), model, name)


def no_retry_client(server: Server) -> UpscalerClient:
    return UpscalerClient(connect(server.address, max_attempts=1))


def test_a_busy_replica_answers_resource_exhausted(services: Services, busy_upscaler: Server) -> None:
    client = no_retry_client(busy_upscaler)
    model = client.describe().model
    jobs = [slow_task(services, f"busy{i}", model) for i in range(3)]
    with ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(client.upscale, JOB, task) for task in jobs]
        outcomes = []
        for future in futures:
            try:
                outcomes.append(future.result().resumed)
            except RemoteError as err:
                outcomes.append(err.code)
    assert False in outcomes and grpc.StatusCode.RESOURCE_EXHAUSTED in outcomes, outcomes
    assert busy_upscaler.metric("silkpurse_calls_total", method="Upscale", code="RESOURCE_EXHAUSTED") >= 1


def test_calls_are_balanced_over_a_list_of_replicas(services: Services, busy_upscaler: Server) -> None:
    replicas = (services["upscaler"], busy_upscaler)
    client = UpscalerClient(connect(",".join(r.address for r in replicas)))
    model = client.describe().model
    before = [computed(r)[0] for r in replicas]
    for i in range(4):
        task = upscale_task(put_source(services.store, f"rr{i}"), model, f"rr{i}")
        assert client.upscale(JOB, task).resumed is False
    assert all(computed(r)[0] > b for r, b in zip(replicas, before, strict=True))


@pytest.mark.slow
def test_sigterm_finishes_the_call_in_flight_refuses_new_ones_and_exits(
    services: Services, busy_upscaler: Server
) -> None:
    client = no_retry_client(busy_upscaler)
    task = slow_task(services, "drain", client.describe().model)
    with ThreadPoolExecutor(1) as pool:
        in_flight = pool.submit(client.upscale, JOB, task)
        deadline = time.monotonic() + 10
        while busy_upscaler.metric("silkpurse_calls_in_flight", method="Upscale") < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        signalled = time.monotonic()
        busy_upscaler.process.terminate()
        time.sleep(0.2)
        with pytest.raises(RemoteError) as refused:
            client.upscale(JOB, slow_task(services, "after", task.model))
        assert refused.value.code is grpc.StatusCode.UNAVAILABLE
        assert in_flight.result(timeout=30).resumed is False
    assert busy_upscaler.process.wait(30) == 0
    assert time.monotonic() - signalled < 30
    assert '"msg": "draining"' in busy_upscaler.log_text() and '"msg": "stopped"' in busy_upscaler.log_text()


def test_a_list_of_replicas_works_on_when_one_is_gone(services: Services, busy_upscaler: Server) -> None:
    busy_upscaler.process.kill()
    busy_upscaler.process.wait(10)
    client = UpscalerClient(connect(f"{busy_upscaler.address},{services['upscaler'].address}"), timeout_s=60)
    model = client.describe().model
    for i in range(3):
        task = upscale_task(put_source(services.store, f"gone{i}"), model, f"gone{i}")
        assert client.upscale(JOB, task).resumed is False


def test_s3_down_is_unavailable_the_service_stays_healthy_and_works_when_s3_is_back(services: Services) -> None:
    client = UpscalerClient(connect(services["upscaler"].address, max_attempts=1), timeout_s=60)
    model = client.describe().model
    task = upscale_task(put_source(services.store, "s3down"), model, "s3down")
    services.s3.stop()
    try:
        started = time.monotonic()
        with pytest.raises(RemoteError) as caught:
            client.upscale(JOB, task)
        assert caught.value.code is grpc.StatusCode.UNAVAILABLE, str(caught.value)
        assert time.monotonic() - started < 30  # bounded retries
        assert health_status(services["upscaler"].address) == "SERVING"
    finally:
        services.s3.start()
    assert client.upscale(JOB, task).resumed is False


def test_enhance_remote_from_the_command_line(services: Services, clip_with_audio: Path, tmp_path: Path) -> None:
    env = {
        **services.env,
        **{f"SILKPURSE_{stage.upper()}_ADDR": services[stage].address for stage in STAGES},
        "SILKPURSE_WORK_DIR": str(tmp_path / "client"),
    }
    command = [
        sys.executable,
        "-m",
        "silkpurse_cli",
        "enhance",
        str(clip_with_audio),
        "-o",
        str(tmp_path / "o.mkv"),
        "--remote",
        "--scale",
        "1",
        "--fps",
        "60000/1001",
        "--json",
        "-q",
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["frames_out"] == 60
    assert probe(tmp_path / "o.mkv").frame_count == 60

    down = {**env, "SILKPURSE_EXTRACTOR_ADDR": "127.0.0.1:1"}  # nothing listens there
    result = subprocess.run(command, env=down, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "UNAVAILABLE" in result.stderr and len(result.stderr.strip().splitlines()) == 1
