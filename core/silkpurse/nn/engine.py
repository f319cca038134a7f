"""The surface both model engines share: the upscaler's ``Upscaler`` and the interpolator's ``Interpolator``.

An engine is built from a model name or weights path, a device and a precision (plus its own
options). Besides its work method it offers:

* ``name``, ``device``, ``dtype``/``precision``, ``descriptor`` and ``weights`` (with sha256);
* ``warm_up()``: one forward pass on a small input of the right size multiple, so CUDA kernels
  are loaded and cuDNN has chosen its algorithms before real work (a service reports health
  SERVING only after it);
* ``identity()``: everything that determines the output bytes, for store keys: the weights'
  sha256, the family, the precision and the effective options that change the bytes. Never
  the device string: fp16 on two GPUs is the same identity, fp16 and fp32 are not.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar, Concatenate, Literal, ParamSpec, TypeVar

import torch

from silkpurse.errors import OptionsError
from silkpurse.models import ModelKind, ResolvedWeights, resolve_weights
from silkpurse.nn.architecture import ModelDescriptor
from silkpurse.nn.checkpoint import StateDict, read_state_dict
from silkpurse.plan import Backend, ModelRef

Precision = Literal["fp32", "fp16", "bf16"]
DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
#: A frame size (height, width) in pixels.
FrameSize = tuple[int, int]
P = ParamSpec("P")
T = TypeVar("T")
E = TypeVar("E", bound="ModelEngine")


def precision_of(dtype: torch.dtype) -> Precision:
    for name, known in DTYPES.items():
        if known == dtype:
            return name  # type: ignore[return-value]
    raise OptionsError(f"unsupported compute dtype {dtype}", "use fp32, fp16 or bf16")


#: Every network of a process runs in this one thread when it runs on the CPU.
#:
#: * One network at a time: each call already spreads over every core (torch's intra-op
#:   threads); two at once would run two thread teams on the same cores.
#: * One OpenMP team: libgomp gives every thread that starts a parallel region its own team of
#:   workers, and once it manages more threads than there are cores it stops spinning between
#:   regions: every worker then sleeps and is woken for each of the network's hundreds of small
#:   operations. Measured (bench/bench_speed.py, 2 cores, 54 frames x2 + x2): with the
#:   upscaler and interpolator called from the walker's two threads, 52,000 voluntary context
#:   switches and the networks 17-23 % slower than alone; from this one thread, 2,800.
#:
#: Engines are therefore built here too (:func:`built_on_compute_thread`): loading weights runs
#: parallel regions, and the thread that loads would keep an idle team of its own. The same goes
#: for any torch operation on frames (a ``torch.cat`` in a stage thread undid the gain): do it
#: inside the engine's call. bench/bench_speed.py prints the context switches to catch it.
_compute_thread: ThreadPoolExecutor | None = None
_compute_thread_lock = threading.Lock()
_in_compute_thread = threading.local()


def _forget_compute_thread() -> None:
    # A forked child has no such thread (and may have copied the lock held): it starts its own.
    global _compute_thread, _compute_thread_lock
    _compute_thread, _compute_thread_lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_compute_thread)


def on_compute_thread(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """``fn(*args, **kwargs)`` in the process's compute thread (at once if this is it)."""
    global _compute_thread
    if getattr(_in_compute_thread, "active", False):
        return fn(*args, **kwargs)
    with _compute_thread_lock:
        if _compute_thread is None:
            _compute_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="compute")
        executor = _compute_thread

    def run() -> T:
        _in_compute_thread.active = True
        return fn(*args, **kwargs)

    return executor.submit(run).result()


def compute(device: torch.device, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run a network call under ``torch.inference_mode()``: on the CPU in the compute thread,
    on CUDA in the calling thread (several callers then share the GPU through its streams)."""

    def infer() -> T:
        with torch.inference_mode():
            return fn(*args, **kwargs)

    return on_compute_thread(infer) if device.type == "cpu" else infer()


def built_on_compute_thread(init: Callable[Concatenate[E, P], None]) -> Callable[Concatenate[E, P], None]:
    """Decorate an engine's ``__init__`` so that it loads in the compute thread (see above)."""

    @functools.wraps(init)
    def build(self: E, *args: P.args, **kwargs: P.kwargs) -> None:
        on_compute_thread(init, self, *args, **kwargs)

    return build


def cpu_has_native_bf16() -> bool:
    """Whether oneDNN has native bf16 convolutions on this CPU (AMX or AVX512-BF16).

    Elsewhere (older Intel, the AMD EPYC machines of this project's CI pool) bf16 is emulated
    and slower than fp32, so it is never chosen there.
    """
    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)


