"""CUDA behaviour of the interpolator: fp16 agrees with fp32 on real frame pairs. Runs only
where PyTorch sees a CUDA GPU; CPU machines skip it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from silkpurse.metrics import psnr
from silkpurse_interpolator.engine import Interpolator

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def test_half_precision_matches_fp32(rife_root: Path) -> None:
    demo = rife_root / "demo"
    first = np.stack([np.asarray(Image.open(demo / f"I{k}_0.png").convert("RGB")) for k in range(3)])
    second = np.stack([np.asarray(Image.open(demo / f"I{k}_1.png").convert("RGB")) for k in range(3)])
    full = Interpolator("rife-hdv3", device="cuda", half=False).interpolate(first, second, [0.5] * 3)
    half = Interpolator("rife-hdv3", device="cuda", half=True).interpolate(first, second, [0.5] * 3)
    assert psnr(half, full) >= 40


def test_identity_depends_on_precision_not_on_the_device_string() -> None:
    half = Interpolator("rife-hdv3", device="cuda", half=True)
    assert half.identity() == Interpolator("rife-hdv3", device="cuda:0", half=True).identity()
    assert half.identity()["precision"] == "fp16"
    assert Interpolator("rife-hdv3", device="cuda", half=False).identity()["precision"] == "fp32"
    assert half.warm_up((256, 448)) > 0


def _demo_pairs(rife_root: Path) -> tuple[np.ndarray, np.ndarray]:
    demo = rife_root / "demo"
    first = np.stack([np.asarray(Image.open(demo / f"I{k}_0.png").convert("RGB")) for k in range(3)])
    second = np.stack([np.asarray(Image.open(demo / f"I{k}_1.png").convert("RGB")) for k in range(3)])
    return first, second


def test_frames_quantised_on_the_device_match_the_cpu(rife_root: Path) -> None:
    first, second = _demo_pairs(rife_root)
    gpu = Interpolator("rife-hdv3", device="cuda", precision="fp32").interpolate(first, second, [0.5] * 3)
    cpu = Interpolator("rife-hdv3", device="cpu", precision="fp32").interpolate(first, second, [0.5] * 3)
    assert gpu.dtype == np.uint8 and psnr(gpu, cpu) >= 40


@pytest.mark.parametrize("backend", ["compile", "tensorrt"])
def test_compiled_forms_agree_with_eager(rife_root: Path, backend: str) -> None:
    if backend == "tensorrt":
        pytest.importorskip("torch_tensorrt")
    first, second = _demo_pairs(rife_root)
    eager = Interpolator("rife-hdv3", device="cuda").interpolate(first, second, [0.5] * 3)
    engine = Interpolator("rife-hdv3", device="cuda", backend=backend)  # type: ignore[arg-type]
    assert psnr(engine.interpolate(first, second, [0.5] * 3), eager) >= 45
    assert min(engine._forward.agreement.values()) >= 45  # the compiled form ran, not the eager fallback
    assert engine.identity()["backend"] == backend
