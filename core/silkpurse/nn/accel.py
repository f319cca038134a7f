"""Optional compiled forms of a network for the fixed shapes of a job: ``torch.compile`` and
TensorRT (``torch-tensorrt``), each checked against the eager network before it is used.

A job runs a network on a handful of fixed input shapes (frames per forward pass x padded frame
size), which is what graph compilers want. :class:`Accelerated` wraps the eager network: the
first call at a new shape builds the chosen backend for that shape, runs both on that very
input, and keeps the compiled form only if its output stays >= :data:`MIN_AGREEMENT_DB` PSNR
from the eager one (outputs are images in 0..1); otherwise it logs why and stays eager for that
shape. Compiled kernels round differently, so the bytes differ slightly from eager: the backend
is part of an engine's ``identity()``.

* ``eager``: the network as loaded (the default).
* ``compile``: ``torch.compile(dynamic=False)`` (Inductor). On CUDA without CUDA graphs: graph
  replay reuses its output buffers, which the engines' overlapped downloads still read. On the
  CPU it measured slower than eager channels_last and took 24-89 s to build
  (docs/benchmarks.md), so it is for GPUs.
* ``tensorrt``: ``torch_tensorrt.compile(ir="dynamo")`` with the engine's precision, built per
  model, shape and precision and cached on disk as an exported program (``cache_dir``), so a
  later process loads it instead of building again (minutes for RRDBNet). Needs a CUDA device
  and the ``torch-tensorrt`` package (not installable on the CPU development machines; the GPU
  script bench/gpu/run.sh installs it).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from silkpurse.errors import OptionsError
from silkpurse.plan import BACKENDS, Backend

log = logging.getLogger(__name__)

#: Least PSNR (dB) between a compiled form's output and the eager network's on the same input.
MIN_AGREEMENT_DB = 45.0

Network = Callable[..., torch.Tensor]
#: Builds a compiled form of ``network`` for ``inputs`` (the first call's tensors).
Builder = Callable[[nn.Module, tuple[torch.Tensor, ...]], Network]


def check_backend(backend: str, device: torch.device) -> Backend:
    """A known backend that can run on ``device``; TensorRT needs CUDA and torch-tensorrt."""
    if backend not in BACKENDS:
        raise OptionsError(f"unknown backend {backend!r}", f"use one of {', '.join(BACKENDS)}")
    if backend == "tensorrt":
        if device.type != "cuda":
            raise OptionsError("the TensorRT backend needs a CUDA device", "use --device cuda, or the eager backend")
        try:
            import torch_tensorrt  # noqa: F401
        except ImportError as err:
            raise OptionsError(
                f"the TensorRT backend needs the torch-tensorrt package ({err})",
                "pip install torch-tensorrt (matching your torch), or use the eager backend",
            ) from err
    return backend  # type: ignore[return-value]


def agreement_db(got: torch.Tensor, reference: torch.Tensor) -> float:
    """PSNR in dB of two image tensors in 0..1 (``inf`` when equal)."""
    mse = float(torch.mean((got.float().clamp(0, 1) - reference.float().clamp(0, 1)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


class Accelerated:
    """``network(*inputs)`` through a compiled form per input shape, where it agrees with eager."""

    def __init__(self, network: nn.Module, backend: Backend, *, builder: Builder | None = None) -> None:
        self.network, self.backend = network, backend
        self._builder = builder or _BUILDERS[backend]
        self._forms: dict[tuple[Any, ...], Network] = {}
        self.agreement: dict[tuple[Any, ...], float] = {}
        """PSNR of each built form to eager on its first input (for logs and tests)."""

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        if self.backend == "eager":
            return self.network(*inputs)
        key = tuple((tuple(t.shape), t.dtype, t.is_contiguous(memory_format=torch.channels_last)) for t in inputs)
        form = self._forms.get(key)
        if form is None:
            form = self._forms[key] = self._build_checked(key, inputs)
        return form(*inputs)

    def _build_checked(self, key: tuple[Any, ...], inputs: tuple[torch.Tensor, ...]) -> Network:
        try:
            form = self._builder(self.network, inputs)
            got = form(*inputs)
        except Exception as err:  # a backend that cannot build this network must not stop the job
            log.warning("%s backend failed for input %s (%s): running eager", self.backend, key, err)
            return self.network
        reference = self.network(*inputs)
        db = self.agreement[key] = agreement_db(got, reference)
        if db < MIN_AGREEMENT_DB:
            log.warning(
                "%s backend output is %.1f dB from eager for input %s (< %.0f dB): running eager",
                self.backend,
                db,
                key,
                MIN_AGREEMENT_DB,
            )
            return self.network
        log.info("%s backend for input %s: %.1f dB from eager", self.backend, key, db)
        return form


def _compile(network: nn.Module, inputs: tuple[torch.Tensor, ...]) -> Network:
    cuda = inputs[0].device.type == "cuda"
    # No CUDA graphs: a replayed graph writes every call's output into the same buffer, which the
    # engines' download stream may still be reading.
    mode = "max-autotune-no-cudagraphs" if cuda else None
    return torch.compile(network, dynamic=False, mode=mode)  # type: ignore[return-value]


class TensorRTCache:
    """Where TensorRT engines are kept: one exported program per model, input shapes, precision
    and torch-tensorrt version, under ``folder``."""

    def __init__(self, folder: Path, model: dict[str, Any]) -> None:
        self.folder, self.model = folder, model

    def path(self, inputs: tuple[torch.Tensor, ...]) -> Path:
        import torch_tensorrt

        key = {
            "model": self.model,
            "inputs": [(list(t.shape), str(t.dtype)) for t in inputs],
            "torch_tensorrt": torch_tensorrt.__version__,
            "device": torch.cuda.get_device_name(inputs[0].device),
        }
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
        return self.folder / f"trt-{digest}.ep"

    def builder(self) -> Builder:
        def build(network: nn.Module, inputs: tuple[torch.Tensor, ...]) -> Network:
            import torch_tensorrt

            path = self.path(inputs)
            if path.is_file():
                log.info("loading TensorRT engine %s", path)
                return torch.export.load(str(path)).module()  # type: ignore[no-any-return]
            dtype = inputs[0].dtype
            log.info("building TensorRT engine for %s (%s), cached at %s", self.model.get("family"), dtype, path)
            trt = torch_tensorrt.compile(
                network,
                ir="dynamo",
                inputs=list(inputs),
                enabled_precisions={dtype},
                min_block_size=1,
            )
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(f"{path.stem}.partial{path.suffix}")  # keeps the .ep suffix savers expect
            torch_tensorrt.save(trt, str(partial), output_format="exported_program", inputs=list(inputs))
            partial.replace(path)  # a crash mid-save leaves no half engine under the real name
            return trt  # type: ignore[no-any-return]

        return build


def _no_builder(network: nn.Module, inputs: tuple[torch.Tensor, ...]) -> Network:
    raise OptionsError("the TensorRT backend needs a cache folder", "build Accelerated with TensorRTCache.builder()")


_BUILDERS: dict[str, Builder] = {"eager": lambda net, _: net, "compile": _compile, "tensorrt": _no_builder}
