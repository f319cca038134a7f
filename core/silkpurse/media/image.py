"""Still images in and out of the engines: PNG (8/16-bit, alpha), JPEG and WebP.

Pillow reads and writes most of it, but it reduces 16-bit colour PNGs to 8 bits, so those are
decoded with ffmpeg (already a silkpurse dependency) and written by a small PNG encoder here.
"""

from __future__ import annotations

import struct
import subprocess
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from silkpurse.errors import InputError, OptionsError, OutputError
from silkpurse.media.probe import check_frame_size
from silkpurse.media.sources import file_url
from silkpurse.output import claim_output, output_error
from silkpurse.settings import get_settings

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_WRITABLE = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}


@dataclass(frozen=True)
class Picture:
    pixels: np.ndarray
    """``(H, W, C)`` uint8 or uint16; C = 3 (RGB) or 4 (RGBA)."""
    grey: bool
    """The source had no colour: write the result back as grey."""


def read_image(path: Path) -> Picture:
    """Read an image; its declared size is checked against the settings' limits
    (``SILKPURSE_MAX_PIXELS``, ``SILKPURSE_MAX_DIMENSION``) before any pixel is decoded."""
    try:
        if not path.is_file():
            raise InputError(f"image {path} does not exist", "check the path")
        header = _png_header(path)
    except OSError as err:
        raise InputError(f"cannot read image {path} ({err.strerror or err})", "check the path") from None
    if header is not None:
        check_frame_size(path, header.width, header.height)
        if header.bit_depth == 16:
            return _read_png16(path, header)
    try:
        with Image.open(path) as img:
            check_frame_size(path, *img.size)  # from the header; nothing is decoded yet
            return _from_pillow(ImageOps.exif_transpose(img))
    except Image.DecompressionBombError as err:
        raise InputError(f"{path} is too large to decode ({err})", "give a smaller image") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise InputError(f"cannot read {path}: not a readable image ({err})", "give a PNG, JPEG or WebP file") from err


@dataclass(frozen=True)
class _PngHeader:
    width: int
    height: int
    bit_depth: int
    colour_type: int


def _png_header(path: Path) -> _PngHeader | None:
    """A PNG's IHDR chunk; ``None`` for other files."""
    with path.open("rb") as f:
        head = f.read(29)
    if len(head) < 29 or not head.startswith(_PNG_SIGNATURE) or head[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", head[16:24])
    return _PngHeader(width, height, head[24], head[25])


def _from_pillow(img: Image.Image) -> Picture:
    has_alpha = img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info)
    if img.mode in ("I;16", "I;16B", "I;16L"):
        grey16 = np.asarray(img, dtype=np.uint16)
        return Picture(np.repeat(grey16[..., None], 3, axis=2), grey=True)
    grey = img.mode in ("L", "LA", "1", "I", "F")
    rgb = img.convert("RGBA" if has_alpha else "RGB")
    return Picture(np.asarray(rgb), grey=grey)


def _read_png16(path: Path, header: _PngHeader) -> Picture:
    # Colour types with an alpha channel: 4 (grey + alpha) and 6 (RGBA). tRNS on 16-bit
    # images is rare and ignored.
    colour_type = header.colour_type
    alpha = colour_type in (4, 6)
    fmt, channels = ("rgba64le", 4) if alpha else ("rgb48le", 3)
    with Image.open(path) as img:  # Pillow still reads the size and validates the header
        width, height = img.size
    # The one file (its size already checked from the header), read as a PNG: never an image2
    # pattern, a protocol or an option.
    cmd = [get_settings().ffmpeg, "-nostdin", "-v", "error", "-protocol_whitelist", "file", "-f", "png_pipe"]
    cmd += ["-i", file_url(path), "-f", "rawvideo", "-pix_fmt", fmt, "-"]
    try:
        raw = subprocess.run(cmd, capture_output=True, check=True).stdout
    except FileNotFoundError as err:
        raise InputError(
            f"reading the 16-bit PNG {path} needs ffmpeg, which was not found", "install ffmpeg or set SILKPURSE_FFMPEG"
        ) from err
    except subprocess.CalledProcessError as err:
        raise InputError(
            f"{path} is a corrupt PNG ({err.stderr.decode(errors='replace').strip()[:160]})", "re-export the image"
        ) from err
    expected = width * height * channels * 2
    if len(raw) != expected:
        raise InputError(f"{path} decoded to {len(raw)} bytes, expected {expected}", "re-export the image")
    pixels = np.frombuffer(raw, dtype="<u2").reshape(height, width, channels).astype(np.uint16)
    return Picture(pixels, grey=colour_type in (0, 4))


