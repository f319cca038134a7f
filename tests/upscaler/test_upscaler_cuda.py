"""CUDA behaviour of the upscaler: half precision agrees with fp32, tiling on the GPU agrees
with whole frames, overlapped transfers keep the bytes, compiled and TensorRT forms agree with
eager PyTorch. These run only where PyTorch sees a CUDA GPU (see docs/benchmarks.md for
the GPU session that ran them); CPU machines skip them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from silkpurse.metrics import psnr
from silkpurse.settings import get_settings
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


def test_overlapped_transfers_give_the_bytes_of_one_batch_at_a_time(photos: dict[str, np.ndarray]) -> None:
    # Six frames in forward batches of two: uploads, network and downloads of consecutive
    # batches overlap on three streams, through two pinned buffers per direction (reused).
    frames = np.stack([photos[name] for name in ("I0_0", "I0_1", "I1_0", "I1_1", "I2_0", "I2_1")])
    up = Upscaler("realesr-animevideov3", scale=2, device="cuda", tile=0, batch_size=2)
    assert up.plan(6, 256, 448).frames_per_forward == 2
    streamed = up.upscale(frames)
    one_by_one = np.concatenate([up.upscale(frames[k : k + 2]) for k in range(0, 6, 2)])
    assert np.array_equal(streamed, one_by_one)
    again = up.upscale(frames[::-1].copy())  # the pinned buffers hold the last call's frames: no stale bytes
    assert np.array_equal(again, streamed[::-1])


def test_sixteen_bit_frames_cross_the_bus_and_come_back_sixteen_bit(photos: dict[str, np.ndarray]) -> None:
    frames = photos["I0_0"][None].astype(np.uint16) * 257
    out = Upscaler("realesr-animevideov3", scale=2, device="cuda", tile=0).upscale(frames)
    eight = Upscaler("realesr-animevideov3", scale=2, device="cuda", tile=0).upscale(photos["I0_0"][None])
    assert out.dtype == np.uint16 and psnr((out // 257).astype(np.uint8), eight) >= 40


def test_compiled_network_agrees_with_eager(photos: dict[str, np.ndarray]) -> None:
    frames = np.stack([photos["I0_0"], photos["I1_0"]])
    eager = Upscaler("realesr-animevideov3", scale=2, device="cuda", tile=0).upscale(frames)
    compiled = Upscaler("realesr-animevideov3", scale=2, device="cuda", tile=0, backend="compile")
    assert psnr(compiled.upscale(frames), eager) >= 45
    assert compiled.identity()["backend"] == "compile"


def test_tensorrt_engine_agrees_with_pytorch_and_is_cached_on_disk(photos: dict[str, np.ndarray]) -> None:
    pytest.importorskip("torch_tensorrt")
    frames = np.stack([photos["I0_0"], photos["I1_0"]])
    eager = Upscaler("realesr-animevideov3", scale=2, device="cuda", tile=0).upscale(frames)
    trt = Upscaler("realesr-animevideov3", scale=2, device="cuda", tile=0, backend="tensorrt")
    out = trt.upscale(frames)
    assert list(trt._forward.agreement.values())[0] >= 45  # the engine was used, not the eager fallback
    assert psnr(out, eager) >= 45
    built = {p: p.stat().st_mtime_ns for p in (get_settings().models_dir / "engines").glob("trt-*.ep")}
    assert built
    again = Upscaler("realesr-animevideov3", scale=2, device="cuda", tile=0, backend="tensorrt").upscale(frames)
    assert psnr(again, eager) >= 45
    assert {p: p.stat().st_mtime_ns for p in built} == built  # loaded from disk, not built again
