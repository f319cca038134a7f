"""The engine on real photos: agreement with ncnn Real-ESRGAN, tiling, outscale, formats, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from upscaler_testing import NcnnReference

from silkpurse.errors import DeviceError, InputError, OptionsError
from silkpurse.metrics import psnr
from silkpurse.nn.engine import cpu_has_native_bf16
from silkpurse_upscaler.engine import Upscaler


def test_animevideov3_matches_the_ncnn_reference(
    anime_upscaler: Upscaler, small_frames: np.ndarray, ncnn_reference: NcnnReference
) -> None:
    out = anime_upscaler.upscale(small_frames)
    assert out.shape == (2, 256, 384, 3) and out.dtype == np.uint8
    for frame, result in zip(small_frames, out, strict=True):
        assert psnr(result, ncnn_reference("realesr-animevideov3", frame)) >= 40


@pytest.mark.slow
def test_x4plus_matches_the_ncnn_reference(photos: dict[str, np.ndarray], ncnn_reference: NcnnReference) -> None:
    frame = photos["I2_0"][100:148, 180:244]  # 64x48: RRDBNet takes seconds even at this size
    out = Upscaler("realesrgan-x4plus", device="cpu").upscale(frame[None])[0]
    assert psnr(out, ncnn_reference("realesrgan-x4plus", frame)) >= 40


def test_tiled_output_matches_untiled(anime_upscaler: Upscaler, small_frames: np.ndarray) -> None:
    tiled = Upscaler("realesr-animevideov3", device="cpu", tile=32, tile_pad=10).upscale(small_frames)
    assert psnr(tiled, anime_upscaler.upscale(small_frames)) >= 40


def test_tiled_rrdbnet_matches_untiled(small_frames: np.ndarray) -> None:
    frame = small_frames[:1, :32, :40]  # 2x2 tiles of 32 px after the 10 px border padding
    whole = Upscaler("realesrgan-x4plus-anime", device="cpu", tile=0).upscale(frame)
    tiled = Upscaler("realesrgan-x4plus-anime", device="cpu", tile=32)
    assert tiled.plan(1, 32, 40).tile == 32
    assert psnr(tiled.upscale(frame), whole) >= 40


@pytest.mark.parametrize("scale", [1, 2, 3])
def test_outscale_gives_the_exact_size(small_frames: np.ndarray, scale: int) -> None:
    up = Upscaler("realesr-animevideov3", device="cpu", scale=scale)
    assert up.scale == scale and up.native_scale == 4
    assert up.upscale(small_frames).shape == (2, 64 * scale, 96 * scale, 3)


def test_x2_outscale_looks_like_the_ncnn_x2_model(small_frames: np.ndarray, ncnn_reference: NcnnReference) -> None:
    # ncnn's x2 model is the same network followed by a plain bicubic reduction; ours is
    # antialiased, so they agree closely but not exactly.
    out = Upscaler("realesr-animevideov3", device="cpu", scale=2).upscale(small_frames[:1])[0]
    assert psnr(out, ncnn_reference("realesr-animevideov3-x2", small_frames[0])) >= 32


def test_uint16_frames_give_the_same_picture_in_16_bits(anime_upscaler: Upscaler, small_frames: np.ndarray) -> None:
    out16 = anime_upscaler.upscale(small_frames.astype(np.uint16) * 257)
    assert out16.dtype == np.uint16
    assert psnr(out16, anime_upscaler.upscale(small_frames).astype(np.uint16) * 257, peak=65535) >= 45
    assert len(np.unique(out16)) > 256  # real 16-bit output, not 8-bit values scaled up


def test_rgba_colour_goes_through_the_model_and_alpha_is_interpolated(
    anime_upscaler: Upscaler, small_frames: np.ndarray
) -> None:
    alpha = np.broadcast_to(np.linspace(0, 255, 96, dtype=np.uint8), (2, 64, 96))[..., None]
    out = anime_upscaler.upscale(np.concatenate((small_frames, alpha), axis=3))
    assert out.shape == (2, 256, 384, 4)
    np.testing.assert_array_equal(out[..., :3], anime_upscaler.upscale(small_frames))
    expected = (
        F.interpolate(torch.from_numpy(alpha[..., 0].astype(np.float32))[:, None], scale_factor=4, mode="bicubic")
        .clamp(0, 255)
        .round()
        .numpy()[:, 0]
    )
    assert np.abs(out[..., 3].astype(int) - expected).max() <= 1


def test_grey_frames_stay_grey(anime_upscaler: Upscaler, small_frames: np.ndarray) -> None:
    assert anime_upscaler.upscale(small_frames[..., :1]).shape == (2, 256, 384, 1)


def test_read_only_and_empty_inputs(anime_upscaler: Upscaler, small_frames: np.ndarray) -> None:
    frozen = small_frames.copy()
    frozen.flags.writeable = False
    assert anime_upscaler.upscale(frozen[:1, :16, :16]).shape == (1, 64, 64, 3)
    assert anime_upscaler.upscale(np.zeros((0, 8, 8, 3), np.uint8)).shape == (0, 32, 32, 3)


def test_tiny_frames_are_padded_without_reflection_errors(anime_upscaler: Upscaler) -> None:
    assert anime_upscaler.upscale(np.full((1, 3, 5, 3), 128, np.uint8)).shape == (1, 12, 20, 3)


def test_big_frames_are_tiled_automatically_on_cpu(anime_upscaler: Upscaler) -> None:
    assert anime_upscaler.plan(1, 180, 320).tile == 0
    assert anime_upscaler.plan(1, 1080, 1920).tile >= 64


@pytest.mark.parametrize(
    "frames", [np.zeros((64, 64, 3), np.uint8), np.zeros((1, 8, 8, 3), np.float32), np.zeros((1, 8, 8, 2), np.uint8)]
)
def test_malformed_frames_are_an_input_error(anime_upscaler: Upscaler, frames: np.ndarray) -> None:
    with pytest.raises(InputError):
        anime_upscaler.upscale(frames)


@pytest.mark.skipif(not cpu_has_native_bf16(), reason="bf16 is refused on CPUs without native bf16")
def test_bf16_stays_faithful_to_fp32_on_real_frames(anime_upscaler: Upscaler, photos: dict[str, np.ndarray]) -> None:
    # The measured margin (bench/bench_precision.py): 54.5 dB on vtest.avi frames; 45 dB is the bar.
    frames = np.stack([photos["I0_0"][64:192, 96:288], photos["I2_1"][64:192, 160:352]])
    up = Upscaler("realesr-animevideov3", device="cpu", precision="bf16")
    assert up.dtype == torch.bfloat16
    for bf16, fp32 in zip(up.upscale(frames), anime_upscaler.upscale(frames), strict=True):
        assert psnr(bf16, fp32) >= 45


@pytest.mark.parametrize(("native", "expected"), [(True, "bf16"), (False, "fp32")])
def test_the_cpu_default_is_bf16_only_where_the_cpu_has_it(
    monkeypatch: pytest.MonkeyPatch, native: bool, expected: str
) -> None:
    monkeypatch.setattr("silkpurse.nn.engine.cpu_has_native_bf16", lambda: native)
    up = Upscaler("realesr-animevideov3", device="cpu")
    assert up.precision == expected and up.model_ref().precision == expected
    assert Upscaler("realesr-animevideov3", device="cpu", precision="fp32").precision == "fp32"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_on_a_cpu_machine_is_a_device_error() -> None:
    with pytest.raises(DeviceError, match="CUDA"):
        Upscaler("realesr-animevideov3", device="cuda")


@pytest.mark.parametrize(
    "options",
    [
        {"scale": 8},
        {"scale": 0},
        {"half": True},
        {"precision": "fp16"},
        {"half": False, "precision": "fp16"},
        {"precision": "fp64"},
        {"tile": 4},
        {"tile_pad": -1},
        {"denoise_strength": 0.5},
        {"batch_size": 0},
    ],
)
def test_impossible_options_are_an_options_error(options: dict[str, object]) -> None:
    with pytest.raises(OptionsError):
        Upscaler("realesr-animevideov3", device="cpu", **options)  # type: ignore[arg-type]
