"""Architectures the interpolator can run, registered with the one registry of :mod:`silkpurse.nn.architecture`.

``ifnet_hdv3.ARCHITECTURE`` (RIFE HDv3, midpoint only) and ``ifnet_v4.ARCHITECTURE`` (Practical-RIFE
4.x, 4.6-style and 4.2x-style with a feature encoder) recognise a checkpoint by its keys and read
its hyper-parameters from tensor shapes (spandrel style); their descriptors say whether the
network takes a timestep and what size multiple it needs. Load any interpolator checkpoint with
``silkpurse.nn.architecture.load_model(state, kind="interpolate")``.
"""

from __future__ import annotations

import math

from silkpurse.nn.architecture import register
from silkpurse_interpolator.archs import ifnet_hdv3, ifnet_v4

ARCHITECTURES = (register(ifnet_hdv3.ARCHITECTURE), register(ifnet_v4.ARCHITECTURE))


def flow_multiple(size_multiple: int, rife_scale: float) -> int:
    """Frame sizes must be multiples of this at the given flow scale.

    ``size_multiple`` (the descriptor's, at flow scale 1) already covers the coarsest block's
    ``4 * 2**(levels-1)``; like the upstream scripts it grows by ``1 / rife_scale`` when the
    flow runs at a lower scale, since every block then resizes the frame by that much more.
    """
    return max(size_multiple, int(math.ceil(size_multiple / rife_scale)))


__all__ = ["ARCHITECTURES", "flow_multiple"]
