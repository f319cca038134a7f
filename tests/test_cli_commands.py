"""The other commands through the real command line: probe, models, image upscaling and
interpolation, and video interpolation to a target rate."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tests.conftest import REAL_FOOTAGE, ClipFactory, ffmpeg

from silkpurse.media.probe import probe


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "silkpurse_cli", *args], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope="module")
def frame_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two consecutive real frames (people walking), 128x96."""
    folder = tmp_path_factory.mktemp("pair")
    ffmpeg(
        "-i",
        str(REAL_FOOTAGE),
        "-vf",
        "select='between(n,40,41)',scale=128:96",
        "-fps_mode",
        "passthrough",
        "-frames:v",
        "2",
        str(folder / "frame_%d.png"),
    )
    return folder / "frame_1.png", folder / "frame_2.png"


def test_probe_prints_the_video_facts(clip_with_audio: Path) -> None:
    facts = json.loads(run_cli("probe", str(clip_with_audio)).stdout)
    assert facts["rate"] == "30000/1001" and facts["frame_count"] == 30 and facts["vfr"] is False
    assert facts["colour"]["matrix"] == "smpte170m" and facts["audio"][0]["codec"] == "aac"


def test_models_list_shows_both_families() -> None:
    models = {m["name"]: m for m in json.loads(run_cli("models", "list", "--json").stdout)}
    assert models["realesr-animevideov3"]["kind"] == "upscale" and models["realesr-animevideov3"]["scale"] == 4
    assert models["rife-hdv3"]["kind"] == "interpolate" and models["rife-hdv3"]["offline"]
    assert all(m["licence"] and m["source"] for m in models.values())


def test_upscale_an_image(frame_pair: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "big.png"
    summary = json.loads(run_cli("upscale", str(frame_pair[0]), "-o", str(out), "--scale", "2", "--json").stdout)
    assert Image.open(out).size == (256, 192)
    assert summary["size"] == [256, 192] and summary["model"] == "realesr-animevideov3"


def test_interpolate_between_two_images(frame_pair: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "mid.png"
    run_cli("interpolate", str(frame_pair[0]), str(frame_pair[1]), "-o", str(out), "--t", "0.5", "-q")
    a, b, mid = (np.asarray(Image.open(p).convert("RGB"), dtype=np.float64) for p in (*frame_pair, out))
    assert mid.shape == a.shape
    # Between the two, not a copy of either.
    assert 0 < np.abs(mid - a).mean() < np.abs(b - a).mean()
    assert 0 < np.abs(mid - b).mean() < np.abs(b - a).mean()


def test_interpolate_a_video_to_a_target_rate(make_clip: ClipFactory, tmp_path: Path) -> None:
    clip = make_clip("ten_fps.mp4", "-i", str(REAL_FOOTAGE), "-t", "1.2", "-vf", "scale=96:72", "-c:v", "libx264")
    out = tmp_path / "out.mp4"
    summary = json.loads(run_cli("interpolate", str(clip), "-o", str(out), "--fps", "24", "--json").stdout)
    src, dst = probe(clip), probe(out)
    assert dst.rate == 24 and src.rate == 10
    assert dst.frame_count == summary["frames_out"] == math.ceil(src.frame_count * Fraction(24, 10))
    assert abs(dst.duration - src.duration) <= 1 / 24 + 1e-3
