"""Chunked processing: segments joined with exact timestamps, the same frames as one chunk,
and a work directory bounded by the chunk size rather than by the video's length."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from tests.conftest import ClipFactory, decode_rgb

from silkpurse.metrics import packet_times, stored_bytes
from silkpurse.nn.engine import cpu_has_native_bf16
from silkpurse.plan import JobOptions
from silkpurse_cli.embedded import Pipeline, RunOptions


@pytest.fixture(scope="session")
def offset_clip(make_clip: ClipFactory, clip_with_audio: Path) -> Path:
    """The 30-frame 30000/1001 clip with its video starting 41.708 ms after its audio."""
    return make_clip(
        "offset.mkv",
        "-itsoffset",
        "0.041708",
        "-i",
        str(clip_with_audio),
        "-i",
        str(clip_with_audio),
        "-map",
        "0:v",
        "-map",
        "1:a",
        "-c",
        "copy",
    )


def run(source: Path, output: Path, work: Path, **options: object) -> None:
    Pipeline(source, output, JobOptions(**options), RunOptions(work_dir=work, device="cpu")).run()  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("codec", "preset"), [("h264", "veryfast"), ("h265", "ultrafast"), ("av1", "12")], ids=["h264", "h265", "av1"]
)
@pytest.mark.parametrize("container", ["mp4", "mkv"])
def test_every_frame_of_a_chunked_encode_is_where_one_chunk_puts_it(
    offset_clip: Path, tmp_path: Path, codec: str, preset: str, container: str
) -> None:
    common = {"scale": 1, "interpolate": 1, "batch_size": 4, "codec": codec, "preset": preset}
    chunked, whole = tmp_path / f"chunked.{container}", tmp_path / f"whole.{container}"
    run(offset_clip, chunked, tmp_path / "work", chunk_frames=7, **common)  # 5 segments, 4 joins
    run(offset_clip, whole, tmp_path / "work", chunk_frames=1000, **common)
    video, reference = packet_times(chunked, "v:0"), packet_times(whole, "v:0")
    assert len(video) == len(reference) == 30
    assert video == reference
    rate, start = Fraction(30000, 1001), video[0]
    tick = Fraction(1, 1000) if container == "mkv" else Fraction(1, 30000)
    for j, pts in enumerate(video):  # exact to the container's one rounding, no drift
        assert abs(pts - (start + j / rate)) <= tick / 2, (j, float(pts - (start + j / rate)))
    audio = packet_times(chunked, "a:0")
    assert audio == packet_times(whole, "a:0")
    # A/V sync: the video starts as far after the audio as in the source.
    source_gap = packet_times(offset_clip, "v:0")[0] - packet_times(offset_clip, "a:0")[0]
    assert abs((start - audio[0]) - source_gap) <= tick


def test_lossless_chunked_enhance_gives_the_frames_of_one_chunk(clip_with_audio: Path, tmp_path: Path) -> None:
    common = {"scale": 2, "interpolate": 2, "batch_size": 4, "codec": "h264", "crf": 0, "preset": "ultrafast"}
    run(clip_with_audio, tmp_path / "chunked.mkv", tmp_path / "work", chunk_frames=9, **common)
    run(clip_with_audio, tmp_path / "whole.mkv", tmp_path / "work", chunk_frames=1000, **common)
    chunked, whole = decode_rgb(tmp_path / "chunked.mkv"), decode_rgb(tmp_path / "whole.mkv")
    assert chunked.shape == whole.shape == (60, 128, 192, 3)
    assert np.array_equal(chunked, whole)
    assert packet_times(tmp_path / "chunked.mkv", "v:0") == packet_times(tmp_path / "whole.mkv", "v:0")


def test_the_work_directory_holds_at_most_two_chunks(clip_with_audio: Path, tmp_path: Path) -> None:
    options = JobOptions(scale=2, interpolate=2, batch_size=3, chunk_frames=6)
    work = tmp_path / "work"
    pipeline = Pipeline(clip_with_audio, tmp_path / "out.mp4", options, RunOptions(work_dir=work, device="cpu"))
    peak, done = [0], threading.Event()

    def watch() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], stored_bytes(work))
            done.wait(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        pipeline.run()
    finally:
        done.set()
        watcher.join()
    whole_job = pipeline.plan.work_bytes_per_chunk * len(pipeline.plan.chunks)
    assert len(pipeline.plan.chunks) == 5
    assert 0 < peak[0] <= 2 * pipeline.plan.work_bytes_per_chunk * 1.01  # + the small batch headers
    assert peak[0] < whole_job / 2


def test_parallel_encoders_overlap_and_give_the_bytes_of_one(
    clip_with_audio: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import silkpurse_cli.embedded as embedded

    encode_segment, together = embedded.encode_segment, threading.Barrier(2, timeout=30)
    calls, in_flight, most = [0], [0], [0]
    lock = threading.Lock()

    def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        with lock:
            calls[0] += 1
            first_two = calls[0] <= 2
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
        try:
            if first_two:
                together.wait()  # each of the first two segments waits until the other has started
            return encode_segment(*args, **kwargs)
        finally:
            with lock:
                in_flight[0] -= 1

    options = JobOptions(scale=1, interpolate=1, batch_size=3, chunk_frames=6)  # 5 chunks
    outputs = {}
    for encoders in (1, 2):
        monkeypatch.setattr(embedded, "encode_segment", counted if encoders == 2 else encode_segment)
        outputs[encoders] = tmp_path / f"out-{encoders}.mp4"
        run_options = RunOptions(work_dir=tmp_path / "work", device="cpu", encoders=encoders)
        pipeline = Pipeline(clip_with_audio, outputs[encoders], options, run_options)
        assert pipeline.encoders == encoders
        pipeline.run()
    assert most[0] == 2 and not together.broken, "two segments were encoded at the same time"
    assert outputs[1].read_bytes() == outputs[2].read_bytes()


def test_plan_command_shows_the_work_without_loading_a_model(clip_with_audio: Path, tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "silkpurse_cli",
            "plan",
            str(clip_with_audio),
            "--chunk-frames",
            "12",
            "--batch-size",
            "4",
            "--json",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    plan = json.loads(out)
    assert [(c["first"], c["end"], c["out_first"], c["out_end"]) for c in plan["chunks"]] == [
        (0, 12, 0, 24),
        (12, 24, 24, 48),
        (24, 30, 48, 60),
    ]
    stages = [s["stage"] for s in plan["steps"]]
    assert stages.count("encode") == 3 and stages[-1] == "join"
    assert (
        plan["upscaler"]["precision"] == ("bf16" if cpu_has_native_bf16() else "fp32")
        and len(plan["upscaler"]["sha256"]) == 64
    )
    interp = next(s for s in plan["steps"] if s["id"] == "c00000/interpolate/f00000008")
    assert len(interp["inputs"]) == 2 and interp["inputs"][1].endswith("f00000012.safetensors")  # the overlap frame


def test_options_that_change_no_bytes_keep_the_job(clip_with_audio: Path, tmp_path: Path) -> None:
    base = JobOptions(scale=1, interpolate=1)
    plans = {
        name: Pipeline(
            clip_with_audio, tmp_path / "o.mp4", options, RunOptions(work_dir=tmp_path / "w", device=dev)
        ).plan.job
        for name, options, dev in [
            ("base", base, "cpu"),
            ("auto device", base, "auto"),
            ("crf", replace(base, crf=30), "cpu"),
            ("chunks", replace(base, chunk_frames=10), "cpu"),
        ]
    }
    assert plans["base"] == plans["auto device"]  # the device is where it runs, not what it makes
    assert len({plans["base"], plans["crf"], plans["chunks"]}) == 3
