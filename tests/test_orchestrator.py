"""The flow's definition without running it: its deployment file, its parameters (the CLI's
options, typed), where outputs may go, and how the concurrency limits are sized."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from silkpurse.errors import SilkpurseError
from silkpurse.plan import JobOptions
from silkpurse.service.client import replica_count
from silkpurse.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def test_prefect_yaml_deploys_the_flow_as_enhance_video_default() -> None:
    from prefect.flows import load_flow_from_entrypoint

    (deployment,) = yaml.safe_load((ROOT / "orchestrator" / "prefect.yaml").read_text())["deployments"]
    flow = load_flow_from_entrypoint(deployment["entrypoint"])
    assert (flow.name, deployment["name"]) == ("enhance-video", "default")


def test_the_flow_parameters_mirror_the_job_options() -> None:
    from prefect.utilities.callables import parameter_schema
    from silkpurse_orchestrator.flow import enhance_video

    schema = parameter_schema(enhance_video.fn).model_dump()
    properties = schema["properties"]
    assert set(schema["required"]) == {"input", "output"}
    defaults = JobOptions()
    # Speech clean-up and the model replicas' own options (tile, denoise, precision, backend) are
    # not flow parameters: the services have no CleanSpeech call, and a replica runs one tile,
    # denoise setting, precision and backend, which the plan takes from it.
    replicas_own = {"tile", "denoise_strength", "precision", "backend"}
    not_parameters = {"clean_audio", "loudness", "keep_original_audio", *replicas_own}
    for field in dataclasses.fields(JobOptions):
        if field.name in not_parameters:
            continue
        assert field.name in properties, field.name
        default = getattr(defaults, field.name)
        assert properties[field.name].get("default") == default, field.name
        assert properties[field.name].get("description"), field.name  # the UI form says what it is
    scale = properties["scale"]
    assert scale["enum"] == [1, 2, 3, 4]


@pytest.mark.parametrize(
    ("output", "fix"),
    [
        ("s3://someone-else/out.mp4", "SILKPURSE_S3_OUTPUT_BUCKETS"),
        ("s3://silkpurse/", "s3://bucket/key.mp4"),
        ("ftp://host/out.mp4", "s3://"),
    ],
)
def test_outputs_go_only_where_allowed(output: str, fix: str) -> None:
    from silkpurse_orchestrator.flow import Destination

    settings = Settings(s3_endpoint="127.0.0.1:9000", s3_bucket="silkpurse")
    with pytest.raises(SilkpurseError) as err:
        Destination.parse(output, settings)
    assert fix in str(err.value) + str(err.value.fix)


def test_an_allowed_output_bucket_and_a_path_are_taken() -> None:
    from silkpurse_orchestrator.flow import Destination

    settings = Settings(s3_endpoint="127.0.0.1:9000", s3_bucket="silkpurse", s3_output_buckets="videos, more")
    s3 = Destination.parse("s3://videos/talks/out.mp4", settings)
    assert (s3.bucket, s3.key, s3.name) == ("videos", "talks/out.mp4", "out.mp4")
    local = Destination.parse("out/talk.mkv", settings)
    assert local.path == Path("out/talk.mkv") and local.name == "talk.mkv"


def test_replicas_are_counted_from_the_addresses() -> None:
    assert replica_count("127.0.0.1:1,127.0.0.2:1,127.0.0.3:1") == 3
    assert replica_count("dns:///localhost:50052") >= 1
    assert replica_count("127.0.0.1:1,127.0.0.1:1") == 1  # the same replica twice is one
