"""The interpolation engine: RIFE on batches of frame pairs, numpy in, numpy out.

``Interpolator`` loads a catalogue model or a checkpoint path through the shared model layer
(:mod:`silkpurse.nn`: name-or-path lookup with sha256, checkpoint reader, architecture
registry), picks the device and precision (``silkpurse.nn.engine.choose_precision``) and runs the network under
``torch.inference_mode()``. Frames go to the device once, are padded to the network's
size multiple, and stay there through any bisection steps until the final crop.

Timesteps: 4.x models take ``t`` directly. HDv3 only predicts midpoints, so ``t`` is reached
by recursive bisection: exact for dyadic ``t`` (1/2, 1/4, 3/4, ...) down to 1/16; any other
``t`` is rounded to the nearest multiple of 1/16 (an error of at most 1/32 of a frame
interval), and a ``t`` that rounds to 0 or 1 returns the nearer input frame unchanged.
Intermediate frames of a pair are computed once and shared by all its timesteps.

Determinism: results may depend on how many pairs go through the network at once
(convolution kernels differ by batch shape), so the engine always feeds it a fixed
micro-batch (``micro_batch``, 1 pair; a larger one is padded with repeats). A pair's output
therefore never depends on which other pairs were sent along, which is what makes the
pipeline's output independent of its batch size.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from silkpurse.device import resolve_device
from silkpurse.errors import InputError, OptionsError
from silkpurse.nn.accel import Accelerated, Builder, TensorRTCache, check_backend
from silkpurse.nn.architecture import load_model
from silkpurse.nn.engine import (
    DTYPES,
    FrameSize,
    ModelEngine,
    Precision,
    built_on_compute_thread,
    choose_precision,
    compute,
    open_weights,
    warm_up_size,
)
from silkpurse.nn.transfer import PinnedPool, upload
from silkpurse.plan import Backend
from silkpurse.settings import get_settings
from silkpurse_interpolator.archs import flow_multiple

#: Flow scales the RIFE models are used with (upstream accepts these; 0.5 suits 4K).
RIFE_SCALES = (0.25, 0.5, 1.0, 2.0, 4.0)
#: HDv3 bisection depth: timesteps resolve to multiples of 1/2**BISECT_DEPTH.
BISECT_DEPTH = 4
_MAX = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}

# A pair: (index of frame A, index of frame B, timestep) into a stack of frames.
Pair = tuple[int, int, float]
# A job: (output slot, frame A, frame B, effective timestep).
Job = tuple[int, int, int, float]
Upload = Callable[[int], torch.Tensor]


def bisection_target(t: float) -> Fraction:
    """The dyadic timestep HDv3 will produce for ``t``: nearest multiple of 1/2**BISECT_DEPTH."""
    steps = 2**BISECT_DEPTH
    return Fraction(round(float(t) * steps), steps)


def bisection_path(target: Fraction) -> list[tuple[Fraction, Fraction]]:
    """Intervals whose midpoints must be computed, coarse to fine, to reach ``target`` in (0, 1)."""
    lo, hi = Fraction(0), Fraction(1)
    path = []
    while True:
        path.append((lo, hi))
        mid = (lo + hi) / 2
        if mid == target:
            return path
        lo, hi = (mid, hi) if target > mid else (lo, mid)


#: Pairs per network call on CUDA. On an H200, 2-8 pairs per call gained at most 18 % at 720p
#: and nothing at 1080p, and changed the output bytes (docs/interpolator.md): keep 1.
CUDA_MICRO_BATCH = 1


class Interpolator(ModelEngine):
    """RIFE frame interpolation on a chosen device.

    ``model``: a catalogue name (``rife-hdv3``, ``rife-4.6``, ``rife-4.25``, ``rife-4.26``) or
    the path of a RIFE ``flownet.pkl``. ``rife_scale``: resolution of the flow estimate
    relative to the frame (0.5 for 4K). ``precision``: ``None`` = fp16 on CUDA, bf16 on CPUs
    with native bf16 for families faithful in it, else fp32 (see
    :func:`silkpurse.nn.engine.choose_precision`); ``half=True/False`` is the older spelling.
    ``backend``: ``eager`` (default), ``compile`` or ``tensorrt`` (CUDA), used only where it
    agrees with eager to >= 45 dB (:mod:`silkpurse.nn.accel`).

    The shared engine surface (:class:`~silkpurse.nn.engine.ModelEngine`): ``name``, ``device``,
    ``dtype``/``precision``, ``descriptor``, ``weights``, ``warm_up()`` and ``identity()``.
    """

    kind = "interpolate"

    @built_on_compute_thread
    def __init__(
        self,
        model: str | Path = "rife-hdv3",
        *,
        device: str = "auto",
        rife_scale: float = 1.0,
        half: bool | None = None,
        micro_batch: int | None = None,
        precision: Precision | None = None,
        backend: Backend = "eager",
    ) -> None:
        if rife_scale not in RIFE_SCALES:
            raise OptionsError(
                f"rife scale must be one of {', '.join(map(str, RIFE_SCALES))}, got {rife_scale}",
                "use 1.0 (default), or 0.5 for 4K footage",
            )
        torch_device = resolve_device(device)
        self._backend = check_backend(backend, torch_device)
        if precision is not None and half is not None and (precision == "fp16") != half:
            raise OptionsError(f"half={half} contradicts precision={precision}", "give only one of them")
        if precision is None and half is not None:
            precision = "fp16" if half else "fp32"
        if micro_batch is not None and micro_batch < 1:
            raise OptionsError(f"micro batch {micro_batch} is impossible", "use 1 or more pairs per network call")
        weights, state = open_weights(model, "interpolate")
        descriptor = load_model(state, kind="interpolate")
        chosen = choose_precision(torch_device, descriptor, precision)
        self.half = chosen == "fp16"
        self._attach(weights, descriptor, torch_device, DTYPES[chosen])
        self.model_name, self.weights_path = weights.name, weights.path
        self.rife_scale = float(rife_scale)
        # channels_last weights: frames arrive as NHWC, so the activations are channels_last
        # already; matching weights spare oneDNN/cuDNN a reorder per call (CPU, 640x480 pairs:
        # 1.3x faster in bf16, with the same bytes; fp32 bytes move by rounding).
        self.module = descriptor.network.to(self._device, self._dtype).to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        # Every network call has this many pairs (padded), so results never depend on grouping
        # (see the module docs). CPU: 1 (larger batches are slower there); CUDA: see DEFAULT.
        self.micro_batch = micro_batch or (CUDA_MICRO_BATCH if torch_device.type == "cuda" else 1)
        self._pinned = PinnedPool()
        self._forward = Accelerated(
            _Bound(self.module, self.rife_scale), self._backend, builder=self._tensorrt_builder()
        )

    # -- facts for callers -------------------------------------------------------------
    @property
    def family(self) -> str:
        return self._descriptor.family

    @property
    def supports_timestep(self) -> bool:
        return self._descriptor.supports_timestep

    @property
    def multiple(self) -> int:
        """Frame sizes are padded to multiples of this (grows as ``rife_scale`` shrinks)."""
        return flow_multiple(self._descriptor.size_multiple, self.rife_scale)

    def describe(self) -> dict[str, Any]:
        """JSON-friendly summary for batch metadata and logs (``identity()`` is for keys)."""
        return {
            "model": self.model_name,
            "family": self._descriptor.family,
            "version": self._descriptor.version,
            "device": str(self.device),
            "dtype": str(self.dtype).removeprefix("torch."),
            "rife_scale": self.rife_scale,
        }

    def _identity_options(self, frame_size: FrameSize | None) -> dict[str, Any]:
        # The micro-batch is the shape of every network call, and call shapes change the bytes
        # (see the module docs); the frame size changes nothing else here.
        return {
            "rife_scale": self.rife_scale,
            "micro_batch": self.micro_batch,
            # Compiled kernels round differently (>= 45 dB from eager, checked): other bytes.
            **({"backend": self._backend} if self._backend != "eager" else {}),
        }

    def _tensorrt_builder(self) -> Builder | None:
        """TensorRT engines cached under the models folder, keyed by everything that names the bytes."""
        if self._backend != "tensorrt":
            return None
        return TensorRTCache(get_settings().models_dir / "engines", self.identity()).builder()

    def _warm_up(self, frame_size: FrameSize | None) -> None:
        h, w = warm_up_size(self.multiple, frame_size)
        frame = np.zeros((h, w, 3), dtype=np.uint8)
        self.interpolate_indexed(np.stack((frame, frame)), [(0, 1, 0.5)])

    def effective_t(self, t: float) -> float:
        """The timestep actually produced for a requested ``t`` (bisection rounds for HDv3)."""
        return float(t) if self.supports_timestep else float(bisection_target(t))

    # -- public API --------------------------------------------------------------------
    def interpolate(self, frames0: np.ndarray, frames1: np.ndarray, t: Sequence[float] | np.ndarray) -> np.ndarray:
        """Frames between ``frames0[k]`` and ``frames1[k]`` at ``t[k]``; (N, H, W, 3) uint8/uint16 in and out."""
        frames0 = _check_frames(frames0, "frames0")
        frames1 = _check_frames(frames1, "frames1")
        if frames0.shape != frames1.shape or frames0.dtype != frames1.dtype:
            raise InputError(
                f"frame pairs differ: {frames0.shape} {frames0.dtype} vs {frames1.shape} {frames1.dtype}",
                "give both frames of each pair at the same size and bit depth",
            )
        ts = np.asarray(t, dtype=np.float64).reshape(-1)
        n = frames0.shape[0]
        if ts.shape[0] != n:
            raise InputError(f"{ts.shape[0]} timesteps for {n} frame pairs", "give one timestep per pair")
        stack = np.concatenate((frames0, frames1), 0)
        return self.interpolate_indexed(stack, [(k, n + k, float(ts[k])) for k in range(n)])

    def interpolate_indexed(
        self, frames: np.ndarray, pairs: Sequence[Pair], resident: Sequence[torch.Tensor] | None = None
    ) -> np.ndarray:
        """Blend ``frames[a]`` and ``frames[b]`` at ``t`` for each ``(a, b, t)`` in ``pairs``.

        Pairs that share ``(a, b)`` share their work (HDv3 bisection steps, uploads).
        ``resident``: the same frames already on this engine's device, in one or more runs of
        consecutive frames (``(n, H, W, C)`` uint8, int32 for 16-bit frames, as the upscaler
        leaves them); they are used instead of an upload.
        """
        frames = _check_frames(frames, "frames")
        if resident is not None:
            _check_resident(resident, frames.shape, self._device)
        out = np.empty((len(pairs), *frames.shape[1:]), dtype=frames.dtype)
        for k, (a, b, t) in enumerate(pairs):
            if not 0.0 <= t <= 1.0 or math.isnan(t):
                raise InputError(f"timestep {t} is outside [0, 1]", "give timesteps between the two frames")
            if not (0 <= a < len(frames) and 0 <= b < len(frames)):
                raise IndexError(f"pair {k} refers to frames {a}, {b} of {len(frames)}")
        # Timesteps at the ends (or rounded there by bisection) are plain copies.
        jobs: list[Job] = []
        for k, (a, b, t) in enumerate(pairs):
            te = self.effective_t(t)
            if te <= 0.0:
                out[k] = frames[a]
            elif te >= 1.0:
                out[k] = frames[b]
            else:
                jobs.append((k, a, b, te))
        if jobs:
            results = compute(self._device, self._run, frames, jobs, resident)
            for k, frame in results.items():
                out[k] = frame
        return out

    # -- internals -----------------------------------------------------------------------
    def _run(
        self, frames: np.ndarray, jobs: list[Job], resident: Sequence[torch.Tensor] | None
    ) -> dict[int, np.ndarray]:
        scale_max = _MAX[frames.dtype]
        h, w = frames.shape[1:3]
        m = self.multiple
        pad = (0, (m - w % m) % m, 0, (m - h % m) % m)
        uploaded: dict[int, torch.Tensor] = {}

        # Joined here, in the compute thread: a parallel torch operation anywhere else would
        # start a second OpenMP team (see silkpurse.nn.engine.compute).
        on_device = None if resident is None else resident[0] if len(resident) == 1 else torch.cat(list(resident))

        def upload(i: int) -> torch.Tensor:
            if i not in uploaded:
                frame = self._upload(frames[i]) if on_device is None else on_device[i]
                uploaded[i] = self._to_network(frame, scale_max, pad)
            return uploaded[i]

        run = self._run_timestep if self.supports_timestep else self._run_bisection
        produced = run(jobs, upload)
        keys = list(produced)
        quantised = [self._quantised(produced[k], scale_max, h, w, frames.dtype) for k in keys]
        # One download for the call's frames, not one (and one device sync) per frame.
        host = (torch.stack(quantised) if len(quantised) > 1 else quantised[0][None]).cpu().numpy()
        if host.dtype != frames.dtype:
            host = host.astype(frames.dtype)
        return {k: host[i] for i, k in enumerate(keys)}

    def _run_timestep(self, jobs: list[Job], upload: Upload) -> dict[int, torch.Tensor]:
        unique = sorted({(a, b, t) for _, a, b, t in jobs})
        inputs = [(upload(a), upload(b), t) for a, b, t in unique]
        outs = self._forward_many(inputs)
        by_key = dict(zip(unique, outs, strict=True))
        return {k: by_key[(a, b, t)] for k, a, b, t in jobs}

    def _run_bisection(self, jobs: list[Job], upload: Upload) -> dict[int, torch.Tensor]:
        # Frames at dyadic points of each pair (a, b): 0 and 1 are the inputs themselves.
        points: dict[tuple[int, int, Fraction], torch.Tensor] = {}
        needed: dict[int, set[tuple[int, int, Fraction, Fraction]]] = {}
        for _, a, b, t in jobs:
            for level, (lo, hi) in enumerate(bisection_path(bisection_target(t))):
                needed.setdefault(level, set()).add((a, b, lo, hi))

        def frame_at(a: int, b: int, x: Fraction) -> torch.Tensor:
            if x == 0:
                return upload(a)
            if x == 1:
                return upload(b)
            return points[(a, b, x)]

        for level in sorted(needed):
            todo = sorted(needed[level])
            outs = self._forward_many([(frame_at(a, b, lo), frame_at(a, b, hi), 0.5) for a, b, lo, hi in todo])
            for (a, b, lo, hi), img in zip(todo, outs, strict=True):
                points[(a, b, (lo + hi) / 2)] = img
        return {k: points[(a, b, bisection_target(t))] for k, a, b, t in jobs}

    def _forward_many(self, inputs: list[tuple[torch.Tensor, torch.Tensor, float]]) -> list[torch.Tensor]:
        """Run the network over (img0, img1, t) in fixed-size micro-batches (see module docs)."""
        outs: list[torch.Tensor] = []
        size = self.micro_batch
        for start in range(0, len(inputs), size):
            chunk = inputs[start : start + size]
            real = len(chunk)
            chunk = chunk + [chunk[-1]] * (size - real)  # pad so every call has the same shape
            img0 = torch.cat([c[0] for c in chunk], 0)
            img1 = torch.cat([c[1] for c in chunk], 0)
            if self.supports_timestep:
                t = torch.tensor([c[2] for c in chunk], device=self.device, dtype=self.dtype)
                result = self._forward(img0, img1, t)
            else:
                result = self._forward(img0, img1)
            outs.extend(result[i : i + 1] for i in range(real))
        return outs

    def _upload(self, frame: np.ndarray) -> torch.Tensor:
        # uint16 has no arithmetic in torch; widen on the host (cheap next to the network).
        host = frame if frame.dtype == np.uint8 else frame.astype(np.int32)
        # On CUDA from a pinned buffer without blocking the host (silkpurse.nn.transfer).
        return upload(host, self.device, self._pinned).to(self.device)

    def _to_network(self, frame: torch.Tensor, scale_max: float, pad: tuple[int, int, int, int]) -> torch.Tensor:
        """An integer ``(H, W, C)`` frame on the device -> the network's padded ``(1, C, H', W')`` input."""
        x = frame.permute(2, 0, 1).unsqueeze(0).to(torch.float32) / scale_max
        if any(pad):
            # Zero padding, as the upstream inference scripts do (the weights expect it).
            x = F.pad(x, pad)
        return x.to(self.dtype)

    @staticmethod
    def _quantised(img: torch.Tensor, scale_max: float, h: int, w: int, dtype: np.dtype) -> torch.Tensor:
        """A network output -> the integer ``(h, w, c)`` frame, on the device."""
        x = img[0, :, :h, :w].float().clamp_(0.0, 1.0).mul_(scale_max).round_()
        # Quantised on the device, so 8-bit frames come back as bytes (4x fewer than int32);
        # torch has little uint16 arithmetic, so 16-bit frames come back as int32.
        return x.to(torch.uint8 if dtype == np.uint8 else torch.int32).permute(1, 2, 0)


