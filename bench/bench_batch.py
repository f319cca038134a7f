"""Frame-batch format throughput: encode (to_bytes) + decode (from_bytes, checksum verified)
of raw frames, next to a plain memory copy of the same bytes measured in the same run.

    .venv/bin/python bench/bench_batch.py [--frames 8] [--size 1280x720] [--repeat 20]
"""

from __future__ import annotations

import argparse
import time
from fractions import Fraction

import numpy as np

from silkpurse.batch import FrameBatch


def best_seconds(func, repeat: int) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    print(f"{'dtype':>6} {'MB':>7} {'encode+decode MB/s':>19} {'memcpy MB/s':>12} {'ratio':>6}")
    for dtype in (np.uint8, np.uint16):
        frames = np.random.default_rng(0).integers(0, 255, (args.frames, height, width, 3)).astype(dtype)
        batch = FrameBatch(frames, 0, Fraction(30000, 1001), {"stage": "bench"})
        megabytes = frames.nbytes / 1e6
        round_trip = best_seconds(lambda b=batch: FrameBatch.from_bytes(b.to_bytes()), args.repeat)
        copy = best_seconds(lambda f=frames: f.copy(), args.repeat)
        back = FrameBatch.from_bytes(batch.to_bytes())
        assert np.array_equal(back.frames, frames)
        print(
            f"{np.dtype(dtype).name:>6} {megabytes:7.1f} {megabytes / round_trip:19.0f} {megabytes / copy:12.0f} "
            f"{copy / round_trip:6.2f}"
        )


if __name__ == "__main__":
    main()
