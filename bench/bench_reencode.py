"""End-to-end `silkpurse enhance --scale 1 --interpolate 1` speed on real footage, next to
plain ffmpeg doing the same decode + x264 encode (same CRF and preset) in the same run.

    .venv/bin/python bench/bench_reencode.py [--input /usr/share/doc/opencv-doc/examples/data/vtest.avi]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from silkpurse.media.probe import probe

DEFAULT_INPUT = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", type=Path, default=DEFAULT_INPUT)
    parser.add_argument("--preset", default="medium")
    args = parser.parse_args()
    info = probe(args.input)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        plain = timed(
            [
                "ffmpeg",
                "-v",
                "error",
                "-y",
                "-i",
                str(args.input),
                "-c:v",
                "libx264",
                "-crf",
                "18",
                "-preset",
                args.preset,
                "-pix_fmt",
                "yuv420p",
                str(out / "ffmpeg.mp4"),
            ]
        )
        ours = timed(
            [
                sys.executable,
                "-m",
                "silkpurse_cli",
                "enhance",
                str(args.input),
                "-o",
                str(out / "ours.mp4"),
                "--scale",
                "1",
                "--interpolate",
                "1",
                "--preset",
                args.preset,
                "-q",
                "--work-dir",
                str(out / "work"),
            ]
        )
    frames = info.frame_count
    print(f"input: {args.input.name} {info.width}x{info.height} {frames} frames @ {float(info.rate):g} fps")
    print(f"{'':>22} {'seconds':>8} {'frames/s':>9}")
    print(f"{'ffmpeg (baseline)':>22} {plain:8.2f} {frames / plain:9.1f}")
    print(f"{'silkpurse --scale 1':>22} {ours:8.2f} {frames / ours:9.1f}")
    print(f"ratio silkpurse/ffmpeg throughput: {plain / ours:.2f}")


if __name__ == "__main__":
    main()
