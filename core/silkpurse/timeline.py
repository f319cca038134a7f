"""The one rate rule: how many output frames a job has and which outputs each input range owns.

Pure arithmetic on exact fractions (no floats, no torch), so the job plan, the embedded
runner, the services and the flow all compute the same numbers.

Input: ``n_in`` frames at the constant rate ``r_in``; output rate ``r_out >= r_in``.

* output frame ``j`` is shown at ``j / r_out``; its source position is ``p = j * r_in / r_out``
  input frames (the interpolator blends frames ``floor(p)`` and ``floor(p) + 1`` at
  ``p - floor(p)``);
* ``n_out = ceil(n_in * r_out / r_in)``: the output lasts as long as the input (the last input
  frame is shown for ``1 / r_in`` seconds), so ``--interpolate 2`` on N frames gives 2N frames;
* an input range ``[a, b)`` owns the outputs ``[ceil(a * r_out / r_in), ceil(b * r_out / r_in))``
  (clipped to ``n_out``) and needs input frame ``b`` when ``b < n_in``. Every output belongs to
  exactly one range however the input is cut into batches or chunks.
"""

from __future__ import annotations

import math
from fractions import Fraction

from silkpurse.errors import OptionsError


def as_rate(value: Fraction | int | float | str, what: str = "frame rate") -> Fraction:
    """A positive exact rate from ``60``, ``59.94``, ``"60000/1001"`` or a Fraction."""
    try:
        rate = Fraction(value) if not isinstance(value, float) else Fraction(value).limit_denominator(1_000_000)
    except (ValueError, ZeroDivisionError, TypeError) as err:
        raise OptionsError(f"{what} {value!r} is not a number", "give e.g. 60, 59.94 or 60000/1001") from err
    if rate <= 0:
        raise OptionsError(f"{what} must be positive, got {value}", "give a positive frame rate")
    return rate


def output_rate(
    in_rate: Fraction | int, *, multiplier: int | None = None, fps: Fraction | int | float | str | None = None
) -> Fraction:
    """``--interpolate M`` gives ``M * in_rate``; ``--fps R`` gives ``R`` exactly (``R >= in_rate``)."""
    r_in = as_rate(in_rate, "input frame rate")
    if (multiplier is None) == (fps is None):
        raise OptionsError(
            "give exactly one of an interpolation multiplier and an output frame rate",
            "use either --interpolate M or --fps R",
        )
    if multiplier is not None:
        if isinstance(multiplier, bool) or not isinstance(multiplier, int) or multiplier < 1:
            raise OptionsError(
                f"interpolation multiplier must be a whole number >= 1, got {multiplier!r}", "use e.g. --interpolate 2"
            )
        return r_in * multiplier
    r_out = as_rate(fps, "output frame rate")  # type: ignore[arg-type]
    if r_out < r_in:
        raise OptionsError(
            f"--fps {float(r_out):g} is below the input's {float(r_in):g} fps",
            "silkpurse adds frames; to drop frames use ffmpeg's fps filter",
        )
    return r_out


def output_count(n_in: int, in_rate: Fraction, out_rate: Fraction) -> int:
    """``ceil(n_in * r_out / r_in)``: output duration equals input duration."""
    if n_in < 0:
        raise ValueError("n_in must be >= 0")
    return math.ceil(Fraction(n_in) * Fraction(out_rate) / Fraction(in_rate))


def source_position(j: int, in_rate: Fraction, out_rate: Fraction) -> Fraction:
    """Where output frame ``j`` falls on the input timeline, in input frames."""
    return Fraction(j) * Fraction(in_rate) / Fraction(out_rate)


def first_output_of(input_index: int, in_rate: Fraction, out_rate: Fraction) -> int:
    """The first output ``j`` whose source position is at or after ``input_index``."""
    return math.ceil(Fraction(input_index) * Fraction(out_rate) / Fraction(in_rate))


def outputs_of(first: int, end: int, n_in: int, in_rate: Fraction, out_rate: Fraction) -> range:
    """Outputs owned by the input range ``[first, end)``."""
    if not 0 <= first <= end <= n_in:
        raise ValueError(f"range [{first}, {end}) is not inside the {n_in} input frames")
    n_out = output_count(n_in, in_rate, out_rate)
    start = min(first_output_of(first, in_rate, out_rate), n_out)
    stop = min(first_output_of(end, in_rate, out_rate), n_out)
    return range(start, stop)


def needs_next_frame(end: int, n_in: int) -> bool:
    """A range ending before the last input frame needs the next range's first frame."""
    return end < n_in
