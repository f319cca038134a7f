"""Choosing the compute device for the engines."""

from __future__ import annotations

from typing import TYPE_CHECKING

from silkpurse.errors import DeviceError

if TYPE_CHECKING:
    import torch


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present; ``cuda`` without a GPU is a clear error."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(
                "CUDA was requested but no CUDA GPU is available to PyTorch",
                "use --device cpu (or auto), or install a CUDA build of torch on a GPU machine",
            )
        return torch.device(name)
    raise DeviceError(f"unknown device {name!r}", "use auto, cpu or cuda")
