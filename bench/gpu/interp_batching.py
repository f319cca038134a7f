"""Pairs per network call on CUDA: throughput of RIFE HDv3 with micro-batches of 1, 2, 4, 8
pairs, and whether a pair's output bytes depend on the pairs it travelled with.

    python3 bench/gpu/interp_batching.py --frames .gpu/frames.npy --sizes 1280x720 1920x1080
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from silkpurse_interpolator.engine import Interpolator  # noqa: E402


def frames_at(path: Path, size: tuple[int, int], count: int) -> np.ndarray:
    """``count`` real frames: the saved pair, each shifted a few pixels per step so pairs differ."""
    base = [np.asarray(Image.fromarray(f).resize(size, Image.BICUBIC)) for f in np.load(path)]
    return np.stack([np.roll(base[k % 2], 3 * (k // 2), axis=1) for k in range(count)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=Path, required=True)
    parser.add_argument("--sizes", nargs="+", default=["1280x720", "1920x1080"])
    parser.add_argument("--pairs", type=int, default=16)
    parser.add_argument("--model", default="rife-hdv3")
    args = parser.parse_args()
    print(f"# {torch.cuda.get_device_name()} torch {torch.__version__}, {args.model}, fp16, t = 0.5")
    print("| size | pairs per call | pairs/s | bytes equal to 1 per call |")
    print("|---|---:|---:|---|")
    for size in args.sizes:
        w, h = (int(v) for v in size.split("x"))
        frames = frames_at(args.frames, (w, h), args.pairs + 1)
        pairs = [(k, k + 1, 0.5) for k in range(args.pairs)]
        baseline = None
        for micro in (1, 2, 4, 8):
            engine = Interpolator(args.model, device="cuda", micro_batch=micro)
            engine.interpolate_indexed(frames, pairs)  # warm-up: cuDNN autotune, allocations
            torch.cuda.synchronize()
            start = time.perf_counter()
            out = engine.interpolate_indexed(frames, pairs)
            torch.cuda.synchronize()
            rate = len(pairs) / (time.perf_counter() - start)
            # The same pairs grouped differently (an odd offset) must give the same bytes.
            shifted = engine.interpolate_indexed(frames, pairs[1:] + pairs[:1])
            regrouped = np.concatenate((shifted[-1:], shifted[:-1]))
            baseline = out if baseline is None else baseline
            same = np.array_equal(out, baseline) and np.array_equal(regrouped, out)
            print(f"| {w}x{h} | {micro} | {rate:.1f} | {same} |")


if __name__ == "__main__":
    main()
