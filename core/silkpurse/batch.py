"""Frame batches: the unit of work every stage reads and writes.

A batch is a run of consecutive frames of one stream at one stage, plus everything needed to
use it without other context: pixel shape and dtype, the index of its first frame, the
stream's constant frame rate (so each frame's timestamp is ``index / rate``) and free-form
metadata (colour facts, the producing stage's parameters).

Wire format (version 1), little-endian::

    b"SPFB" | u16 version | u32 header length | header (UTF-8 JSON) | frame bytes

The header holds ``shape``, ``dtype``, ``first_index``, ``rate`` ("num/den"), ``meta`` and
``crc32`` of the frame bytes. Frames are raw and uncompressed: lossless, and cheap to encode
and decode (see ``bench/bench_batch.py``); CRC-32 catches truncation and corruption in a store.
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

MAGIC = b"SPFB"
VERSION = 1
_PREFIX = struct.Struct("<4sHI")
_DTYPES = {"uint8": np.uint8, "uint16": np.uint16}


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

    def to_bytes(self) -> bytes:
        frames = np.ascontiguousarray(self.frames)
        payload = frames.data.cast("B")
        header = json.dumps(
            {
                "shape": list(frames.shape),
                "dtype": frames.dtype.name,
                "first_index": self.first_index,
                "rate": f"{self.rate.numerator}/{self.rate.denominator}",
                "meta": self.meta,
                "crc32": zlib.crc32(payload),
            },
            separators=(",", ":"),
        ).encode()
        return b"".join((_PREFIX.pack(MAGIC, VERSION, len(header)), header, payload))

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview, *, what: str = "batch") -> FrameBatch:
        """Decode and verify a batch; ``what`` names it in errors (e.g. its store key)."""
        view = memoryview(data)
        if len(view) < _PREFIX.size:
            raise StoreError(f"{what} is truncated ({len(view)} bytes)", "delete it so it is recomputed")
        magic, version, header_len = _PREFIX.unpack_from(view)
        if magic != MAGIC:
            raise StoreError(f"{what} is not a silkpurse frame batch", "check the key or delete the object")
        if version != VERSION:
            raise StoreError(
                f"{what} has format version {version}, this silkpurse reads {VERSION}",
                "use the silkpurse release that wrote it, or recompute the batch",
            )
        try:
            header = json.loads(bytes(view[_PREFIX.size : _PREFIX.size + header_len]))
            shape = tuple(int(n) for n in header["shape"])
            dtype = np.dtype(_DTYPES[header["dtype"]])
            num, den = (int(x) for x in header["rate"].split("/"))
        except (ValueError, KeyError, TypeError) as err:
            raise StoreError(f"{what} has a corrupt header ({err})", "delete it so it is recomputed") from err
        payload = view[_PREFIX.size + header_len :]
        expected = int(np.prod(shape)) * dtype.itemsize
        if len(payload) != expected or zlib.crc32(payload) != header["crc32"]:
            raise StoreError(f"{what} is truncated or corrupt (checksum mismatch)", "delete it so it is recomputed")
        frames = np.frombuffer(payload, dtype=dtype).reshape(shape)
        return cls(frames=frames, first_index=int(header["first_index"]), rate=Fraction(num, den), meta=header["meta"])
