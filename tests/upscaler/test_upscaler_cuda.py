"""CUDA behaviour of the upscaler: half precision agrees with fp32, tiling on the GPU agrees
with whole frames. These run only where PyTorch sees a CUDA GPU (see docs/benchmarks.md for
the GPU session that ran them); CPU machines skip them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from silkpurse.metrics import psnr
from silkpurse_upscaler.engine import Upscaler

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


@pytest.mark.parametrize("model", ["realesr-animevideov3", "realesrgan-x4plus"])
def test_half_precision_matches_fp32(model: str, photos: dict[str, np.ndarray]) -> None:
    frames = np.stack([photos["I0_0"], photos["I1_0"]])
    full = Upscaler(model, device="cuda", precision="fp32", tile=0).upscale(frames)
    half = Upscaler(model, device="cuda", precision="fp16", tile=0).upscale(frames)
    assert half.shape == full.shape == (2, 256 * 4, 448 * 4, 3)
    assert psnr(half, full) >= 40


def test_tiled_matches_whole_frame_on_cuda(photos: dict[str, np.ndarray]) -> None:
    frames = photos["I2_0"][None]
    whole = Upscaler("realesr-animevideov3", device="cuda", tile=0).upscale(frames)
    tiled = Upscaler("realesr-animevideov3", device="cuda", tile=128).upscale(frames)
    assert psnr(tiled, whole) >= 40


def test_identity_depends_on_precision_not_on_the_device_string() -> None:
    fp16 = Upscaler("realesr-animevideov3", device="cuda", precision="fp16")
    assert fp16.identity() == Upscaler("realesr-animevideov3", device="cuda:0", precision="fp16").identity()
    fp32 = Upscaler("realesr-animevideov3", device="cuda", precision="fp32").identity()
    assert fp16.identity()["precision"] == "fp16" and fp32["precision"] == "fp32"
    assert fp16.warm_up((256, 448)) > 0
