"""The upscaler engine: frames in, frames ``scale`` times larger out.

A call is one readable story: upload the uint8/uint16 frames once, normalise on the device,
pad the borders by reflection (as ncnn Real-ESRGAN does, so borders match it), run the
network over batches of frames (whole frames, or overlapping tiles when memory is short),
crop, resize to an exact smaller ``scale`` if asked, quantise on the device and download.

Design notes (see docs/upscaler.md): the model layer (:mod:`silkpurse.nn`) resolves the name
or path (with the weights' sha256), reads the checkpoint and recognises its family among those
``archs`` registers; the engine reads all it needs from the descriptor. Precision comes from
:func:`silkpurse.nn.engine.choose_precision` (fp16 on CUDA, bf16 on CPUs with native bf16 for
bf16-faithful families, else fp32; an explicit choice wins); the memory plan (frames per forward, tile size)
comes from the descriptor's bytes-per-pixel estimate and the device's free memory, and the
tile size is chosen once per frame size so every batch of a stream (and ``identity()``) agrees.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from silkpurse.device import resolve_device, usable_cores
from silkpurse.errors import InputError, OptionsError
from silkpurse.models import ResolvedWeights
from silkpurse.nn.accel import Accelerated, Builder, TensorRTCache, check_backend
from silkpurse.nn.architecture import load_model
from silkpurse.nn.checkpoint import StateDict
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
from silkpurse.nn.transfer import PinnedPool, run_batches
from silkpurse.plan import Backend
from silkpurse.settings import get_settings
from silkpurse_upscaler import archs  # noqa: F401  (registers the upscaler's families)
from silkpurse_upscaler.weights import blend

log = logging.getLogger(__name__)

__all__ = ["Precision", "Upscaler", "upscale_image"]

#: Reflection padding around every frame before the network sees it. ncnn Real-ESRGAN (and
#: RealESRGANer's ``pre_pad``) use 10 px; matching it makes borders match the reference.
BORDER_PAD = 10
#: Activation memory allowed for one forward pass on the CPU. Above it frames are tiled;
#: it keeps a 1080p -> 4K upscale well under 6 GB of RSS on a small machine.
CPU_MEMORY_BUDGET = 2 << 30
#: Share of the GPU's free memory one forward pass may use (the rest: allocator slack,
#: cuDNN workspaces, the output buffer).
CUDA_MEMORY_SHARE = 0.5
MIN_AUTO_TILE = 64
#: Frames per forward pass on the CPU unless ``batch_size`` says otherwise. Batching does not
#: pay there: 4 frames of 320x180 per pass took 0.97 s/frame against 0.44 s one at a time
#: (2 cores, SRVGGNetCompact), as the bigger activations fall out of the caches.
CPU_FRAMES_PER_FORWARD = 1


@dataclass(frozen=True)
class _Plan:
    """How one call is cut up: frames per forward pass and tile size (0 = whole frames)."""

    frames_per_forward: int
    tile: int


@dataclass(frozen=True)
class _Denoise:
    """A weight blend in use: ``strength * model + (1 - strength) * twin``."""

    strength: float
    twin: ResolvedWeights


class Upscaler(ModelEngine):
    """Real-ESRGAN-family upscaler for ``(N, H, W, C)`` uint8/uint16 RGB(A) frames.

    ``model`` is a registered name (``silkpurse models list``) or a weights file whose family
    is recognised from its keys. ``scale`` below the model's native factor gives an exact
    ``H*scale x W*scale`` result by an antialiased bicubic reduction of the native output.
    ``tile``: ``None`` plans automatically from memory, ``0`` never tiles, ``N`` uses N px
    tiles with ``tile_pad`` px of overlapping context (``None``: the architecture's need,
    10 px for compact nets, 16 for RRDBNet). ``precision``: ``None`` = fp16 on CUDA,
    bf16 on CPUs with native bf16 (AMX/AVX512-BF16) for families faithful in it, else fp32;
    ``fp32``/``fp16``/``bf16`` choose explicitly (``half=True/False`` is the older spelling).
    ``denoise_strength`` (0..1) blends ``realesr-general-x4v3`` with its weak-denoise twin.
    ``backend``: ``eager`` (default), ``compile`` or ``tensorrt`` (CUDA), built per input shape and
    used only where it agrees with eager to >= 45 dB (:mod:`silkpurse.nn.accel`).

    The shared engine surface (:class:`~silkpurse.nn.engine.ModelEngine`): ``name``, ``device``,
    ``dtype``/``precision``, ``descriptor``, ``weights``, ``warm_up()`` and ``identity()``.
    """

    kind = "upscale"

    @built_on_compute_thread
    def __init__(
        self,
        model: str | Path,
        *,
        scale: int | None = None,
        device: str = "auto",
        tile: int | None = None,
        tile_pad: int | None = None,
        half: bool | None = None,
        denoise_strength: float | None = None,
        precision: Precision | None = None,
        batch_size: int | None = None,
        threads: int | None = None,
        backend: Backend = "eager",
    ) -> None:
        _check_tiling(tile, tile_pad, batch_size)  # cheap checks before loading any weights
        torch_device = resolve_device(device)
        self._backend = check_backend(backend, torch_device)
        weights, state, self._denoise = _open(model, denoise_strength)
        descriptor = load_model(state, kind="upscale")
        self._scale = _check_scale(scale, descriptor.scale)
        self._tile, self._batch_size = tile, batch_size
        self._tile_pad = descriptor.tile_pad if tile_pad is None else tile_pad
        self._tiles: dict[FrameSize, int] = {}
        self._pinned = PinnedPool()
        dtype = DTYPES[choose_precision(torch_device, descriptor, _requested_precision(half, precision))]
        self._attach(weights, descriptor, torch_device, dtype)
        if self._device.type == "cpu":
            _set_cpu_threads(threads)
        else:
            # Video frames (and tiles) come in a handful of fixed shapes: let cuDNN time its
            # algorithms once per shape and keep the fastest.
            torch.backends.cudnn.benchmark = True
        net = self._descriptor.network.to(self._device, self._dtype)
        # channels_last everywhere: cuDNN picks tensor-core NHWC kernels for fp16/bf16, and on the
        # CPU oneDNN's NHWC kernels were 2.2x (fp32) and 4.5x (bf16) faster than NCHW for the
        # compact net (bench/bench_precision.py --variants). Frames arrive as NHWC, so the
        # activations were channels_last already; the weights now match them (same bytes).
        self._net = net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self._forward = Accelerated(self._net, self._backend, builder=self._tensorrt_builder())

    # -- what callers may ask ------------------------------------------------------------

    @property
    def scale(self) -> int:
        """Output size factor of :meth:`upscale`."""
        return self._scale

    @property
    def native_scale(self) -> int:
        return self._descriptor.scale

    @property
    def model_name(self) -> str:
        """The same as ``name`` (kept for older callers)."""
        return self.name

    def _identity_options(self, frame_size: FrameSize | None) -> dict[str, Any]:
        """Scale, the tiling actually used (0 = whole frames) and the denoise blend.

        Without ``frame_size`` an automatic tile size is not known yet and reads ``"auto"``;
        with it, the tile is chosen (and kept for that size) as :meth:`upscale` will use it.
        """
        tile: int | str | None = self._tile if frame_size is None else self._tile_for(*frame_size)
        m = self._descriptor.size_multiple
        if tile is None:
            tile, pad = "auto", _round_up(self._tile_pad, m)
        elif tile == 0:
            pad = 0
        else:
            tile, pad = _round_up(int(tile), m), _round_up(self._tile_pad, m)
        blended = self._denoise
        return {
            "scale": self._scale,
            "tile": tile,
            "tile_pad": pad,
            "denoise_strength": blended.strength if blended else None,
            "denoise_weights_sha256": blended.twin.sha256 if blended else None,
            # Compiled kernels round differently (>= 45 dB from eager, checked): other bytes.
            **({"backend": self._backend} if self._backend != "eager" else {}),
        }

    def _tensorrt_builder(self) -> Builder | None:
        """TensorRT engines cached under the models folder, keyed by everything that names the bytes."""
        if self._backend != "tensorrt":
            return None
        model = {**self.identity(), "tile": self._tile}
        return TensorRTCache(get_settings().models_dir / "engines", model).builder()

    def _warm_up(self, frame_size: FrameSize | None) -> None:
        h, w = warm_up_size(self._descriptor.size_multiple, frame_size)
        self.upscale(np.zeros((1, h, w, 3), dtype=np.uint8))

    # -- the work ------------------------------------------------------------------------

    def upscale(self, frames: np.ndarray) -> np.ndarray:
        """``(N, H, W, C)`` uint8/uint16 RGB (C=3), RGBA (C=4) or grey (C=1) -> same dtype,
        ``(N, H*scale, W*scale, C)``. Alpha is enlarged by bicubic interpolation, colour by
        the network."""
        return self._upscale(frames, keep_on_device=False)[0]

    def upscale_resident(self, frames: np.ndarray) -> tuple[np.ndarray, torch.Tensor]:
        """:meth:`upscale`, and the same frames as they are on the device: ``(N, H*scale,
        W*scale, C)`` uint8 (int32 for 16-bit frames), for a next model in this process
        (:class:`~silkpurse.nn.transfer.ResidentBatches`)."""
        out, on_device = self._upscale(frames, keep_on_device=True)
        assert on_device is not None
        return out, on_device

    def _upscale(self, frames: np.ndarray, *, keep_on_device: bool) -> tuple[np.ndarray, torch.Tensor | None]:
        _check_frames(frames)
        n, h, w, c = frames.shape
        out = np.empty((n, h * self._scale, w * self._scale, c), dtype=frames.dtype)
        if n == 0:
            return out, _on_device(out, self._device) if keep_on_device else None
        plan = self.plan(n, h, w)
        starts = range(0, n, plan.frames_per_forward)
        kept: list[torch.Tensor] = []

        def forward(x: torch.Tensor) -> torch.Tensor:
            result = self._upscale_batch(x, plan.tile, frames.dtype)
            if keep_on_device and self._device.type != "cpu":
                kept.append(result)
            return result

        def store(i: int, result: np.ndarray) -> None:
            out[starts[i] : starts[i] + len(result)] = result

        started = time.perf_counter()
        # On CUDA uploads, the network and downloads of consecutive forward batches overlap
        # (silkpurse.nn.transfer); on the CPU this is a plain loop.
        compute(
            self._device,
            run_batches,
            self._device,
            [frames[s : s + plan.frames_per_forward] for s in starts],
            forward,
            store,
            self._pinned,
        )
        log.debug(
            "upscaled %d frames %dx%d x%d in %.2f s (plan %s)",
            n,
            w,
            h,
            self._scale,
            time.perf_counter() - started,
            plan,
        )
        if not keep_on_device:
            return out, None
        if self._device.type == "cpu":  # the host frames are the device's: a view, not a second copy
            return out, _on_device(out, self._device)
        return out, kept[0] if len(kept) == 1 else torch.cat(kept)

    def plan(self, n: int, h: int, w: int) -> _Plan:
        """Frames per forward pass and tile size for ``n`` frames of ``h x w``."""
        hp, wp = (_padded_size(s, self._descriptor.size_multiple) for s in (h, w))
        bpp = self._descriptor.bytes_per_pixel * torch.finfo(self._dtype).bits // 32
        budget = self._memory_budget()
        cap = min(n, self._batch_size or (n if self._device.type == "cuda" else CPU_FRAMES_PER_FORWARD))
        tile = self._tile_for(h, w)
        if tile:
            m = self._descriptor.size_multiple
            ext = _round_up(tile, m) + 2 * _round_up(self._tile_pad, m)
            return _Plan(frames_per_forward=max(1, min(cap, budget // (ext * ext * bpp))), tile=tile)
        return _Plan(frames_per_forward=max(1, min(cap, budget // (hp * wp * bpp))), tile=0)

    def _tile_for(self, h: int, w: int) -> int:
        """Tile size for frames of ``h x w`` (0 = whole frames), chosen once per size.

        Tiled and whole-frame results differ slightly; keeping the first choice means free GPU
        memory that changes during a run cannot change the bytes between batches.
        """
        if (h, w) not in self._tiles:
            hp, wp = (_padded_size(s, self._descriptor.size_multiple) for s in (h, w))
            tile = self._tile
            if tile is None:
                bpp = self._descriptor.bytes_per_pixel * torch.finfo(self._dtype).bits // 32
                budget = self._memory_budget()
                tile = 0 if hp * wp * bpp <= budget else self._auto_tile(budget, bpp)
            self._tiles[(h, w)] = tile if tile and tile < max(hp, wp) else 0
        return self._tiles[(h, w)]

    def _memory_budget(self) -> int:
        if self._device.type == "cuda":
            free, _total = torch.cuda.mem_get_info(self._device)
            return int(free * CUDA_MEMORY_SHARE)
        return CPU_MEMORY_BUDGET

    def _auto_tile(self, budget: int, bytes_per_pixel: int) -> int:
        side = math.isqrt(budget // bytes_per_pixel) - 2 * self._tile_pad
        return max(MIN_AUTO_TILE, side // 16 * 16)

    def _upscale_batch(self, frames: torch.Tensor, tile: int, dtype: np.dtype) -> torch.Tensor:
        """Integer ``(n, h, w, c)`` frames on the device -> integer ``(n, h*s, w*s, c)`` on the device."""
        n, h, w, c = frames.shape
        peak = 255.0 if dtype == np.uint8 else 65535.0
        # The integer frames were uploaded (2-4x fewer bytes than floats); normalise on the device.
        x = frames.permute(0, 3, 1, 2).to(torch.float32).div_(peak)
        colour = x[:, :3] if c >= 3 else x.expand(-1, 3, -1, -1)
        y = self._run_network(colour, tile)
        size = (h * self._scale, w * self._scale)
        if self._scale != self._descriptor.scale:
            # Like RealESRGANer's outscale: resize the native result to the exact size;
            # antialiased bicubic avoids the aliasing a plain bicubic reduction would add.
            y = F.interpolate(y, size=size, mode="bicubic", antialias=True, align_corners=False)
        if c == 4:
            alpha = F.interpolate(x[:, 3:], size=size, mode="bicubic", align_corners=False)
            y = torch.cat((y, alpha), dim=1)
        elif c == 1:
            # Back to one channel with BT.601 luma weights, as Real-ESRGAN does for grey input.
            luma = torch.tensor([0.299, 0.587, 0.114], device=y.device).view(1, 3, 1, 1)
            y = (y * luma).sum(dim=1, keepdim=True)
        return _quantise(y, dtype, peak)

    def _run_network(self, x: torch.Tensor, tile: int) -> torch.Tensor:
        """Reflect-pad, run whole or tiled, crop: ``(n, 3, h, w)`` -> ``(n, 3, h*s, w*s)`` fp32."""
        _, _, h, w = x.shape
        s, m = self._descriptor.scale, self._descriptor.size_multiple
        padded = _reflect_pad(
            x,
            BORDER_PAD,
            _round_up(h + 2 * BORDER_PAD, m) - h - BORDER_PAD,
            _round_up(w + 2 * BORDER_PAD, m) - w - BORDER_PAD,
        )
        padded = padded.to(self._dtype).contiguous(memory_format=torch.channels_last)
        y = self._tiled(padded, tile) if tile else self._forward(padded).float()
        return y[:, :, BORDER_PAD * s : (BORDER_PAD + h) * s, BORDER_PAD * s : (BORDER_PAD + w) * s]

    def _tiled(self, x: torch.Tensor, tile: int) -> torch.Tensor:
        """Run tile by tile; each tile sees ``tile_pad`` px of its neighbours so seams vanish."""
        n, c, hp, wp = x.shape
        s, m = self._descriptor.scale, self._descriptor.size_multiple
        tile, pad = _round_up(tile, m), _round_up(self._tile_pad, m)
        out = torch.empty((n, self._descriptor.out_channels, hp * s, wp * s), device=x.device)
        for y0, y1, x0, x1 in _tiles(hp, wp, tile):
            ey0, ey1, ex0, ex1 = max(y0 - pad, 0), min(y1 + pad, hp), max(x0 - pad, 0), min(x1 + pad, wp)
            result = self._forward(x[:, :, ey0:ey1, ex0:ex1])
            oy, ox = (y0 - ey0) * s, (x0 - ex0) * s
            out[:, :, y0 * s : y1 * s, x0 * s : x1 * s] = result[:, :, oy : oy + (y1 - y0) * s, ox : ox + (x1 - x0) * s]
        return out


# -- model resolution ----------------------------------------------------------------------


def _open(model: str | Path, denoise_strength: float | None) -> tuple[ResolvedWeights, StateDict, _Denoise | None]:
    """The weights of ``model``, its state dict (blended with its denoise twin if asked) and the blend."""
    from silkpurse_upscaler.catalog import DENOISE_TWINS

    weights, state = open_weights(model, "upscale")
    if denoise_strength is None:
        return weights, state, None
    if weights.spec is None:
        raise OptionsError(
            "denoise strength applies only to the registered realesr-general-x4v3 model",
            "drop the denoise strength, or name the model instead of a file",
        )
    twin = DENOISE_TWINS.get(weights.name)
    if twin is None:
        raise OptionsError(
            f"model {weights.name} has no denoise strength",
            f"use one of {', '.join(DENOISE_TWINS)} or drop the denoise strength",
        )
    if not 0.0 <= denoise_strength <= 1.0:
        raise OptionsError(
            f"denoise strength {denoise_strength} is outside 0..1", "use 0 (keep noise) to 1 (strong denoise)"
        )
    if denoise_strength == 1.0:  # the model alone: the same bytes as no blend
        return weights, state, None
    weak, weak_state = open_weights(twin, "upscale")
    return weights, blend(state, weak_state, denoise_strength), _Denoise(float(denoise_strength), weak)


# -- option checks -------------------------------------------------------------------------


def _check_scale(scale: int | None, native: int) -> int:
    if scale is None:
        return native
    if isinstance(scale, bool) or not isinstance(scale, int) or not 1 <= scale <= native:
        raise OptionsError(
            f"scale {scale!r} is not possible with this x{native} model",
            f"choose an integer scale from 1 to {native}, or a model with a larger native scale",
        )
    return scale


def _check_tiling(tile: int | None, tile_pad: int | None, batch_size: int | None) -> None:
    if tile is not None and (tile < 0 or 0 < tile < 16):
        raise OptionsError(f"tile size {tile} is too small", "use 0 (no tiling), None (automatic) or >= 16 px")
    if tile_pad is not None and tile_pad < 0:
        raise OptionsError(f"tile padding {tile_pad} is negative", "use 0 or more px (10 is a good default)")
    if batch_size is not None and batch_size < 1:
        raise OptionsError(f"batch size {batch_size} is not positive", "use 1 or more frames per forward pass")


def _requested_precision(half: bool | None, precision: Precision | None) -> Precision | None:
    """The precision the caller asked for (``half`` is the older spelling), ``None`` for the default."""
    if precision is not None and half is not None and (precision == "fp16") != half:
        raise OptionsError(f"half={half} contradicts precision={precision}", "give only one of them")
    if precision is None and half is not None:
        return "fp16" if half else "fp32"
    return precision


def _set_cpu_threads(threads: int | None) -> None:
    """Use every core this process may run on (torch defaults to physical cores only)."""
    available = usable_cores()
    if threads is not None and threads < 1:
        raise OptionsError(f"thread count {threads} is not positive", "use 1 or more threads")
    wanted = min(threads or available, available)
    if torch.get_num_threads() != wanted:
        torch.set_num_threads(wanted)


def _check_frames(frames: np.ndarray) -> None:
    if not isinstance(frames, np.ndarray) or frames.ndim != 4 or frames.shape[3] not in (1, 3, 4):
        shape = getattr(frames, "shape", type(frames).__name__)
        raise InputError(
            f"frames must be an (N, H, W, C) array with C = 1, 3 or 4, got {shape}",
            "pass RGB or RGBA frames as a 4-D numpy array",
        )
    if frames.dtype not in (np.uint8, np.uint16):
        raise InputError(f"frames must be uint8 or uint16, got {frames.dtype}", "convert the frames first")
    if frames.shape[1] < 1 or frames.shape[2] < 1:
        raise InputError(f"frames are empty ({frames.shape[2]}x{frames.shape[1]})", "pass frames with pixels")


# -- tensor helpers ------------------------------------------------------------------------


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _padded_size(side: int, multiple: int) -> int:
    return _round_up(side + 2 * BORDER_PAD, multiple)


def _reflect_pad(x: torch.Tensor, before: int, after_h: int, after_w: int) -> torch.Tensor:
    """Reflect-pad top/left by ``before`` and bottom/right by ``after_*``.

    Reflection needs a side longer than the pad; tiny frames fall back to edge replication.
    """
    _, _, h, w = x.shape
    pads = (before, after_w, before, after_h)
    mode = "reflect" if max(before, after_w) < w and max(before, after_h) < h else "replicate"
    return F.pad(x, pads, mode=mode)


def _tiles(h: int, w: int, tile: int) -> Iterator[tuple[int, int, int, int]]:
    for y0 in range(0, h, tile):
        for x0 in range(0, w, tile):
            yield y0, min(y0 + tile, h), x0, min(x0 + tile, w)


def _on_device(frames: np.ndarray, device: torch.device) -> torch.Tensor:
    """Host frames as :meth:`Upscaler.upscale_resident` gives them (16-bit as int32)."""
    host = torch.from_numpy(frames if frames.dtype == np.uint8 else frames.astype(np.int32))
    return host.to(device)


def _quantise(y: torch.Tensor, dtype: np.dtype, peak: float) -> torch.Tensor:
    """Float ``(n, c, h, w)`` in 0..1 -> integer ``(n, h, w, c)`` on the device (uint8, or int32
    for 16-bit frames: torch has little uint16 arithmetic), rounded there so one small copy comes back."""
    q = y.clamp_(0.0, 1.0).mul_(peak).round_()
    q = q.to(torch.uint8) if dtype == np.uint8 else q.to(torch.int32)
    return q.permute(0, 2, 3, 1).contiguous()


def upscale_image(input_path: str | Path, output_path: str | Path, **engine_kwargs: object) -> Path:
    """Upscale one PNG/JPEG/WebP image; alpha and 16-bit PNG depth are kept.

    ``engine_kwargs`` are those of :class:`Upscaler` (``model`` defaults to
    ``realesr-animevideov3``, the fastest).
    """
    from silkpurse.media.image import Picture, output_format, read_image, write_image
    from silkpurse.output import claim_output

    source, target = Path(input_path), Path(output_path)
    # The output is locked before any work; a second run on it fails at once.
    with claim_output(target, inputs=[source]):
        picture = read_image(source)
        output_format(target, picture)
        model = engine_kwargs.pop("model", "realesr-animevideov3")
        upscaler = Upscaler(model, **engine_kwargs)  # type: ignore[arg-type]
        result = upscaler.upscale(picture.pixels[None])[0]
        write_image(target, Picture(result, grey=picture.grey))
    return target
