"""Every bad input or option: one line saying what is wrong, a non-zero exit, no traceback,
and no output file left behind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from tests.conftest import ClipFactory


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "silkpurse_cli", *args], capture_output=True, text=True, timeout=120)


def assert_clean_failure(result: subprocess.CompletedProcess[str], code: int, message: str, folder: Path) -> None:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert not [p for p in folder.iterdir() if p.name.startswith(("out", ".out"))], list(folder.iterdir())


@pytest.fixture(scope="module")
def truncated(make_clip: ClipFactory, real_footage: Path, clip_dir: Path) -> Path:
    whole = make_clip("whole.mp4", "-i", str(real_footage), "-c", "copy", "-movflags", "+faststart")
    cut = clip_dir / "truncated.mp4"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    return cut


def test_missing_input(tmp_path: Path) -> None:
    result = run_cli("enhance", str(tmp_path / "nope.mp4"), "-o", str(tmp_path / "out.mp4"))
    assert_clean_failure(result, 3, "does not exist", tmp_path)


def test_empty_input(tmp_path: Path) -> None:
    (tmp_path / "empty.mp4").touch()
    result = run_cli("enhance", str(tmp_path / "empty.mp4"), "-o", str(tmp_path / "out.mp4"))
    assert_clean_failure(result, 3, "is empty", tmp_path)


def test_non_video_input(tmp_path: Path) -> None:
    (tmp_path / "notes.mp4").write_text("these are meeting notes, not a video\n" * 50)
    result = run_cli("enhance", str(tmp_path / "notes.mp4"), "-o", str(tmp_path / "out.mp4"))
    assert_clean_failure(result, 3, "not a readable video", tmp_path)


def test_truncated_video(truncated: Path, tmp_path: Path) -> None:
    result = run_cli("enhance", str(truncated), "-o", str(tmp_path / "out.mp4"), "--scale", "1", "--interpolate", "1")
    assert_clean_failure(result, 3, "truncated", tmp_path)


def test_audio_only_input(make_clip: ClipFactory, tmp_path: Path) -> None:
    audio = make_clip("speech.m4a", "-f", "lavfi", "-i", "sine=duration=0.5", "-c:a", "aac")
    result = run_cli("enhance", str(audio), "-o", str(tmp_path / "out.mp4"))
    assert_clean_failure(result, 3, "no video stream", tmp_path)


def test_output_in_missing_folder(clip_with_audio: Path, tmp_path: Path) -> None:
    result = run_cli("enhance", str(clip_with_audio), "-o", str(tmp_path / "no" / "such" / "out.mp4"))
    assert_clean_failure(result, 4, "does not exist", tmp_path)


def test_output_under_a_file_is_unwritable(clip_with_audio: Path, tmp_path: Path) -> None:
    (tmp_path / "plain.txt").write_text("x")
    result = run_cli("enhance", str(clip_with_audio), "-o", str(tmp_path / "plain.txt" / "out.mp4"))
    assert_clean_failure(result, 4, "does not exist", tmp_path)


def test_output_equal_to_input(clip_with_audio: Path, tmp_path: Path) -> None:
    result = run_cli("enhance", str(clip_with_audio), "-o", str(clip_with_audio))
    assert_clean_failure(result, 4, "the output is the input", tmp_path)


@pytest.mark.parametrize(
    ("options", "code", "message"),
    [
        (["--codec", "divx"], 2, "unknown codec 'divx'"),
        (["--crf", "99"], 2, "--crf 99 is out of range"),
        (["--preset", "warp"], 2, "unknown preset 'warp'"),
        (["--fps", "0"], 2, "--fps 0 is impossible"),
        (["--interpolate", "0"], 2, "--interpolate 0 is impossible"),
        (["--interpolate", "2", "--fps", "60"], 2, "Give only one of them"),
        (["--scale", "5"], 2, "--scale 5 is not supported"),
        (["--batch-size", "0"], 2, "--batch-size 0 is out of range"),
        (["--upscale-model", "no-such-model"], 5, "unknown upscale model 'no-such-model'"),
        (["--interp-model", "no-such-model", "--scale", "1"], 5, "unknown interpolation model"),
        (["--device", "cuda"], 6, "CUDA was requested"),
        (["--encoders", "0"], 2, "0 encoders at once is impossible"),
        (["--device", "cpu", "--backend", "tensorrt"], 2, "the TensorRT backend needs a CUDA device"),
        (["--remote", "--encoders", "2"], 2, "--encoders sets the encoders of an embedded run"),
    ],
)
def test_impossible_options(clip_with_audio: Path, tmp_path: Path, options: list[str], code: int, message: str) -> None:
    result = run_cli("enhance", str(clip_with_audio), "-o", str(tmp_path / "out.mp4"), *options)
    assert_clean_failure(result, code, message, tmp_path)


def test_unknown_output_format(clip_with_audio: Path, tmp_path: Path) -> None:
    result = run_cli("enhance", str(clip_with_audio), "-o", str(tmp_path / "out.gif"))
    assert_clean_failure(result, 2, "cannot write .gif files", tmp_path)


def test_unusable_work_directory(clip_with_audio: Path, tmp_path: Path) -> None:
    (tmp_path / "plain.txt").write_text("x")
    result = run_cli(
        "enhance",
        str(clip_with_audio),
        "-o",
        str(tmp_path / "out.mp4"),
        "--scale",
        "1",
        "--work-dir",
        str(tmp_path / "plain.txt" / "work"),
    )
    assert_clean_failure(result, 7, "cannot create work directory", tmp_path)
