"""Speech clean-up on real recorded speech (Debian's Asterisk prompts) mixed with generated
hiss and mains hum at 5 dB SNR: the model and the ffmpeg chain improve it, timing and length
are kept to the sample, loudness lands on the target, and whole files keep their picture."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tests.speech_samples import RATE, mix, noise, read_audio, speech, write_wav

from silkpurse.metrics import lag_seconds, si_sdr
from silkpurse.models import resolve_weights
from silkpurse_encoder.speech import clean_audio_track
from silkpurse_encoder.speech.deepfilter import DeepFilterRunner


@pytest.fixture(scope="module")
def voice() -> np.ndarray:
    return speech(["vm-intro", "demo-thanks"])


@pytest.fixture(scope="module")
def noisy(voice: np.ndarray) -> np.ndarray:
    hum_and_hiss = noise("hiss", len(voice)) + noise("hum", len(voice), seed=2)
    return mix(voice, hum_and_hiss / hum_and_hiss.std(), snr_db=5.0)


@pytest.fixture(scope="module")
def noisy_wav(noisy: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_wav(tmp_path_factory.mktemp("speech") / "talk.wav", noisy)


def integrated_loudness(path: Path, stream: str = "a:0") -> float:
    """EBU R128 integrated loudness by ffmpeg's ebur128 filter (independent of loudnorm)."""
    log = subprocess.run(
        ["ffmpeg", "-nostdin", "-hide_banner", "-i", str(path), "-map", f"0:{stream}", "-af", "ebur128", "-f", "null"]
        + ["-"],
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    return float(re.findall(r"I:\s+(-?[\d.]+) LUFS", log)[-1])


def streams(path: Path) -> list[dict[str, str]]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-of", "json", str(path)], capture_output=True, check=True
    ).stdout
    return json.loads(out)["streams"]  # type: ignore[no-any-return]


def test_model_improves_si_sdr_by_6_db_keeping_timing_and_length(
    voice: np.ndarray, noisy: np.ndarray, noisy_wav: Path, tmp_path: Path
) -> None:
    report = clean_audio_track(noisy_wav, 0, tmp_path / "clean.flac", level="normal", loudness=-16, method="model")
    cleaned = read_audio(tmp_path / "clean.flac")
    assert report.method == "model" and report.model == "deepfilternet3" and len(report.model_sha256 or "") == 64
    assert len(cleaned) == len(noisy) == report.samples
    assert si_sdr(voice, cleaned) - si_sdr(voice, noisy) >= 6.0
    assert abs(lag_seconds(voice, cleaned, RATE)) <= 0.010
    assert abs(integrated_loudness(tmp_path / "clean.flac") - -16.0) <= 1.0
    assert report.output_true_peak <= -0.9


def test_ffmpeg_chain_improves_and_meets_broadcast_loudness(
    voice: np.ndarray, noisy: np.ndarray, noisy_wav: Path, tmp_path: Path
) -> None:
    report = clean_audio_track(noisy_wav, 0, tmp_path / "clean.wav", level="normal", loudness=-23, method="ffmpeg")
    cleaned = read_audio(tmp_path / "clean.wav")
    assert report.method == "ffmpeg" and report.model is None
    assert len(cleaned) == len(noisy)
    assert si_sdr(voice, cleaned) > si_sdr(voice, noisy)
    assert abs(lag_seconds(voice, cleaned, RATE)) <= 0.010
    assert abs(integrated_loudness(tmp_path / "clean.wav") - -23.0) <= 1.0


def test_model_output_does_not_depend_on_chunking(noisy: np.ndarray) -> None:
    weights = resolve_weights("deepfilternet3", "speech")
    part = noisy[: RATE * 2]
    with DeepFilterRunner(weights.path) as whole_runner:
        whole = np.concatenate([whole_runner.process(part), whole_runner.flush()])
    with DeepFilterRunner(weights.path) as chunked_runner:
        pieces = [chunked_runner.process(part[i : i + 777]) for i in range(0, len(part), 777)]
        chunked = np.concatenate([*pieces, chunked_runner.flush()])
    assert len(whole) == len(chunked) == len(part)
    np.testing.assert_array_equal(whole, chunked)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "silkpurse_cli", *args], capture_output=True, text=True, timeout=120)


