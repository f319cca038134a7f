"""Blending two checkpoints (Real-ESRGAN's DNI); reading them is :mod:`silkpurse.nn.checkpoint`'s job."""

from __future__ import annotations

from silkpurse.errors import ModelError
from silkpurse.nn.checkpoint import StateDict


def blend(a: StateDict, b: StateDict, weight_a: float) -> StateDict:
    """``weight_a * a + (1 - weight_a) * b``, tensor by tensor (Real-ESRGAN's ``dni``).

    Real-ESRGAN blends *weights*, not outputs: one network runs, at the cost of one.
    """
    if a.keys() != b.keys() or any(a[k].shape != b[k].shape for k in a):
        raise ModelError(
            "the two checkpoints to blend have different layers",
            "blend only realesr-general-x4v3 with realesr-general-wdn-x4v3",
        )
    return {k: (weight_a * a[k].float() + (1 - weight_a) * b[k].float()) for k in a}
