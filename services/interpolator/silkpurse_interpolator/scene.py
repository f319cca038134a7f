"""Pairwise scene-cut and duplicate detection.

A cut is decided from the two frames of a pair alone (no running statistics), so where the
batches begin cannot change the decision. The score is the mean absolute difference of the
frames' luma after box-downscaling to at most 64 pixels on the long side, in [0, 1]: cheap,
and the downscale makes it indifferent to noise and small motion. Hard cuts score roughly
0.15-0.5; consecutive frames of ordinary motion stay well below 0.1 (see docs/interpolator.md).
"""

from __future__ import annotations

import numpy as np

#: A reasonable default for ``scene_threshold``; 1.0 or more disables cut detection.
DEFAULT_SCENE_THRESHOLD = 0.12
_THUMB = 64
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float64)  # BT.601 weights: robust enough for a cut score


def thumbnail_luma(frame: np.ndarray) -> np.ndarray:
    """Luma in [0, 1], box-averaged down to at most 64 px on the long side.

    Box-averaging comes first (both steps are linear, so the order does not change the result)
    so a 4K frame costs one pass over its bytes, not full-size float copies.
    """
    peak = 65535.0 if frame.dtype == np.uint16 else 255.0
    pixels = frame[..., None] if frame.ndim == 2 else frame
    h, w = pixels.shape[:2]
    step = max(1, int(np.ceil(max(h, w) / _THUMB)))
    hh, ww = (h // step) * step, (w // step) * step
    if hh and ww:
        pixels = pixels[:hh, :ww].reshape(hh // step, step, ww // step, step, -1).mean(axis=(1, 3))
    pixels = pixels.astype(np.float64) / peak
    return pixels[..., :3] @ _LUMA if pixels.shape[2] >= 3 else pixels[..., 0]


def cut_score(frame0: np.ndarray, frame1: np.ndarray) -> float:
    return _thumbnail_distance(thumbnail_luma(frame0), thumbnail_luma(frame1))


def cuts_between(frames: np.ndarray, threshold: float) -> list[bool]:
    """For each consecutive pair of ``frames``: is it a cut? Each thumbnail is made once."""
    if threshold >= 1.0:
        return [False] * max(0, len(frames) - 1)
    thumbs = [thumbnail_luma(frame) for frame in frames]
    return [_thumbnail_distance(a, b) > threshold for a, b in zip(thumbs, thumbs[1:], strict=False)]


def _thumbnail_distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(np.abs(a - b)))


def is_duplicate(frame0: np.ndarray, frame1: np.ndarray) -> bool:
    """Byte-identical frames (e.g. a duplicated frame in a variable-rate capture)."""
    return frame0.shape == frame1.shape and np.array_equal(frame0, frame1)