def output_format(path: Path, picture: Picture) -> str:
    """Pillow's format name for ``path``; checked before any work so a bad name fails fast."""
    fmt = _WRITABLE.get(path.suffix.lower())
    if fmt is None:
        raise OptionsError(
            f"cannot write {path.suffix or 'files without a suffix'} images", "name the output .png, .jpg or .webp"
        )
    if fmt == "JPEG" and picture.pixels.shape[2] == 4:
        raise OptionsError("JPEG cannot store the alpha channel of this image", "write the output as .png or .webp")
    return fmt


def write_image(path: Path, picture: Picture, quality: int = 95, *, inputs: Iterable[Path] = ()) -> None:
    """Write ``picture`` to ``path`` (format from the suffix) through
    :func:`silkpurse.output.claim_output`: locked, under a temporary name, verified, renamed; a
    failed write leaves no half-written image behind. Inside a claim of ``path`` already held
    (the image commands claim around the whole job) it joins that claim."""
    fmt = output_format(path, picture)
    pixels = picture.pixels
    if pixels.dtype == np.uint16 and fmt == "PNG":
        data = _encode_png16(_to_grey(pixels) if picture.grey else pixels)
        _save(path, lambda tmp: tmp.write_bytes(data), inputs)
        return
    if pixels.dtype == np.uint16:  # JPEG and WebP hold 8 bits
        pixels = ((pixels.astype(np.uint32) + 128) // 257).astype(np.uint8)
    img = Image.fromarray(pixels)
    if picture.grey:
        img = img.convert("LA" if pixels.shape[2] == 4 else "L")
    _save(path, lambda tmp: img.save(tmp, fmt, **({"quality": quality} if fmt in ("JPEG", "WEBP") else {})), inputs)


def _to_grey(pixels: np.ndarray) -> np.ndarray:
    """BT.601 luma of RGB(A), keeping alpha; uint16 stays uint16."""
    luma = pixels[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    grey = np.clip(np.rint(luma), 0, np.iinfo(pixels.dtype).max).astype(pixels.dtype)[..., None]
    return np.concatenate((grey, pixels[..., 3:]), axis=2)


def _encode_png16(pixels: np.ndarray) -> bytes:
    """A 16-bit PNG (grey, grey+alpha, RGB or RGBA), rows unfiltered, zlib level 6."""
    height, width, channels = pixels.shape
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    rows = pixels.astype(">u2").reshape(height, width * channels).view(np.uint8)
    scanlines = np.concatenate((np.zeros((height, 1), np.uint8), rows), axis=1)  # filter byte 0
    ihdr = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    return b"".join(
        (
            _PNG_SIGNATURE,
            _chunk(b"IHDR", ihdr),
            _chunk(b"IDAT", zlib.compress(scanlines.tobytes(), 6)),
            _chunk(b"IEND", b""),
        )
    )


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _save(path: Path, write: Callable[[Path], object], inputs: Iterable[Path]) -> None:
    size = None
    with claim_output(path, inputs=inputs) as claim:
        try:
            write(claim.temp)
            size = claim.temp.stat().st_size
        except OSError as err:
            raise output_error(path, err) from None
        claim.publish(verify=lambda tmp: _verify_image(tmp, size))


def _verify_image(path: Path, size: int | None) -> None:
    """The written image is whole: as long as when written, and its format opens."""
    try:
        if path.stat().st_size != size:
            raise OSError("the file changed size after it was written")
        with Image.open(path) as img:
            img.verify()
    except (OSError, SyntaxError, ValueError, UnidentifiedImageError) as err:
        raise OutputError(
            f"writing {path.name} produced a broken file ({err})", "check the disk and try again"
        ) from None
