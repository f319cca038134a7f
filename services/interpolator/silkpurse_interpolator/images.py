"""Interpolating between two image files (``silkpurse interpolate FRAME0 FRAME1``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from silkpurse.errors import InputError, OptionsError
from silkpurse.media.image import Picture, output_format, read_image, write_image
from silkpurse.output import claim_output
from silkpurse_interpolator.engine import Interpolator


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

    8- and 16-bit images are read and written by :mod:`silkpurse.media.image` (alpha is not
    interpolated and is dropped). ``engine_kwargs`` go to :class:`Interpolator` (``model``,
    ``device``, ``rife_scale``, ``half``) unless a ready ``interpolator`` is given.
    """
    if not 0.0 <= t <= 1.0:
        raise OptionsError(f"t must be between 0 and 1, got {t}", "use e.g. --t 0.5 for the midpoint")
    out_path = Path(output_path)
    # The output is locked before any work; a second run on it fails at once.
    with claim_output(out_path, inputs=[Path(frame0_path), Path(frame1_path)]):
        first, second = read_image(Path(frame0_path)), read_image(Path(frame1_path))
        a, b = first.pixels[..., :3], second.pixels[..., :3]
        if a.shape != b.shape or a.dtype != b.dtype:
            raise InputError(
                f"the images differ in size or depth: {a.shape[1]}x{a.shape[0]} {a.dtype} "
                f"and {b.shape[1]}x{b.shape[0]} {b.dtype}",
                "give two frames of the same size and bit depth",
            )
        result_grey = first.grey and second.grey
        output_format(out_path, Picture(a, grey=result_grey))  # a bad output name fails before the work
        engine = interpolator or Interpolator(**engine_kwargs)
        middle = engine.interpolate(a[None], b[None], [t])[0]
        write_image(out_path, Picture(middle, grey=result_grey))
    return out_path
