"""Session-wide test set-up: private model and work directories, and media clips made with
real ffmpeg (synthetic for plumbing, OpenCV's real camera footage for quality)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import prefect_server
import pytest
from s3_server import S3Server, s3_server

from silkpurse.metrics import psnr  # noqa: F401  (re-exported for the tests)
from silkpurse.settings import get_settings

REAL_FOOTAGE = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
prefect_server.configure()  # before anything imports Prefect, which reads its settings once


@pytest.fixture(scope="session", autouse=True)
def _isolated_settings(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep tests away from the user's cache; weights are built once per session."""
    root = tmp_path_factory.mktemp("silkpurse-home")
    os.environ.setdefault("SILKPURSE_MODELS_DIR", str(root / "models"))
    os.environ["SILKPURSE_WORK_DIR"] = str(root / "work")
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A real S3 server for the session (MinIO in Docker where available, else SeaweedFS), with
    throwaway credentials; ``s3.stop()`` / ``s3.start()`` take it down and back."""
    with s3_server(tmp_path_factory.mktemp("s3-server")) as server:
        yield server


@pytest.fixture(scope="session")
def prefect(tmp_path_factory: pytest.TempPathFactory) -> Iterator[prefect_server.PrefectServer]:
    """The session's real Prefect server (the API only: no UI)."""
    server = prefect_server.start_prefect_server(tmp_path_factory.mktemp("prefect"))
    try:
        yield server
    finally:
        server.stop()


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True)


ClipFactory = Callable[..., Path]


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("clips")


@pytest.fixture(scope="session")
def make_clip(clip_dir: Path) -> ClipFactory:
    """``make_clip(name, *ffmpeg_args)`` -> path, made once per session."""

    def make(name: str, *args: str) -> Path:
        path = clip_dir / name
        if not path.exists():
            ffmpeg(*args, str(path))
        return path

    return make


@pytest.fixture(scope="session")
def clip_with_audio(make_clip: ClipFactory, real_footage: Path) -> Path:
    """1 s of real footage at 96x64, 30000/1001 fps, with a stereo 48 kHz AAC track."""
    return make_clip(
        "audio.mp4",
        "-i",
        str(real_footage),
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000",
        "-t",
        "1.001",
        "-vf",
        "scale=96:64,fps=30000/1001",
        "-ac",
        "2",
        "-c:v",
        "libx264",
        "-crf",
        "12",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-shortest",
    )


@pytest.fixture(scope="session")
def vfr_clip(make_clip: ClipFactory) -> Path:
    """Variable frame rate: 0.5 s at 30 fps, then 0.5 s at 10 fps, timestamps kept (MKV)."""
    return make_clip(
        "vfr.mkv",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=64x48:rate=30:duration=0.5[a];testsrc2=size=64x48:rate=10:duration=0.5[b];[a][b]concat=n=2",
        "-c:v",
        "libx264",
        "-fps_mode",
        "vfr",
    )


@pytest.fixture(scope="session")
def rotated_clip(make_clip: ClipFactory) -> Path:
    """64x32 coded, with a 90-degree display matrix: displayed 32x64."""
    source = "testsrc2=size=64x32:rate=10:duration=0.5"
    plain = make_clip("unrotated.mp4", "-f", "lavfi", "-i", source, "-c:v", "libx264")
    return make_clip("rotated.mp4", "-i", str(plain), "-c", "copy", "-metadata:s:v:0", "rotate=90")


@pytest.fixture(scope="session")
def real_footage(make_clip: ClipFactory) -> Path:
    """Two seconds of real camera footage (OpenCV's vtest.avi, 10 fps) at 384x288 with an
    AAC audio track, as a fresh H.264 MP4."""
    if not REAL_FOOTAGE.exists():
        pytest.fail(f"{REAL_FOOTAGE} is missing: run scripts/setup.sh --test (installs opencv-doc)")
    return make_clip(
        "real.mp4",
        "-i",
        str(REAL_FOOTAGE),
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=220:sample_rate=48000",
        "-t",
        "2",
        "-vf",
        "scale=384:288",
        "-c:v",
        "libx264",
        "-crf",
        "16",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-shortest",
    )


def decode_rgb(path: Path) -> np.ndarray:
    """All frames of ``path`` as (N, H, W, 3) uint8, decoded by the project's own extractor."""
    from silkpurse.media.probe import probe
    from silkpurse_extractor.extract import extract_batches

    info = probe(path)
    return np.concatenate([b.frames for b in extract_batches(info, 64)])


@pytest.fixture
def no_leftovers() -> Callable[[Path], None]:
    """Assert a folder holds no partial outputs."""

    def check(folder: Path) -> None:
        left = [p.name for p in folder.iterdir() if ".partial" in p.name]
        assert not left, f"partial outputs left behind: {left}"

    return check


def ffmpeg_psnr(reference: Path, distorted: Path) -> float:
    """ffmpeg's average YUV PSNR of ``distorted`` against ``reference`` (same size)."""
    result = subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-i",
            str(distorted),
            "-i",
            str(reference),
            "-lavfi",
            "[0:v][1:v]psnr",
            "-f",
            "null",
            "-",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    line = next(line for line in result.stderr.splitlines() if "PSNR" in line and "average:" in line)
    return float(line.split("average:")[1].split()[0])