class _Bound(nn.Module):
    """The network with its flow scale bound, so a compiled form sees tensors only."""

    def __init__(self, network: nn.Module, rife_scale: float) -> None:
        super().__init__()
        self.network, self.rife_scale = network, rife_scale

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.network(*inputs, self.rife_scale)  # type: ignore[no-any-return]


def _check_resident(resident: Sequence[torch.Tensor], shape: tuple[int, ...], device: torch.device) -> None:
    runs = [(tuple(run.shape), run.device) for run in resident]
    frames = sum(run[0] for run, _ in runs) if runs else 0
    if not runs or frames != shape[0] or any(s[1:] != shape[1:] or d != device for s, d in runs):
        raise ValueError(f"resident frames {runs} are not the {shape} frames on {device}")


def _check_frames(frames: object, what: str) -> np.ndarray:
    if not isinstance(frames, np.ndarray):
        raise InputError(
            f"{what} is a {type(frames).__name__}, not a numpy array", "pass (N, H, W, 3) uint8 or uint16 frames"
        )
    if frames.ndim != 4 or frames.shape[3] != 3:
        raise InputError(f"{what} has shape {frames.shape}, expected (N, H, W, 3)", "pass RGB frames, one per row")
    if frames.dtype not in _MAX:
        raise InputError(f"{what} has dtype {frames.dtype}, expected uint8 or uint16", "convert the frames first")
    if frames.shape[1] < 2 or frames.shape[2] < 2:
        raise InputError(f"{what} are {frames.shape[2]}x{frames.shape[1]} pixels", "frames must be at least 2x2")
    return frames
