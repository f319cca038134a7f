"""Interpolating between two image files (the ``silkpurse interpolate-images`` helper)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from services.interpolator.engine import Interpolator
from silkpurse.errors import InputError, OptionsError, OutputError


def load_rgb(path: Path) -> np.ndarray:
    """An image file as (H, W, 3) uint8 RGB; InputError when missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"image {path} does not exist", "check the path")
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise InputError(
            f"cannot read {path} as an image ({err})", "give a PNG, JPEG or other Pillow-readable file"
        ) from err


def interpolate_images(
    frame0_path: str | Path,
    frame1_path: str | Path,
    output_path: str | Path,
    *,
    t: float = 0.5,
    interpolator: Interpolator | None = None,
    **engine_kwargs: Any,
) -> Path:
    """Write the frame at ``t`` between two images to ``output_path`` and return its path.

    ``engine_kwargs`` go to :class:`Interpolator` (``model``, ``device``, ``rife_scale``,
    ``half``) unless a ready ``interpolator`` is given.
    """
    if not 0.0 <= t <= 1.0:
        raise OptionsError(f"t must be between 0 and 1, got {t}", "use e.g. --t 0.5 for the midpoint")
    a = load_rgb(Path(frame0_path))
    b = load_rgb(Path(frame1_path))
    if a.shape != b.shape:
        raise InputError(
            f"the images differ in size: {a.shape[1]}x{a.shape[0]} and {b.shape[1]}x{b.shape[0]}",
            "give two frames of the same size",
        )
    out_path = Path(output_path)
    if not out_path.parent.is_dir():
        raise OutputError(f"folder {out_path.parent} does not exist", "create it or choose another output path")
    engine = interpolator or Interpolator(**engine_kwargs)
    middle = engine.interpolate(a[None], b[None], [t])[0]
    try:
        Image.fromarray(middle).save(out_path)
    except (OSError, ValueError, KeyError) as err:
        raise OutputError(f"cannot write {out_path} ({err})", "use a .png or .jpg name in a writable folder") from err
    return out_path
