"""Moving frames between host and device, overlapped with the network on CUDA.

The engines take and give numpy frames (``(N, H, W, C)`` uint8/uint16). On the CPU a frame
batch is a view (``torch.from_numpy``) and nothing here costs anything. On CUDA each batch
would otherwise pay for a synchronous upload from pageable memory, the network, and a
synchronous download, one after the other (the H200 measurements of issue #12: the GPU
waited on exactly that). :func:`run_batches` instead

* stages uploads in **pinned** host buffers and copies them with ``non_blocking=True`` on an
  upload stream, so the copy of batch ``i + 1`` runs while the network computes batch ``i``;
* leaves conversion to and from float to the device (the integer frames cross the bus: 2-4x
  fewer bytes than floats);
* downloads each result on a download stream into pinned buffers while the next batch
  computes, and hands it to the caller only once its copy has finished.

Ordering is kept with CUDA events (upload -> compute -> download) and every tensor used on a
stream other than the one that allocated it is recorded on that stream
(``Tensor.record_stream``), so the caching allocator never reuses its memory early. Each
pinned buffer is one of a ring of two per shape and is rewritten only after the event of its
previous copy has completed. The bytes are those of the plain path: only where and when the
copies run changes.

In the embedded runner the upscaler's results also stay on the device for the interpolator
(:class:`ResidentBatches`): each upscaled frame crosses the bus once, downwards.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from silkpurse.batch import FrameBatch

#: Host buffers kept per shape: one being filled or read while the other is in flight.
RING = 2


def from_host(frames: np.ndarray) -> torch.Tensor:
    """A CPU tensor over ``frames`` (no copy when it is writable and contiguous)."""
    host = np.ascontiguousarray(frames)
    if not host.flags.writeable:  # torch warns on read-only memory (batches decoded from the store)
        host = host.copy()
    return torch.from_numpy(host)


@dataclass
class _Pinned:
    tensor: torch.Tensor
    done: torch.cuda.Event | None = None
    """Recorded after the last copy from or into this buffer; wait on it before reusing it."""

    def ready(self) -> None:
        if self.done is not None:
            self.done.synchronize()


_Key = tuple[str, tuple[int, ...], torch.dtype]


class PinnedPool:
    """Rings of pinned host buffers by direction (``up``/``down``), shape and dtype (an upload
    and a download of the same shape never share a buffer). Engines keep one pool, so the
    buffers of a stream of same-sized batches are allocated once."""

    def __init__(self) -> None:
        self._rings: dict[_Key, list[_Pinned]] = {}
        self._turn: dict[_Key, int] = {}

    def take(self, direction: str, shape: tuple[int, ...], dtype: torch.dtype) -> _Pinned:
        key = (direction, tuple(shape), dtype)
        ring = self._rings.setdefault(key, [])
        if len(ring) < RING:
            ring.append(_Pinned(torch.empty(shape, dtype=dtype, pin_memory=True)))
            return ring[-1]
        turn = self._turn[key] = (self._turn.get(key, -1) + 1) % RING
        buffer = ring[turn]
        buffer.ready()
        return buffer

    def clear(self) -> None:
        self._rings.clear()
        self._turn.clear()


def upload(frames: np.ndarray, device: torch.device, pool: PinnedPool) -> torch.Tensor:
    """``frames`` on ``device``: a view on the CPU; on CUDA a non-blocking copy from a pinned
    buffer on the current stream (work queued after it on that stream sees the frames)."""
    if device.type != "cuda":
        return from_host(frames)
    staged = pool.take("up", frames.shape, _torch_dtype(frames.dtype))
    staged.tensor.numpy()[...] = frames
    on_device = staged.tensor.to(device, non_blocking=True)
    staged.done = torch.cuda.Event()
    staged.done.record(torch.cuda.current_stream(device))
    return on_device


def run_batches(
    device: torch.device,
    batches: Sequence[np.ndarray],
    compute: Callable[[torch.Tensor], torch.Tensor],
    store: Callable[[int, np.ndarray], None],
    pool: PinnedPool | None = None,
) -> None:
    """``store(i, compute(batches[i]))`` for each batch: uploads, computes and downloads overlapped on CUDA.

    ``compute`` takes the integer frames on ``device`` and returns integer frames on ``device``
    (it runs on the current stream). ``store`` gets a host array that is valid only during the
    call (it may be a pinned buffer that is reused): copy what you keep.
    """
    if device.type != "cuda":
        for i, frames in enumerate(batches):
            store(i, compute(from_host(frames).to(device)).cpu().numpy())
        return
    pool = pool or PinnedPool()
    compute_stream = torch.cuda.current_stream(device)
    upload_stream, download_stream = torch.cuda.Stream(device), torch.cuda.Stream(device)

    def upload(frames: np.ndarray) -> tuple[torch.Tensor, torch.cuda.Event]:
        staged = pool.take("up", frames.shape, _torch_dtype(frames.dtype))
        staged.tensor.numpy()[...] = frames  # the host copy into pinned memory
        with torch.cuda.stream(upload_stream):
            on_device = staged.tensor.to(device, non_blocking=True)
            staged.done = torch.cuda.Event()
            staged.done.record(upload_stream)
        on_device.record_stream(compute_stream)  # allocated on the upload stream, used on the compute stream
        return on_device, staged.done

    pending: tuple[int, _Pinned] | None = None
    next_upload = upload(batches[0]) if batches else None
    for i in range(len(batches)):
        assert next_upload is not None
        on_device, uploaded = next_upload
        compute_stream.wait_event(uploaded)
        # Queue the next upload now: it runs on its own stream while this batch computes.
        next_upload = upload(batches[i + 1]) if i + 1 < len(batches) else None
        result = compute(on_device)
        computed = torch.cuda.Event()
        computed.record(compute_stream)
        # Hand over the previous batch (its download overlapped this batch's compute, which is
        # queued on the GPU already) before its ring buffer can come round again.
        if pending is not None:
            _hand_over(pending, store)
            pending = None
        host = pool.take("down", tuple(result.shape), result.dtype)
        with torch.cuda.stream(download_stream):
            download_stream.wait_event(computed)
            host.tensor.copy_(result, non_blocking=True)
            host.done = torch.cuda.Event()
            host.done.record(download_stream)
        result.record_stream(download_stream)  # allocated on the compute stream, read by the download
        pending = (i, host)
    if pending is not None:
        _hand_over(pending, store)


def _hand_over(pending: tuple[int, _Pinned], store: Callable[[int, np.ndarray], None]) -> None:
    index, host = pending
    host.ready()
    store(index, host.tensor.numpy())


def _torch_dtype(dtype: np.dtype) -> torch.dtype:
    return {np.dtype(np.uint8): torch.uint8, np.dtype(np.uint16): torch.uint16, np.dtype(np.int32): torch.int32}[
        np.dtype(dtype)
    ]


@dataclass(frozen=True)
class Resident:
    """A batch with its frames still on the device that computed them."""

    batch: FrameBatch
    """The host copy (what the store holds)."""
    frames: torch.Tensor
    """``batch.frames`` on the device: ``(N, H, W, C)`` uint8 (int32 for 16-bit frames)."""


class ResidentBatches:
    """Batches one model stage computed, kept on the device for the next model stage of the same
    process (the embedded runner's upscaler -> interpolator), so their frames are not uploaded
    again. The store still receives every batch: this is only a faster way to read one back,
    and a batch not found here (evicted, or computed by an earlier run) is read from the store.

    Holds the last ``capacity`` batches: the walker interpolates batch j once batches j and
    j + 1 are upscaled, and upscales at most a batch or two ahead of that."""

    def __init__(self, capacity: int = 4) -> None:
        self._capacity = capacity
        self._batches: OrderedDict[str, Resident] = OrderedDict()
        self._lock = threading.Lock()  # stages put and get from their own threads

    def put(self, key: str, batch: FrameBatch, frames: torch.Tensor) -> None:
        if tuple(frames.shape) != batch.frames.shape:
            raise ValueError(f"device frames {tuple(frames.shape)} are not the batch's {batch.frames.shape}")
        with self._lock:
            self._batches[key] = Resident(batch, frames)
            self._batches.move_to_end(key)
            while len(self._batches) > self._capacity:
                self._batches.popitem(last=False)

    def get(self, key: str) -> Resident | None:
        with self._lock:
            return self._batches.get(key)

    def drop_prefix(self, prefix: str) -> None:
        with self._lock:
            for key in [k for k in self._batches if k.startswith(prefix)]:
                del self._batches[key]

    def __len__(self) -> int:
        return len(self._batches)
