"""What every architecture module provides: a detector, a loader and the descriptor it returns.

The engine never special-cases model names: it asks the :class:`ModelDescriptor` for the
scale, channels, precision support, size requirements and memory appetite of the network.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from silkpurse.errors import ModelError

StateDict = Mapping[str, torch.Tensor]


@dataclass(frozen=True)
class ModelDescriptor:
    """A loaded network and everything the engine must know to run it."""

    network: nn.Module
    family: str
    """Architecture family, e.g. ``SRVGGNetCompact`` or ``RRDBNet``."""
    scale: int
    """Native upscale factor of the network."""
    in_channels: int
    out_channels: int
    supports_half: bool
    """fp16 gives the same picture (Real-ESRGAN runs these networks in fp16 by default)."""
    supports_bf16: bool
    size_multiple: int
    """Input height and width must be multiples of this (pixel-unshuffle variants)."""
    bytes_per_pixel: int
    """Rough peak activation memory per *input* pixel in fp32, for choosing tile sizes."""
    tile_pad: int = 10
    """Context (input px) each tile needs from its neighbours for a seamless result."""
    hyperparameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Architecture:
    name: str
    detect: Callable[[StateDict], bool]
    """Recognises a state dict of this family by its keys alone."""
    load: Callable[[StateDict], ModelDescriptor]
    """Infers hyper-parameters from tensor shapes, builds the network and loads the weights."""


def has_all(state: StateDict, *keys: str) -> bool:
    return all(k in state for k in keys)


def load_weights(network: nn.Module, state: StateDict, family: str) -> nn.Module:
    """Strict load; a key or shape mismatch means the checkpoint is not what detection thought."""
    try:
        network.load_state_dict(dict(state), strict=True)
    except RuntimeError as err:
        first = str(err).strip().splitlines()
        detail = first[1].strip() if len(first) > 1 else first[0]
        raise ModelError(
            f"checkpoint looks like {family} but its tensors do not fit ({detail[:200]})",
            "check that the file is a complete, unmodified Real-ESRGAN checkpoint",
        ) from err
    return network.eval().requires_grad_(False)
