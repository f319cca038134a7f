"""One architecture registry for every model stage, the spandrel way.

Each family is an :class:`Architecture`: ``detect(state)`` recognises a state dict by its keys
alone (usually a :class:`KeyCondition`), ``load(state)`` infers the hyper-parameters from tensor
shapes, builds the network, loads the weights strictly and returns a :class:`ModelDescriptor`.
A user can therefore give any checkpoint of a known family without naming its settings.

The stages register their families when their ``archs`` package is imported (the engines import
it); :func:`load_model` also imports every installed stage's ``archs`` through the
``silkpurse.architectures`` entry points, so it recognises any known checkpoint from anywhere.
The core itself imports no stage.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from silkpurse.errors import ModelError
from silkpurse.models import ModelKind
from silkpurse.nn.checkpoint import strip_prefix

StateDict = Mapping[str, torch.Tensor]

#: Entry-point group under which stage distributions name the modules that register their families.
ARCHITECTURE_ENTRY_POINTS = "silkpurse.architectures"

#: Whether the engine may cut a frame into tiles (spandrel's ``ModelTiling``): ``supported``
#: (with ``tile_pad`` px of context the seams vanish) or ``discouraged`` (e.g. optical flow
#: needs the whole frame: motion crosses tile borders).
Tiling = Literal["supported", "discouraged"]


@dataclass(frozen=True)
class KeyCondition:
    """A test on a state dict's keys, composable like spandrel's ``KeyCondition``.

    ``KeyCondition.has_all("conv_first.weight", KeyCondition.has_any("a", "b"))(state)``.
    """

    mode: Literal["all", "any"]
    parts: tuple[str | KeyCondition, ...]

    @staticmethod
    def has_all(*parts: str | KeyCondition) -> KeyCondition:
        return KeyCondition("all", parts)

    @staticmethod
    def has_any(*parts: str | KeyCondition) -> KeyCondition:
        return KeyCondition("any", parts)

    def __call__(self, state: Mapping[str, object]) -> bool:
        test = all if self.mode == "all" else any
        return test(part in state if isinstance(part, str) else part(state) for part in self.parts)


@dataclass(frozen=True)
class ModelDescriptor:
    """A loaded network and everything an engine must know to run it.

    Engines ask the descriptor (scale, channels, precision support, size multiple, tiling); they
    never special-case model names.
    """

    network: nn.Module
    family: str
    """Architecture family, e.g. ``SRVGGNetCompact``, ``RRDBNet``, ``IFNet-HDv3``, ``IFNet-v4``."""
    kind: ModelKind
    scale: int
    """Output size / input size (1 for interpolators)."""
    in_channels: int
    out_channels: int
    supports_half: bool
    """fp16 gives the same picture (within quantisation)."""
    supports_bf16: bool
    size_multiple: int
    """Input height and width must be multiples of this (interpolators: at flow scale 1)."""
    tiling: Tiling
    tile_pad: int = 0
    """Context (input px) each tile needs from its neighbours for a seamless result."""
    bytes_per_pixel: int = 0
    """Rough peak activation memory per input pixel in fp32, for planning tiles and batches."""
    supports_timestep: bool = False
    """Interpolators: ``True`` if any ``t`` in (0, 1) is one pass, ``False`` if midpoint only."""
    version: str = ""
    """What the shapes say about the release, for people (e.g. ``4.2x-style (5 blocks, ...)``)."""
    hyperparameters: dict[str, Any] = field(default_factory=dict)

    @property
    def parameters(self) -> int:
        """Parameter count of the network as loaded (training-only tensors are not loaded)."""
        return sum(p.numel() for p in self.network.parameters())


@dataclass(frozen=True)
class Architecture:
    name: str
    """The family name its descriptors carry."""
    kind: ModelKind
    detect: Callable[[StateDict], bool]
    """Recognises a state dict of this family by its keys alone."""
    load: Callable[[StateDict], ModelDescriptor]
    """Infers hyper-parameters from tensor shapes, builds the network and loads the weights."""


class ArchitectureRegistry:
    """Families in registration order; families are told apart by disjoint key conditions."""

    def __init__(self) -> None:
        self._archs: dict[str, Architecture] = {}

    def register(self, arch: Architecture) -> Architecture:
        known = self._archs.get(arch.name)
        if known is not None and known is not arch:
            raise ValueError(f"architecture {arch.name!r} registered twice")
        self._archs[arch.name] = arch
        return arch

    def all(self, kind: ModelKind | None = None) -> list[Architecture]:
        return [a for a in self._archs.values() if kind is None or a.kind == kind]

    def detect(self, state: StateDict, kind: ModelKind | None = None) -> Architecture:
        """The family of ``state``, or a one-line :class:`ModelError` naming the known ones."""
        for arch in self.all(kind):
            if arch.detect(state):
                return arch
        other = next((a for a in self.all() if a.detect(state)), None)
        sample = ", ".join(list(state)[:4]) + (", ..." if len(state) > 4 else "")
        what = (
            f"its keys are those of {other.name}, an {other.kind} model"
            if other
            else f"its keys ({sample}) match no known architecture"
        )
        families = ", ".join(a.name for a in self.all(kind)) or "none installed"
        raise ModelError(
            f"unknown checkpoint: {what}",
            f"use a checkpoint of a known {kind + ' ' if kind else ''}family ({families})",
        )


ARCHITECTURES = ArchitectureRegistry()
_entry_points_loaded = False


def register(arch: Architecture) -> Architecture:
    """Add a family to the one registry (the stages' ``archs`` packages call this at import)."""
    return ARCHITECTURES.register(arch)


def load_architectures() -> None:
    """Import every installed stage's architectures once (importing registers them)."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    for entry in importlib.metadata.entry_points(group=ARCHITECTURE_ENTRY_POINTS):
        entry.load()
    _entry_points_loaded = True


def load_model(state: StateDict, kind: ModelKind | None = None) -> ModelDescriptor:
    """Recognise the family of ``state`` (of ``kind`` if given), infer its settings and load it.

    Keys may still carry DataParallel's ``module.`` prefix. Raises :class:`ModelError` for a
    checkpoint of no known family, or one whose tensors do not fit the family it looks like.
    """
    load_architectures()
    plain = strip_prefix(state)
    return ARCHITECTURES.detect(plain, kind).load(plain)


def load_weights(network: nn.Module, state: StateDict, family: str) -> nn.Module:
    """Strict load into ``network``, then eval mode without gradients.

    A missing key or a shape mismatch means the checkpoint is not what detection thought.
    """
    try:
        network.load_state_dict(dict(state), strict=True)
    except RuntimeError as err:
        lines = str(err).strip().splitlines()
        detail = lines[1].strip() if len(lines) > 1 else lines[0]
        raise ModelError(
            f"checkpoint looks like {family} but its tensors do not fit ({detail[:200]})",
            "check that the file is a complete, unmodified checkpoint of that family",
        ) from err
    return network.eval().requires_grad_(False)
