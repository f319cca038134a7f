"""Architectures the upscaler can run, recognised from a checkpoint's keys (spandrel style).

Add a family by writing a module with ``detect``/``load`` and listing it in ``ARCHITECTURES``.
"""

from __future__ import annotations

from silkpurse.errors import ModelError
from silkpurse_upscaler.archs import compact, rrdbnet
from silkpurse_upscaler.archs.base import Architecture, ModelDescriptor, StateDict

ARCHITECTURES: tuple[Architecture, ...] = (rrdbnet.ARCHITECTURE, compact.ARCHITECTURE)


def detect_architecture(state: StateDict) -> Architecture:
    for arch in ARCHITECTURES:
        if arch.detect(state):
            return arch
    sample = ", ".join(list(state)[:4])
    raise ModelError(
        f"unknown checkpoint: its keys ({sample}{', ...' if len(state) > 4 else ''}) match no supported architecture",
        f"use a Real-ESRGAN checkpoint of a supported family ({', '.join(a.name for a in ARCHITECTURES)})",
    )


def load_descriptor(state: StateDict) -> ModelDescriptor:
    """Recognise the family of ``state``, infer its hyper-parameters and load it."""
    return detect_architecture(state).load(state)


__all__ = ["ARCHITECTURES", "Architecture", "ModelDescriptor", "detect_architecture", "load_descriptor"]
