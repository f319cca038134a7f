"""Choosing the compute device for the engines, and counting the cores this process may use."""

from __future__ import annotations

import os
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


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask, not the machine's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
