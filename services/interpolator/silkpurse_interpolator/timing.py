"""Which input frames each output frame of a batch comes from, and how.

The rate rule itself (output count, which outputs an input range owns) is the core's
:mod:`silkpurse.timeline`, shared with the job plan; this module adds the per-frame decision
the interpolator needs. Rules (input: ``n_in`` frames at constant rate ``r_in``; output
rate ``r_out``):

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

from silkpurse.timeline import outputs_of, source_position


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


def plan_batch(first: int, end: int, n_in: int, in_rate: Fraction, out_rate: Fraction) -> list[OutputFrame]:
    return [plan_frame(j, n_in, in_rate, out_rate) for j in outputs_of(first, end, n_in, in_rate, out_rate)]