def test_surround_ac3_video_keeps_picture_sync_and_other_streams(
    voice: np.ndarray, noisy: np.ndarray, tmp_path: Path
) -> None:
    """A 5.1 AC3 track (speech in the centre, noise everywhere) in a video with subtitles."""
    centre = write_wav(tmp_path / "centre.wav", noisy)
    subs = tmp_path / "talk.srt"
    subs.write_text("1\n00:00:00,500 --> 00:00:02,000\nHello\n")
    source = tmp_path / "talk.mkv"
    seconds = len(noisy) / RATE
    graph = (
        "[2:a]asplit=5[n1][n2][n3][n4][n5];"
        "[n1][n2][1:a][n3][n4][n5]join=inputs=6:channel_layout=5.1:map=0.0-FL|1.0-FR|2.0-FC|3.0-LFE|4.0-BL|5.0-BR[a]"
    )
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size=96x64:rate=25:d={seconds}"]
        + ["-i", str(centre), "-f", "lavfi", "-i", f"anoisesrc=a=0.01:r={RATE}:d={seconds}", "-i", str(subs)]
        + ["-filter_complex", graph, "-map", "0:v", "-map", "[a]", "-map", "3:s", "-c:v", "libx264", "-c:a", "ac3"]
        + ["-c:s", "srt", "-metadata", "title=A talk", str(source)],
        check=True,
    )
    output = tmp_path / "out.mkv"
    result = run_cli("clean-audio", str(source), "-o", str(output), "--keep-original-audio", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)["track"]
    assert report["channels"] == 2 and report["method"] == "model"

    kinds = [(s["codec_type"], s["codec_name"], s.get("channels")) for s in streams(output)]
    assert kinds == [("video", "h264", None), ("audio", "flac", 2), ("audio", "ac3", 6), ("subtitle", "subrip", None)]
    hashes = [
        subprocess.run(
            ["ffmpeg", "-nostdin", "-v", "error", "-i", str(p), "-map", "0:v", "-c", "copy", "-f", "md5", "-"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for p in (source, output)
    ]
    assert hashes[0] == hashes[1], "the picture must be copied untouched"
    out_streams = streams(output)
    assert abs(float(out_streams[1]["start_time"]) - float(out_streams[0]["start_time"])) <= 0.010
    cleaned = read_audio(output, stream="a:0")
    assert len(cleaned) == len(read_audio(source, stream="a:0")), "as many samples as the source track"
    assert abs(lag_seconds(voice, cleaned, RATE)) <= 0.010
    tags = json.loads(
        subprocess.run(
            ["ffprobe", "-v", "error", "-show_format", "-of", "json", str(output)], capture_output=True, check=True
        ).stdout
    )["format"]["tags"]
    assert tags.get("title") == "A talk"


def test_video_without_audio_is_a_one_line_input_error(tmp_path: Path) -> None:
    silent = tmp_path / "silent.mp4"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=10:d=1", str(silent)],
        check=True,
    )
    result = run_cli("clean-audio", str(silent), "-o", str(tmp_path / "out.mp4"))
    assert result.returncode == 3
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "has no audio track" in lines[0] and "Traceback" not in result.stderr
    assert not (tmp_path / "out.mp4").exists()


def test_enhance_clean_audio_replaces_the_speech_track_in_sync(
    voice: np.ndarray, noisy: np.ndarray, tmp_path: Path
) -> None:
    """``enhance --clean-audio``: the plan's speech step beside the video, muxed by the join."""
    talk = write_wav(tmp_path / "talk.wav", noisy)
    source = tmp_path / "talk.mp4"
    seconds = len(noisy) / RATE
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size=64x48:rate=10:d={seconds}"]
        + ["-i", str(talk), "-c:v", "libx264", "-c:a", "aac", "-shortest", str(source)],
        check=True,
    )
    output = tmp_path / "out.mp4"
    args = ["enhance", str(source), "-o", str(output), "--scale", "1", "--interpolate", "1", "--chunk-frames", "12"]
    result = run_cli(*args, "--clean-audio", "--keep-original-audio", "--json", "--work-dir", str(tmp_path / "w"))
    assert result.returncode == 0, result.stderr
    kinds = [(s["codec_type"], s["disposition"]["default"], s["tags"]["handler_name"]) for s in streams(output)]
    assert kinds == [
        ("video", 1, "VideoHandler"),
        ("audio", 1, "Speech (cleaned by silkpurse)"),
        ("audio", 0, "SoundHandler"),
    ]
    cleaned, original = read_audio(output, stream="a:0"), read_audio(source, stream="a:0")
    assert abs(lag_seconds(voice, cleaned, RATE)) <= 0.010
    assert abs(len(cleaned) - len(original)) <= RATE // 100  # the same duration (AAC framing aside)
    assert si_sdr(voice, cleaned[: len(voice)]) > si_sdr(voice, noisy) + 3
    assert abs(integrated_loudness(output) + 16) <= 1.0

    silent = tmp_path / "silent.mp4"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=10:d=1", str(silent)],
        check=True,
    )
    result = run_cli("enhance", str(silent), "-o", str(tmp_path / "s.mp4"), "--scale", "1", "--clean-audio", "strong")
    assert result.returncode == 3 and "has no audio track" in result.stderr and "Traceback" not in result.stderr
