"""Stage order, speed and quality against ground truth: ``--order upscale-first`` against
``--order interpolate-first`` on real footage whose missing frames and larger size are known.

From OpenCV's ``vtest.avi`` (real camera footage, 768x576, 10 fps), the source clip keeps every
other frame, scaled to 320x240 (so 5 fps, lossless H.264); ``enhance --scale 2 --interpolate 2``
makes 640x480 at 10 fps from it. The truth is the footage itself scaled to 640x480: the even
output frames are upscaled source frames (the same in both orders), the odd ones were made by
the interpolator and are scored against the real frames that were dropped. Each order also
reports its wall time and the time spent inside the networks in the same run.

    .venv/bin/python bench/bench_order.py [--pairs 24]      # about 4 min on 2 idle cores
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_speed import cpu_seconds, decoded, models_timed  # noqa: E402
from clips import REAL_FOOTAGE, real_frames  # noqa: E402

from silkpurse.metrics import psnr  # noqa: E402
from silkpurse.plan import JobOptions  # noqa: E402

START = 100


def halved_clip(output: Path, frames: int) -> Path:
    """Every other frame of vtest.avi from START, 320x240, lossless: the input whose gaps we know."""
    subprocess.run(
        [
            "ffmpeg", "-v", "error", "-y", "-i", str(REAL_FOOTAGE),
            "-vf", f"select=gte(n\\,{START})*not(mod(n-{START}\\,2)),setpts=N/5/TB,scale=320:240:flags=bicubic",
            "-r", "5", "-frames:v", str(frames), "-c:v", "libx264", "-qp", "0", "-pix_fmt", "yuv444p", str(output),
        ],
        check=True,
    )  # fmt: skip
    return output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=24, help="source frames (each gap is one made frame)")
    args = parser.parse_args()
    from silkpurse_cli.embedded import Pipeline, RunOptions

    truth = real_frames(2 * args.pairs, width=640, height=480, start=START)
    with tempfile.TemporaryDirectory(prefix="bench-order-") as tmp_name:
        tmp = Path(tmp_name)
        clip = halved_clip(tmp / "half.mkv", args.pairs)
        print(f"{args.pairs} real frames at 320x240 (every other frame of vtest.avi) -> x2 + x2, scored at 640x480")
        print(f"{'order':<18}{'run s':>7}{'models s':>10}{'CPU s':>7}{'made frames dB':>16}{'kept frames dB':>16}")
        for order in ("upscale-first", "interpolate-first"):
            options = JobOptions(order=order, crf=0, preset="ultrafast")  # type: ignore[arg-type]
            out = tmp / f"{order}.mkv"
            with models_timed() as inside:
                pipeline = Pipeline(clip, out, options, RunOptions(work_dir=tmp / order, device="cpu"))
                started, cpu = time.perf_counter(), cpu_seconds()
                pipeline.run()
                run_s, cpu = time.perf_counter() - started, cpu_seconds() - cpu
            made = decoded(out)[: 2 * args.pairs - 1]  # the last output holds the last frame
            kept_db = psnr(made[0::2], truth[0 : 2 * args.pairs - 1 : 2])
            made_db = psnr(made[1::2], truth[1 : 2 * args.pairs - 1 : 2])
            print(f"{order:<18}{run_s:>7.1f}{inside[0]:>10.1f}{cpu:>7.1f}{made_db:>16.2f}{kept_db:>16.2f}", flush=True)
            # What no flow at all would give from the same upscaled frames: a 50/50 blend.
            kept = made[0::2].astype(np.float32)
            blend = np.rint((kept[:-1] + kept[1:]) / 2).astype(np.uint8)
            print(f"{'  50/50 blend':<18}{'':>24}{psnr(blend, truth[1 : 2 * args.pairs - 1 : 2]):>16.2f}")


if __name__ == "__main__":
    main()
