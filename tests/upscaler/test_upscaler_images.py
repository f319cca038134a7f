"""upscale_image: PNG/JPEG/WebP files, alpha and 16-bit depth kept, clear errors for bad input."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from silkpurse.errors import InputError, OptionsError
from silkpurse.media.image import read_image
from silkpurse.metrics import psnr
from silkpurse_upscaler.engine import upscale_image


@pytest.fixture
def photo_crop(small_frames: np.ndarray) -> np.ndarray:
    return small_frames[0, :24, :32]


def test_png_rgba_keeps_its_alpha(tmp_path: Path, photo_crop: np.ndarray) -> None:
    alpha = np.full(photo_crop.shape[:2] + (1,), 200, np.uint8)
    Image.fromarray(np.concatenate((photo_crop, alpha), axis=2)).save(tmp_path / "in.png")
    out = upscale_image(tmp_path / "in.png", tmp_path / "out.png", device="cpu")
    with Image.open(out) as img:
        assert img.mode == "RGBA" and img.size == (128, 96)
        assert np.all(np.asarray(img)[..., 3] == 200)


def test_16_bit_png_stays_16_bit(tmp_path: Path, photo_crop: np.ndarray) -> None:
    source = tmp_path / "in16.png"
    Image.fromarray(photo_crop).save(tmp_path / "in8.png")
    # ffmpeg writes a true 48-bit RGB PNG (Pillow cannot).
    subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(tmp_path / "in8.png"), "-pix_fmt", "rgb48be", str(source)], check=True
    )
    assert read_image(source).pixels.dtype == np.uint16
    upscale_image(source, tmp_path / "out16.png", device="cpu")
    result = read_image(tmp_path / "out16.png")
    assert result.pixels.dtype == np.uint16 and result.pixels.shape == (96, 128, 3)
    upscale_image(tmp_path / "in8.png", tmp_path / "out8.png", device="cpu")
    eight = np.asarray(Image.open(tmp_path / "out8.png")).astype(np.uint16) * 257
    assert psnr(result.pixels, eight, peak=65535) >= 45


def test_jpeg_and_webp_round_trip_with_scale(tmp_path: Path, photo_crop: np.ndarray) -> None:
    Image.fromarray(photo_crop).save(tmp_path / "in.jpg", quality=95)
    upscale_image(tmp_path / "in.jpg", tmp_path / "out.webp", device="cpu", scale=2)
    with Image.open(tmp_path / "out.webp") as img:
        assert img.size == (64, 48)


def test_grey_image_is_written_grey(tmp_path: Path, photo_crop: np.ndarray) -> None:
    Image.fromarray(photo_crop).convert("L").save(tmp_path / "grey.png")
    upscale_image(tmp_path / "grey.png", tmp_path / "out.png", device="cpu")
    with Image.open(tmp_path / "out.png") as img:
        assert img.mode == "L" and img.size == (128, 96)


def test_missing_image_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        upscale_image(tmp_path / "nothing.png", tmp_path / "out.png", device="cpu")


def test_corrupt_image_is_an_input_error(tmp_path: Path) -> None:
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(InputError, match="not a readable image"):
        upscale_image(tmp_path / "bad.png", tmp_path / "out.png", device="cpu")


def test_alpha_into_jpeg_is_refused(tmp_path: Path, photo_crop: np.ndarray) -> None:
    Image.fromarray(photo_crop).convert("RGBA").save(tmp_path / "in.png")
    with pytest.raises(OptionsError, match="alpha"):
        upscale_image(tmp_path / "in.png", tmp_path / "out.jpg", device="cpu")
