"""The enhance-video Prefect flow against a real Prefect server and the real services: it walks
the same plan as the embedded runner, so its output is the embedded output byte for byte."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from silkpurse.plan import JobOptions
from tests.services.conftest import FlowWorker, Services

pytestmark = pytest.mark.slow

OPTIONS = {"scale": 2, "interpolate": 2, "batch_size": 8, "chunk_frames": 16}


def flow_run_id(output: str) -> str:
    for line in output.splitlines():
        if "UUID:" in line:
            return line.split("UUID:")[1].strip()
    raise AssertionError(f"no flow run id in:\n{output}")


def test_a_deployment_run_equals_the_embedded_run_and_is_recorded(
    flow_worker: FlowWorker, services: Services, clip_with_audio: Path, tmp_path: Path
) -> None:
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from silkpurse_cli.embedded import Pipeline, RunOptions

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
    embedded = tmp_path / "embedded.mp4"
    Pipeline(clip_with_audio, embedded, JobOptions(**OPTIONS), RunOptions(device="cpu", work_dir=tmp_path / "e")).run()
    assert output.read_bytes() == embedded.read_bytes()

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
