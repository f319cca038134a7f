"""The enhance-video Prefect flow against a real Prefect server and the real services: it walks
the same plan as the embedded runner, so its output is the embedded output byte for byte."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from minio import Minio
from tests.conftest import REAL_FOOTAGE, ClipFactory
from tests.services.conftest import FlowWorker, Services, flow_env, start, stop, wait_serving

from silkpurse.plan import JobOptions, JobPlan
from silkpurse.settings import get_settings

pytestmark = pytest.mark.slow

OPTIONS = {"scale": 2, "interpolate": 2, "batch_size": 8, "chunk_frames": 16}


def flow_run_id(output: str) -> str:
    for line in output.splitlines():
        if "UUID:" in line:
            return line.split("UUID:")[1].strip()
    raise AssertionError(f"no flow run id in:\n{output}")


@pytest.fixture(scope="module")
def embedded_output(clip_with_audio: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The embedded runner's output for OPTIONS: what every flow run must write, byte for byte."""
    from silkpurse_cli.embedded import Pipeline, RunOptions

    root = tmp_path_factory.mktemp("embedded")
    output = root / "embedded.mp4"
    Pipeline(clip_with_audio, output, JobOptions(**OPTIONS), RunOptions(device="cpu", work_dir=root / "work")).run()
    return output


def test_a_deployment_run_equals_the_embedded_run_and_is_recorded(
    flow_worker: FlowWorker, services: Services, clip_with_audio: Path, embedded_output: Path, tmp_path: Path
) -> None:
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    output = tmp_path / "flow.mp4"
    prefect = Path(sys.executable).with_name("prefect")
    params = [f"-p input={clip_with_audio}", f"-p output={output}", *(f"-p {k}={v}" for k, v in OPTIONS.items())]
    run = subprocess.run(
        [str(prefect), "deployment", "run", "enhance-video/default", *" ".join(params).split(), "--watch"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr}\n{flow_worker.log_text()[-4000:]}"
    assert output.read_bytes() == embedded_output.read_bytes()

    run_id = flow_run_id(run.stdout)
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(run_id)
        assert flow_run.state is not None and flow_run.state.is_completed()
        task_runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run.id])))
        artifacts = client.read_artifacts(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run.id])))
    names = {t.name.split("/")[1] if "/" in t.name else t.name for t in task_runs}
    assert {"extract", "upscale", "interpolate", "encode", "join"} <= names, names
    assert all(t.state is not None and t.state.is_completed() for t in task_runs)
    kinds = {a.type for a in artifacts}
    assert {"progress", "table", "markdown"} <= kinds, kinds
    progress = next(a for a in artifacts if a.type == "progress")
    assert float(progress.data) == 100.0  # type: ignore[arg-type]


