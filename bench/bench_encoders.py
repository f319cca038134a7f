"""Chunk segments encoded at once in an embedded run (``silkpurse enhance --encoders N``), next to
one encoder in the same run: wall time, CPU time and whether the outputs are the same bytes.

By default a re-encode (``--scale 1 --interpolate 1``) of OpenCV's real ``vtest.avi`` (768x576,
795 frames) in chunks of 100 frames, where the encoders have every core to themselves, as they
do beside a GPU; the counts take turns for ``--rounds`` rounds so the load of a shared machine
hits them alike.

    .venv/bin/python bench/bench_encoders.py                     # 1 against 2 encoders, 2 rounds
    .venv/bin/python bench/bench_encoders.py --encoders 1 2 4 --width 1280 --frames 300
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from clips import REAL_FOOTAGE, real_clip  # noqa: E402

from silkpurse.plan import JobOptions  # noqa: E402
from silkpurse_cli.embedded import Pipeline, RunOptions  # noqa: E402


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--encoders", type=int, nargs="+", default=[1, 2], help="encoder counts to compare (first: baseline)"
    )
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--width", type=int, default=768, help="width the real clip is scaled to")
    p.add_argument("--frames", type=int, default=None, help="input frames (default: the whole clip)")
    p.add_argument("--chunk-frames", type=int, default=100)
    p.add_argument("--preset", default="medium")
    p.add_argument("--source", type=Path, default=REAL_FOOTAGE)
    return p.parse_args()


def cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def run_once(clip: Path, out: Path, work: Path, encoders: int, options: JobOptions) -> tuple[float, float]:
    pipeline = Pipeline(clip, out, options, RunOptions(work_dir=work, device="cpu", encoders=encoders))
    started, cpu = time.perf_counter(), cpu_seconds()
    pipeline.run()
    return time.perf_counter() - started, cpu_seconds() - cpu


def main() -> None:
    args = parse_args()
    options = JobOptions(scale=1, interpolate=1, chunk_frames=args.chunk_frames, preset=args.preset)
    with tempfile.TemporaryDirectory(prefix="bench-encoders-") as tmp_name:
        tmp = Path(tmp_name)
        clip = real_clip(tmp / "clip.mp4", width=args.width, frames=args.frames, source=args.source)
        print(f"{os.cpu_count()} cores; {clip.name} {args.width} px wide, chunks of {args.chunk_frames} frames")
        print(f"load average before: {os.getloadavg()[0]:.1f}")
        walls: dict[int, list[float]] = {n: [] for n in args.encoders}
        outputs: dict[int, bytes] = {}
        for round_number in range(args.rounds):
            for n in args.encoders:
                out = tmp / f"out-{n}-{round_number}.mp4"
                wall, cpu = run_once(clip, out, tmp / f"work-{n}-{round_number}", n, options)
                walls[n].append(wall)
                outputs.setdefault(n, out.read_bytes())
                print(f"round {round_number + 1}, {n} encoder(s): {wall:.1f} s, {cpu:.1f} CPU s")
        base = args.encoders[0]
        for n in args.encoders:
            same = outputs[n] == outputs[base]
            median = statistics.median(walls[n])
            print(
                f"{n} encoder(s): median {median:.1f} s, {statistics.median(walls[base]) / median:.2f}x the speed of "
                f"{base}; output {'the same bytes' if same else 'DIFFERENT BYTES'} as {base}"
            )
        print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
