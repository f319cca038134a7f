"""Recognising an IFNet checkpoint and building the matching network (spandrel style).

:func:`load_checkpoint` strips DataParallel ``module.`` prefixes, recognises the family from
the key names, reads its hyper-parameters from tensor shapes and returns an
:class:`InterpolatorNet` descriptor. The engine only asks the descriptor (does it take a
timestep, what size multiple it needs, whether fp16 is safe); it never looks at model names.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from silkpurse.errors import ModelError
from silkpurse_interpolator.archs import ifnet_hdv3, ifnet_v4


@dataclass(frozen=True)
class InterpolatorNet:
    module: nn.Module
    family: str
    """``IFNet-HDv3`` or ``IFNet-v4``."""
    version: str
    """What the shapes say about the release, for people (e.g. ``4.2x-style (5 blocks ...)``)."""
    supports_timestep: bool
    """False: midpoint only, the engine reaches other ``t`` by bisection."""
    num_levels: int
    """Coarse-to-fine levels; the coarsest works at 1/2**(levels-1) of the (scaled) frame."""
    base_multiple: int
    """Padding multiple the upstream inference scripts use at ``scale=1``."""
    fp16_safe: bool = True

    def multiple(self, rife_scale: float) -> int:
        """Frame sizes must be multiples of this at the given flow scale.

        The coarsest block resizes by ``2**(levels-1) / rife_scale`` and then strides by 4,
        so sizes must divide evenly all the way down. Like the upstream scripts, the base
        multiple (32 or 64) grows by ``1 / rife_scale`` when the flow runs at a lower scale.
        """
        need = 4 * 2 ** (self.num_levels - 1) / rife_scale
        return max(self.base_multiple, int(math.ceil(self.base_multiple / rife_scale)), int(math.ceil(need)))


def strip_prefix(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the ``module.`` prefix that DataParallel training leaves on every key."""
    return {k.removeprefix("module."): v for k, v in state.items()}


def _unwrap(obj: object) -> Mapping[str, torch.Tensor]:
    # Some re-saved checkpoints nest the tensors under a conventional key.
    if isinstance(obj, Mapping):
        for key in ("state_dict", "params", "model"):
            inner = obj.get(key)
            if isinstance(inner, Mapping):
                return inner
        if all(isinstance(v, torch.Tensor) for v in obj.values()):
            return obj
    raise ValueError("not a state dict of tensors")


def build_from_state(state: Mapping[str, torch.Tensor], where: str = "checkpoint") -> InterpolatorNet:
    state = strip_prefix(state)
    try:
        if all(k in state for k in ifnet_hdv3.DETECT_KEYS):
            hd_model, used = ifnet_hdv3.build(state)
            hd_model.load_state_dict(used, strict=True)
            return InterpolatorNet(
                module=hd_model,
                family="IFNet-HDv3",
                version=f"HDv3 ({hd_model.num_blocks} blocks)",
                supports_timestep=False,
                num_levels=hd_model.num_blocks,
                base_multiple=32,
            )
        if all(k in state for k in ifnet_v4.DETECT_KEYS):
            v4_model, used = ifnet_v4.build(state)
            v4_model.load_state_dict(used, strict=True)
            levels = len(v4_model.config.widths)
            return InterpolatorNet(
                module=v4_model,
                family="IFNet-v4",
                version=v4_model.config.version,
                supports_timestep=True,
                num_levels=levels,
                base_multiple=max(32, 4 * 2 ** (levels - 1)),
            )
    except (ValueError, KeyError, RuntimeError) as err:
        raise ModelError(
            f"{where} looks like a RIFE IFNet but does not fit its architecture ({err})",
            "use an official RIFE HDv3, 4.6 or 4.2x flownet.pkl",
        ) from err
    raise ModelError(
        f"{where} is not a RIFE IFNet checkpoint silkpurse knows (keys start {sorted(state)[:3]})",
        "use an official RIFE HDv3, 4.6 or 4.2x flownet.pkl",
    )


def load_checkpoint(path: Path) -> InterpolatorNet:
    """Load a ``flownet.pkl`` (or .pth/.pt) from disk and build the network, on the CPU, in eval mode."""
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
        state = _unwrap(raw)
    except FileNotFoundError as err:
        raise ModelError(
            f"weights file {path} does not exist", "check the path or run `silkpurse models list`"
        ) from err
    except Exception as err:  # torch raises many types for a corrupt or foreign file
        raise ModelError(
            f"cannot read {path} as a PyTorch checkpoint ({type(err).__name__})",
            "re-download or re-import the weights file",
        ) from err
    net = build_from_state(state, where=str(path))
    net.module.eval().requires_grad_(False)
    return net