def test_a_run_whose_upscaler_replica_is_killed_completes_on_the_other(
    services: Services,
    prefect: object,
    clip_with_audio: Path,
    embedded_output: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from silkpurse_orchestrator.flow import enhance_video

    doomed = start("upscaler", services.log_dir, {**services.env, "SILKPURSE_WORK_DIR": str(tmp_path / "doomed")})
    killed = threading.Event()

    def kill_after_its_first_batch() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and doomed.process.poll() is None:
            if doomed.metric("silkpurse_calls_in_flight", method="Upscale") > 0 and doomed.metric(
                "silkpurse_calls_total", method="Upscale", code="OK"
            ):
                doomed.process.kill()  # mid-call: SIGKILL, no goodbye
                killed.set()
                return
            time.sleep(0.02)

    try:
        wait_serving(doomed)
        env = flow_env(services, SILKPURSE_WORK_DIR=str(tmp_path / "flow"))
        env["SILKPURSE_UPSCALER_ADDR"] = f"{doomed.address},{services['upscaler'].address}"
        for name, value in env.items():
            if name.startswith("SILKPURSE_"):
                monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        # Input and output as s3:// URIs in the store's bucket, as other systems give them.
        s3 = services.s3
        bucket = Minio(s3.endpoint, access_key=s3.access_key, secret_key=s3.secret_key, secure=False)
        if not bucket.bucket_exists(s3.bucket):  # the store makes it at its first write, which may not have come yet
            bucket.make_bucket(s3.bucket)
        bucket.fput_object(s3.bucket, "uploads/talk.mp4", str(clip_with_audio))
        killer = threading.Thread(target=kill_after_its_first_batch, daemon=True)
        killer.start()
        result = enhance_video(
            input=f"s3://{s3.bucket}/uploads/talk.mp4", output=f"s3://{s3.bucket}/results/talk.mp4", **OPTIONS
        )
        killer.join(5)
    finally:
        stop(doomed)
        get_settings.cache_clear()
    assert killed.is_set(), "the replica was never caught mid-call"
    assert result["frames_out"] == 60
    bucket.fget_object(s3.bucket, "results/talk.mp4", str(tmp_path / "out.mp4"))
    assert (tmp_path / "out.mp4").read_bytes() == embedded_output.read_bytes()


def test_a_cancelled_run_rerun_recomputes_no_finished_batch_or_segment(
    flow_worker: FlowWorker, services: Services, make_clip: ClipFactory, tmp_path: Path
) -> None:
    from prefect import get_client
    from prefect.deployments import run_deployment
    from prefect.states import Cancelling

    upscaler, interpolator, encoder = services["upscaler"], services["interpolator"], services["encoder"]
    # 2 s of real footage in 8 chunks of 2 batches: long enough to be cancelled half-way.
    clip = make_clip("cancel.mp4", "-i", str(REAL_FOOTAGE), "-t", "2", "-vf", "scale=96:64,fps=30", "-an")
    options = {"scale": 2, "interpolate": 2, "batch_size": 4, "chunk_frames": 8, "crf": 21}
    parameters = {"input": str(clip), "output": str(tmp_path / "out.mp4"), **options}

    def computed(server: object, stage: str) -> float:
        return server.metric("silkpurse_batches_total", stage=stage, result="computed")  # type: ignore[attr-defined]

    def segments() -> float:
        return encoder.metric("silkpurse_calls_total", method="EncodeSegment", code="OK")

    start_upscaled = computed(upscaler, "upscale")
    run = run_deployment("enhance-video/default", parameters=parameters, timeout=0)
    deadline = time.monotonic() + 300
    while computed(upscaler, "upscale") < start_upscaled + 4:  # well into the job, far from its end
        assert time.monotonic() < deadline, flow_worker.log_text()[-3000:]
        time.sleep(0.05)
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(run.id, Cancelling())
        while not (state := client.read_flow_run(run.id).state) or not state.is_final():
            assert time.monotonic() < deadline, flow_worker.log_text()[-3000:]
            time.sleep(0.2)
        assert state.is_cancelled(), state
    for server, method in ((upscaler, "Upscale"), (interpolator, "Interpolate"), (encoder, "EncodeSegment")):
        while server.metric("silkpurse_calls_in_flight", method=method) > 0:  # calls the kill left running
            assert time.monotonic() < deadline
            time.sleep(0.1)

    # What the cancelled run left finished in the store.
    s3 = services.s3
    client_s3 = Minio(s3.endpoint, access_key=s3.access_key, secret_key=s3.secret_key, secure=False)
    keys = {o.object_name for o in client_s3.list_objects(s3.bucket, recursive=True)}
    plan_keys = [k for k in keys if k.endswith("/plan.json")]
    plans = [JobPlan.from_json(json.loads(services.store.get(k))) for k in plan_keys]
    plan = next(p for p in plans if p.options.crf == 21)
    unfinished = [c for c in plan.chunks if plan.segment_key(c) not in keys]
    expected = {
        stage: sum(plan.batch_key(stage, c, b) not in keys for c in unfinished for b in c.batches)
        for stage in ("upscale", "interpolate")
    }
    expected["interpolate"] -= sum(c.batches[-1].overlap for c in unfinished)  # an overlap batch is not interpolated
    finished = sum(len(c.batches) for c in plan.chunks) - expected["upscale"]
    assert finished > 0 and expected["upscale"] > 0, "the run was cancelled before any work or after all of it"

    before = {"upscale": computed(upscaler, "upscale"), "interpolate": computed(interpolator, "interpolate")}
    segments_before = segments()
    rerun = run_deployment("enhance-video/default", parameters=parameters, timeout=600)
    assert rerun.state is not None and rerun.state.is_completed(), flow_worker.log_text()[-3000:]
    assert computed(upscaler, "upscale") - before["upscale"] == expected["upscale"]
    assert computed(interpolator, "interpolate") - before["interpolate"] == expected["interpolate"]
    assert segments() - segments_before == len(unfinished)
    assert (tmp_path / "out.mp4").is_file()
