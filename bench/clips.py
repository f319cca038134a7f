"""Real footage for the benchmarks: OpenCV's vtest.avi (Debian's opencv-doc), scaled down and
given a sine track, so A/V checks have audio to compare."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

REAL_FOOTAGE = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")


def real_clip(output: Path, *, width: int, frames: int | None = None, source: Path = REAL_FOOTAGE) -> Path:
    """``source`` scaled to ``width`` (height even), H.264 CRF 16 with a 220 Hz AAC track."""
    limit = ["-frames:v", str(frames)] if frames else []
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-y",
            "-i",
            str(source),
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=220:sample_rate=48000",
            *limit,
            "-vf",
            f"scale={width}:-2",
            "-c:v",
            "libx264",
            "-crf",
            "16",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-shortest",
            str(output),
        ],
        check=True,
    )
    return output


def real_frames(count: int, *, width: int, height: int, start: int = 100, source: Path = REAL_FOOTAGE) -> np.ndarray:
    """``count`` consecutive RGB frames of ``source`` from frame ``start``, scaled to ``width x height``
    (``(N, H, W, 3)`` uint8): real camera footage for quality and speed measurements."""
    raw = subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-i",
            str(source),
            "-vf",
            f"select=gte(n\\,{start}),scale={width}:{height}:flags=bicubic",
            "-fps_mode",
            "passthrough",
            "-frames:v",
            str(count),
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-",
        ],
        check=True,
        capture_output=True,
    ).stdout
    frames = np.frombuffer(raw, np.uint8).reshape(-1, height, width, 3)
    if len(frames) != count:
        raise SystemExit(f"{source} gave {len(frames)} frames from {start}, {count} needed")
    return frames
