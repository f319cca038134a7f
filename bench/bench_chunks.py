"""Chunked processing on a real clip: peak work-directory size against the whole job's, and
the output against a one-chunk run of the same job (frames, every pts, duration, A/V sync,
decoded frames with a lossless encode).

    .venv/bin/python bench/bench_chunks.py [--input vtest.avi] [--width 96] [--chunk-frames 120]

The default input is OpenCV's vtest.avi (79.5 s of real camera footage, 10 fps), scaled down
so both runs take minutes on a 2-core CPU, with a sine track added for the A/V check.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path

from clips import REAL_FOOTAGE, real_clip

from silkpurse.metrics import packet_times, stored_bytes
from silkpurse.plan import JobOptions
from silkpurse_cli.embedded import Pipeline, RunOptions


def run(source: Path, output: Path, work: Path, chunk_frames: int) -> tuple[dict[str, object], int, float]:
    """One enhance; its summary, the peak bytes of batches in the work directory, seconds."""
    options = JobOptions(scale=2, interpolate=2, codec="h264", crf=0, preset="ultrafast", chunk_frames=chunk_frames)
    pipeline = Pipeline(source, output, options, RunOptions(work_dir=work, device="cpu"))
    peak, done = [0], threading.Event()

    def watch() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], stored_bytes(work))
            done.wait(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    started = time.perf_counter()
    try:
        result = pipeline.run()
    finally:
        done.set()
        watcher.join()
    summary = {**result.to_json(), "work_bytes_per_chunk": pipeline.plan.work_bytes_per_chunk}
    return summary, peak[0], time.perf_counter() - started


def frame_md5(path: Path) -> str:
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:v", "-f", "framemd5", "-"],
        capture_output=True,
        check=True,
    ).stdout
    lines = [line.rsplit(",", 1)[-1] for line in raw.decode().splitlines() if not line.startswith("#")]
    return hashlib.sha256("".join(lines).encode()).hexdigest()[:16]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=Path, default=REAL_FOOTAGE)
    parser.add_argument("--width", type=int, default=96, help="width the clip is scaled to (even)")
    parser.add_argument("--chunk-frames", type=int, default=120)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-chunks-") as tmp_name:
        tmp = Path(tmp_name)
        source = tmp / "source.mp4"
        real_clip(source, width=args.width, source=args.input)
        chunked, peak_c, secs_c = run(source, tmp / "chunked.mkv", tmp / "work-c", args.chunk_frames)
        whole, peak_w, secs_w = run(source, tmp / "whole.mkv", tmp / "work-w", 10**6)
        video_c, video_w = packet_times(tmp / "chunked.mkv", "v:0"), packet_times(tmp / "whole.mkv", "v:0")
        audio_c, audio_w = packet_times(tmp / "chunked.mkv", "a:0"), packet_times(tmp / "whole.mkv", "a:0")
        rate = Fraction(str(chunked["rate_out"]))
        print(
            f"input: {args.input.name} scaled to width {args.width}, {chunked['frames_in']} frames, "
            f"{chunked['duration_in']} s; --scale 2 --interpolate 2 --crf 0"
        )
        print(f"{'run':<12}{'chunks':>7}{'peak work MB':>14}{'seconds':>9}{'frames out':>12}")
        for name, s, peak, secs in (("chunked", chunked, peak_c, secs_c), ("one chunk", whole, peak_w, secs_w)):
            print(f"{name:<12}{s['chunks']:>7}{peak / 1e6:>14.1f}{secs:>9.1f}{s['frames_out']:>12}")
        print(
            f"peak chunked / whole job: {peak_c / peak_w:.3f}; "
            f"2 chunks' batches: {2 * int(chunked['work_bytes_per_chunk']) / 1e6:.1f} MB"
        )
        worst = max(abs(p - (video_c[0] + j / rate)) for j, p in enumerate(video_c))
        print(
            f"every pts equal to the one-chunk run: {video_c == video_w}; max pts error vs grid: "
            f"{float(worst) * 1e3:.3f} ms; duration chunked {chunked['duration_out']} s, one chunk "
            f"{whole['duration_out']} s; audio packets equal: {audio_c == audio_w}; "
            f"A/V start gap {float(video_c[0] - audio_c[0]) * 1e3:.3f} vs {float(video_w[0] - audio_w[0]) * 1e3:.3f} ms"
        )
        print(f"decoded frames identical: {frame_md5(tmp / 'chunked.mkv') == frame_md5(tmp / 'whole.mkv')}")


if __name__ == "__main__":
    main()
