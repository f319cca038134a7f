"""SubmitJob's requests become the enhance-video flow's parameters: every typed field maps onto
a parameter the flow's own signature accepts, and a bad field is refused before submission
with one message naming it. (The calls themselves: tests/services/test_jobs_api.py.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from google.protobuf import json_format
from silkpurse_orchestrator.jobs import flow_parameters

from silkpurse.errors import SilkpurseError
from silkpurse.v1 import common_pb2, jobs_pb2

DOCS = Path(__file__).parents[2] / "docs" / "orchestration.md"
URIS = {"input": "s3://silkpurse/in.mp4", "output": "s3://silkpurse/out.mkv"}


def test_every_field_maps_onto_a_parameter_the_flow_accepts() -> None:
    from silkpurse_orchestrator.flow import enhance_video

    request = jobs_pb2.SubmitJobRequest(
        **URIS,
        scale=4,
        upscale_model="realesrgan-x4plus",
        fps=common_pb2.Rational(num=60000, den=1001),
        interp_model="rife-4.6",
        rife_scale=0.5,
        scene_threshold=0.2,
        codec=jobs_pb2.VIDEO_CODEC_AV1,
        crf=40,
        preset="6",
        ten_bit=True,
        batch_size=4,
        chunk_frames=120,
        keep_work=True,
        idempotency_key="order-17",
    )
    parameters = flow_parameters(request)
    set_fields = {f.name for f, _ in request.ListFields()} - {"idempotency_key"}
    assert set(parameters) == set_fields
    assert parameters["fps"] == "60000/1001" and parameters["codec"] == "av1"
    assert enhance_video.validate_parameters(parameters) == {**enhance_video.validate_parameters(URIS), **parameters}


def test_unset_fields_leave_the_flow_its_defaults() -> None:
    assert flow_parameters(jobs_pb2.SubmitJobRequest(**URIS)) == URIS
    at_50 = flow_parameters(jobs_pb2.SubmitJobRequest(**URIS, interpolate=1, fps=common_pb2.Rational(num=50, den=1)))
    assert at_50["fps"] == "50" and at_50["interpolate"] == 1


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"input": ""}, "input is missing"),
        ({"input": "ftp://host/in.mp4"}, "unsupported scheme ftp://"),
        ({"output": "http://host/out.mp4"}, "output http://host/out.mp4 is not a path or an s3:// URI"),
        ({"output": "s3://silkpurse/"}, "is not a path or an s3:// URI"),
        ({"output": "/data/out.avi"}, "cannot write .avi files"),
        ({"scale": 7}, "scale 7 is not supported"),
        ({"interpolate": 0}, "interpolate 0 is out of range"),
        ({"fps": common_pb2.Rational(num=60, den=0)}, "fps 60/0 is impossible"),
        ({"rife_scale": 3.0}, "rife_scale 3 is not supported"),
        ({"scene_threshold": 0.0}, "scene_threshold 0 is impossible"),
        ({"codec": 9}, "codec 9 is not a VideoCodec"),
        ({"crf": 60}, "crf 60 is out of range for h264"),
        ({"codec": jobs_pb2.VIDEO_CODEC_AV1, "preset": "slow"}, "preset 'slow' is not one of av1's"),
        ({"batch_size": 0}, "batch_size 0 is out of range"),
        ({"chunk_frames": 1}, "chunk_frames 1 is out of range"),
        ({"upscale_model": "two words"}, "upscale_model 'two words' is not a model name"),
        ({"idempotency_key": "x" * 129}, "idempotency_key is not 1 to 128 printable ASCII characters"),
    ],
)
def test_a_bad_field_is_refused_with_one_message_naming_it(fields: dict[str, object], message: str) -> None:
    with pytest.raises(SilkpurseError) as refused:
        flow_parameters(jobs_pb2.SubmitJobRequest(**{**URIS, **fields}))
    assert message in str(refused.value)
    assert "\n" not in str(refused.value)


def test_the_grpcurl_examples_in_the_docs_are_valid_requests() -> None:
    text = DOCS.read_text()
    examples = re.findall(r"-d '(\{.*?\})' \S+ silkpurse\.v1\.JobsService/(\w+)", text, flags=re.S)
    assert {rpc for _, rpc in examples} == {"SubmitJob", "WatchJob", "GetJob", "CancelJob"}
    for body, rpc in examples:
        request = json_format.Parse(body, getattr(jobs_pb2, f"{rpc}Request")())
        if rpc == "SubmitJob":
            assert isinstance(request, jobs_pb2.SubmitJobRequest)
            flow_parameters(request)
