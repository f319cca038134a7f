"""Frame batches: the unit of work every stage reads and writes.

A batch is a run of consecutive frames of one stream at one stage, plus everything needed to
use it without other context: pixel shape and dtype, the index of its first frame, the
stream's constant frame rate (so each frame's timestamp is ``index / rate``), the store key it
was written for, and metadata.

Wire format: a standard **safetensors** file (any safetensors reader in Python, Rust, C++ or JS
opens it) holding one tensor ``frames`` (``U8`` or ``U16``, ``N x H x W x C``) and string
metadata: ``silkpurse`` (a JSON header: format, first index, rate, key, meta) and ``crc32`` of
the frame bytes. Frames are raw: on these machines compression costs more time than the bytes
it saves (``bench/bench_payload.py``, docs/architecture.md). The CRC catches truncation and
corruption, which safetensors itself does not check; the key binds a batch to the place it was
written for, so a batch copied or swapped under another key is refused, not used.
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from silkpurse.errors import StoreError

FORMAT = "silkpurse-batch/2"
KEY_SUFFIX = ".safetensors"
_LENGTH = struct.Struct("<Q")
_TENSOR = "frames"
_DTYPES = {"uint8": (np.uint8, "U8"), "uint16": (np.uint16, "U16")}
_FROM_SAFETENSORS = {code: np.dtype(dtype) for dtype, code in _DTYPES.values()}
#: Headers are a few hundred bytes; a huge declared length means garbage, not a batch.
_MAX_HEADER = 1 << 20


@dataclass(frozen=True)
class FrameBatch:
    frames: np.ndarray
    """``(N, H, W, C)`` array, ``uint8`` or ``uint16``, RGB or RGBA."""
    first_index: int
    """Index in the stream (at this stage) of ``frames[0]``."""
    rate: Fraction
    """Constant frame rate of the stream at this stage; frame ``i`` is at ``i / rate`` s."""
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.frames.ndim != 4 or self.frames.shape[3] not in (1, 3, 4):
            raise ValueError(f"frames must be (N, H, W, C) with C in 1/3/4, got {self.frames.shape}")
        if self.frames.dtype.name not in _DTYPES:
            raise ValueError(f"frames must be uint8 or uint16, got {self.frames.dtype}")
        if self.first_index < 0 or self.rate <= 0:
            raise ValueError("first_index must be >= 0 and rate > 0")

    def __len__(self) -> int:
        return int(self.frames.shape[0])

    @property
    def end_index(self) -> int:
        """Index one past the last frame."""
        return self.first_index + len(self)

    @property
    def indices(self) -> range:
        return range(self.first_index, self.end_index)

    def timestamp(self, i: int) -> Fraction:
        """Presentation time in seconds of the frame with stream index ``i``."""
        return Fraction(i) / self.rate

    def to_bytes(self, key: str | None = None) -> bytes:
        """The batch as a safetensors file; ``key`` is the store key it is written under."""
        from safetensors.numpy import save

        frames = np.ascontiguousarray(self.frames)
        header = {
            "format": FORMAT,
            "first_index": self.first_index,
            "rate": f"{self.rate.numerator}/{self.rate.denominator}",
            "key": key,
            "meta": self.meta,
        }
        metadata = {"silkpurse": json.dumps(header, separators=(",", ":")), "crc32": str(zlib.crc32(frames.data))}
        return save({_TENSOR: frames}, metadata=metadata)

    @classmethod
    def from_bytes(
        cls, data: bytes | bytearray | memoryview, *, what: str = "batch", key: str | None = None
    ) -> FrameBatch:
        """Decode and verify a batch without copying its frames; ``what`` names it in errors,
        ``key`` (when given) must be the key it was written for."""
        view = memoryview(data)
        header, payload = _split(view, what)
        try:
            info = json.loads(header["__metadata__"]["silkpurse"])
            crc = int(header["__metadata__"]["crc32"])
            tensor = header[_TENSOR]
            dtype = _FROM_SAFETENSORS[tensor["dtype"]]
            shape = tuple(int(n) for n in tensor["shape"])
            start, end = (int(n) for n in tensor["data_offsets"])
            num, den = (int(x) for x in info["rate"].split("/"))
            first_index = int(info["first_index"])
            fmt = info["format"]
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise StoreError(f"{what} has a corrupt header ({err!r})", "delete it so it is recomputed") from None
        if fmt != FORMAT:
            raise StoreError(f"{what} has format {fmt!r}, this silkpurse reads {FORMAT}", "recompute the batch")
        if key is not None and info.get("key") != key:
            raise StoreError(
                f"{what} was written for key {info.get('key')!r}, not for this one", "delete it so it is recomputed"
            )
        frame_bytes = payload[start:end] if 0 <= start <= end <= len(payload) else memoryview(b"")
        expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize if shape else -1
        if len(frame_bytes) != expected or end != len(payload) or zlib.crc32(frame_bytes) != crc:
            raise StoreError(f"{what} is truncated or corrupt (checksum mismatch)", "delete it so it is recomputed")
        try:
            frames = np.frombuffer(frame_bytes, dtype=dtype).reshape(shape)
            return cls(frames=frames, first_index=first_index, rate=Fraction(num, den), meta=dict(info["meta"]))
        except (ValueError, TypeError, KeyError, ZeroDivisionError) as err:
            raise StoreError(f"{what} has a corrupt header ({err!r})", "delete it so it is recomputed") from None


def _split(view: memoryview, what: str) -> tuple[dict[str, Any], memoryview]:
    """A safetensors file's JSON header and its data section."""
    if len(view) < _LENGTH.size:
        raise StoreError(f"{what} is truncated ({len(view)} bytes)", "delete it so it is recomputed")
    (length,) = _LENGTH.unpack_from(view)
    if length > _MAX_HEADER or _LENGTH.size + length > len(view):
        raise StoreError(f"{what} is not a silkpurse frame batch, or is truncated", "check the key or delete it")
    try:
        header = json.loads(bytes(view[_LENGTH.size : _LENGTH.size + length]))
    except (ValueError, UnicodeDecodeError):
        raise StoreError(f"{what} is not a silkpurse frame batch", "check the key or delete the object") from None
    if not isinstance(header, dict) or "silkpurse" not in (header.get("__metadata__") or {}):
        raise StoreError(f"{what} is not a silkpurse frame batch", "check the key or delete the object")
    return header, view[_LENGTH.size + length :]