def choose_precision(
    device: torch.device, descriptor: ModelDescriptor, requested: Precision | None = None
) -> Precision:
    """The compute precision of an engine: an explicit ``requested`` one if it is possible, else
    the fastest faithful one.

    Defaults: fp16 on CUDA where the family is fp16-safe; bf16 on a CPU with native bf16 where
    the family is bf16-faithful (``descriptor.supports_bf16``: >= 45 dB PSNR to fp32 on real
    frames, measured per family by ``bench/bench_precision.py``; the numbers sit beside each
    family's descriptor and in docs/benchmarks.md); fp32 otherwise. Precision is part of the
    plan's ``ModelRef`` and of every key, so a job resumed on a machine that chooses otherwise
    recomputes rather than mixing precisions.
    """
    if requested is not None and requested not in DTYPES:
        raise OptionsError(f"unknown precision {requested!r}", "use fp32, fp16 or bf16")
    cpu = device.type == "cpu"
    if requested is None:
        if not cpu and descriptor.supports_half:
            return "fp16"
        if cpu and descriptor.supports_bf16 and cpu_has_native_bf16():
            return "bf16"
        return "fp32"
    if cpu and requested == "fp16":
        raise OptionsError(
            "fp16 is not supported on the CPU (slow or unsupported convolutions there)",
            "use fp32 on the CPU (or bf16 on CPUs with AVX512-BF16/AMX), or run on a CUDA device",
        )
    if cpu and requested == "bf16" and not cpu_has_native_bf16():
        raise OptionsError(
            "bf16 on this CPU would be emulated and slower than fp32 (no AVX512-BF16/AMX)", "use fp32 on this CPU"
        )
    if (requested == "fp16" and not descriptor.supports_half) or (requested == "bf16" and not descriptor.supports_bf16):
        raise OptionsError(f"{descriptor.family} is not known to give faithful results in {requested}", "use fp32")
    return requested


def open_weights(model: str | Path, kind: ModelKind) -> tuple[ResolvedWeights, StateDict]:
    """Resolve a model name or path (with its sha256) and read its state dict."""
    weights = resolve_weights(model, kind)
    return weights, read_state_dict(weights.path)


class ModelEngine(ABC):
    """Base of the engines: the shared properties, ``warm_up()`` and ``identity()``.

    A subclass checks its options, loads its model, then calls :meth:`_attach` with what it
    chose; it implements :meth:`_identity_options` (its options that change the bytes) and
    :meth:`_warm_up` (one small forward pass through its own public path).
    """

    kind: ClassVar[ModelKind]

    _weights: ResolvedWeights
    _descriptor: ModelDescriptor
    _device: torch.device
    _dtype: torch.dtype
    _backend: Backend = "eager"

    def _attach(
        self, weights: ResolvedWeights, descriptor: ModelDescriptor, device: torch.device, dtype: torch.dtype
    ) -> None:
        self._weights, self._descriptor, self._device, self._dtype = weights, descriptor, device, dtype

    # -- what callers may ask ------------------------------------------------------------

    @property
    def name(self) -> str:
        """Registered model name, or the weights file's stem."""
        return self._weights.name

    @property
    def weights(self) -> ResolvedWeights:
        return self._weights

    @property
    def descriptor(self) -> ModelDescriptor:
        return self._descriptor

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def dtype(self) -> torch.dtype:
        """Compute precision of the network."""
        return self._dtype

    @property
    def precision(self) -> Precision:
        return precision_of(self._dtype)

    def model_ref(self) -> ModelRef:
        """The model as a job plan names it: what a stage's keys and tasks are checked against."""
        return ModelRef(self.name, self._weights.sha256, self.precision, self._descriptor.family, self._backend)

    def identity(self, frame_size: FrameSize | None = None) -> dict[str, Any]:
        """What determines the output bytes (JSON-friendly), for store keys.

        ``frame_size`` (height, width) lets an engine report choices it makes per size (the
        upscaler's automatic tiling); give it when keying batches of known size.
        """
        return {
            "kind": self.kind,
            "weights_sha256": self._weights.sha256,
            "family": self._descriptor.family,
            "precision": self.precision,
            **self._identity_options(frame_size),
        }

    def warm_up(self, frame_size: FrameSize | None = None) -> float:
        """Run one forward pass on a small input (or one of ``frame_size``); returns the seconds taken."""
        started = time.perf_counter()
        with torch.inference_mode():
            self._warm_up(frame_size)
        if self._device.type == "cuda":
            torch.cuda.synchronize(self._device)
        return time.perf_counter() - started

    @abstractmethod
    def _identity_options(self, frame_size: FrameSize | None) -> dict[str, Any]: ...

    @abstractmethod
    def _warm_up(self, frame_size: FrameSize | None) -> None: ...


def warm_up_size(multiple: int, frame_size: FrameSize | None, side: int = 64) -> FrameSize:
    """``frame_size`` if given, else a square of about ``side`` px rounded up to ``multiple``."""
    if frame_size is not None:
        return frame_size
    edge = -(-side // multiple) * multiple
    return edge, edge
