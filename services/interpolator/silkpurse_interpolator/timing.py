"""The rate plan: which output frame comes from which input frames, and in which batch.

Pure arithmetic on exact fractions (no floats, no torch), so every worker computes the
same plan from the same numbers.

Rules (input: ``n_in`` frames at constant rate ``r_in``; output rate ``r_out``):

* output frame ``j`` is shown at ``j / r_out``; its source position is
  ``p = j * r_in / r_out`` input frames; ``i = floor(p)``, ``t = p - i``;
* ``t == 0``: copy input frame ``i``; otherwise blend frames ``i`` and ``i + 1`` at ``t``;
  when frame ``i + 1`` does not exist (past the end), hold frame ``i``;
* ``n_out = ceil(n_in * r_out / r_in)``: the output lasts as long as the input (the last
  input frame is shown for ``1 / r_in`` seconds), so ``--interpolate 2`` on N frames gives
  2N frames and the last one is a held copy of input frame N-1;
* batches: output ``j`` belongs to the input batch holding ``floor(p)``. A batch of input
  frames ``[a, b)`` produces outputs ``[ceil(a * r_out / r_in), ceil(b * r_out / r_in))``
  (clipped to ``n_out``) and needs input frame ``b`` (the next batch's first) when
  ``b < n_in``. Every output belongs to exactly one batch whatever the batch size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from fractions import Fraction

from silkpurse.errors import OptionsError


class Source(Enum):
    COPY = "copy"
    """Exactly on input frame ``i``."""
    BLEND = "blend"
    """Between frames ``i`` and ``i + 1`` at ``t``."""
    HOLD = "hold"
    """Past the last input frame: repeat frame ``i``."""


@dataclass(frozen=True)
class OutputFrame:
    index: int
    """Output frame number ``j``."""
    source: int
    """Input frame ``i = floor(p)``."""
    t: Fraction
    """Position between ``source`` and ``source + 1``, in [0, 1)."""
    kind: Source


def _as_fraction(value: Fraction | int | float | str, what: str) -> Fraction:
    try:
        frac = Fraction(value) if not isinstance(value, float) else Fraction(value).limit_denominator(1_000_000)
    except (ValueError, ZeroDivisionError, TypeError) as err:
        raise OptionsError(f"{what} {value!r} is not a number", "give e.g. 60, 59.94 or 60000/1001") from err
    if frac <= 0:
        raise OptionsError(f"{what} must be positive, got {value}", "give a positive frame rate")
    return frac


def output_rate(
    in_rate: Fraction | int,
    *,
    multiplier: int | None = None,
    fps: Fraction | int | float | str | None = None,
) -> Fraction:
    """``--interpolate M`` gives ``M * in_rate``; ``--fps R`` gives ``R`` exactly (e.g. "60000/1001")."""
    r_in = _as_fraction(in_rate, "input frame rate")
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
    return _as_fraction(fps, "output frame rate")  # type: ignore[arg-type]


def output_count(n_in: int, in_rate: Fraction, out_rate: Fraction) -> int:
    """``ceil(n_in * r_out / r_in)``: output duration equals input duration."""
    if n_in < 0:
        raise ValueError("n_in must be >= 0")
    return math.ceil(Fraction(n_in) * Fraction(out_rate) / Fraction(in_rate))


def source_position(j: int, in_rate: Fraction, out_rate: Fraction) -> Fraction:
    """Where output frame ``j`` falls on the input timeline, in input frames."""
    return Fraction(j) * Fraction(in_rate) / Fraction(out_rate)


def plan_frame(j: int, n_in: int, in_rate: Fraction, out_rate: Fraction) -> OutputFrame:
    p = source_position(j, in_rate, out_rate)
    i = math.floor(p)
    t = p - i
    if not 0 <= i < n_in:
        raise ValueError(f"output frame {j} falls outside the {n_in} input frames")
    if t == 0:
        kind = Source.COPY
    elif i + 1 < n_in:
        kind = Source.BLEND
    else:
        kind = Source.HOLD
    return OutputFrame(index=j, source=i, t=t, kind=kind)


def first_output_of(input_index: int, in_rate: Fraction, out_rate: Fraction) -> int:
    """The first output ``j`` whose source position is at or after ``input_index``."""
    return math.ceil(Fraction(input_index) * Fraction(out_rate) / Fraction(in_rate))


def batch_outputs(first: int, end: int, n_in: int, in_rate: Fraction, out_rate: Fraction) -> range:
    """Outputs produced by the input batch ``[first, end)``."""
    if not 0 <= first <= end <= n_in:
        raise ValueError(f"batch [{first}, {end}) is not inside the {n_in} input frames")
    n_out = output_count(n_in, in_rate, out_rate)
    start = min(first_output_of(first, in_rate, out_rate), n_out)
    stop = min(first_output_of(end, in_rate, out_rate), n_out)
    return range(start, stop)


def plan_batch(first: int, end: int, n_in: int, in_rate: Fraction, out_rate: Fraction) -> list[OutputFrame]:
    return [plan_frame(j, n_in, in_rate, out_rate) for j in batch_outputs(first, end, n_in, in_rate, out_rate)]


def needs_next_frame(end: int, n_in: int) -> bool:
    """A batch ending before the last input frame needs the next batch's first frame."""
    return end < n_in
