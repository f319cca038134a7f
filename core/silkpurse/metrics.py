"""Measurements used by the tests and benchmarks (and anyone comparing outputs): image quality,
exact packet times, the bytes a work directory holds."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np

from silkpurse.settings import get_settings


def psnr(a: np.ndarray, b: np.ndarray, peak: float | None = None) -> float:
    """Peak signal-to-noise ratio in dB of two same-shaped arrays (``inf`` when identical).

    ``peak`` defaults to the dtype's maximum: 255 for uint8, 65535 for uint16.
    """
    if a.shape != b.shape:
        raise ValueError(f"cannot compare shapes {a.shape} and {b.shape}")
    if peak is None:
        peak = float(np.iinfo(a.dtype).max) if np.issubdtype(a.dtype, np.integer) else 1.0
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else float(10 * np.log10(peak * peak / mse))


def packet_times(path: Path, stream: str = "v:0") -> list[Fraction]:
    """Exact presentation times in seconds of a stream's packets (``v:0``, ``a:0``), in order."""
    out = subprocess.run(
        [
            get_settings().ffprobe,
            "-v",
            "error",
            "-select_streams",
            stream,
            "-show_entries",
            "packet=pts:stream=time_base",
            "-of",
            "json",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    data = json.loads(out)
    time_base = Fraction(data["streams"][0]["time_base"])
    return sorted(int(p["pts"]) * time_base for p in data["packets"])


def stored_bytes(folder: Path, suffix: str = ".safetensors") -> int:
    """Bytes of the files named ``*suffix`` under ``folder`` now; files and folders that a
    running job removes while this counts are skipped."""
    total = 0
    for parent, _dirs, files in os.walk(folder):
        for name in files:
            if name.endswith(suffix):
                with contextlib.suppress(OSError):
                    total += os.stat(os.path.join(parent, name)).st_size
    return total


# -- audio ----------------------------------------------------------------------------------------


def si_sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Scale-invariant signal-to-distortion ratio of ``estimate`` against ``reference``, dB
    (Le Roux et al. 2019): the gain-matched reference's power over the rest's."""
    n = min(len(reference), len(estimate))
    ref = reference[:n].astype(np.float64) - reference[:n].mean()
    est = estimate[:n].astype(np.float64) - estimate[:n].mean()
    target = (est @ ref) / (ref @ ref + 1e-20) * ref
    residual = est - target
    return float(10 * np.log10((target @ target + 1e-20) / (residual @ residual + 1e-20)))


def lag_seconds(reference: np.ndarray, signal: np.ndarray, rate: int, max_lag: float = 0.5) -> float:
    """How late ``signal`` is against ``reference`` (seconds, negative = early), by the peak of
    their cross-correlation within ``max_lag`` (computed with FFTs)."""
    n = min(len(reference), len(signal))
    a = reference[:n].astype(np.float64)
    b = signal[:n].astype(np.float64)
    size = 1 << (2 * n - 1).bit_length()
    corr = np.fft.irfft(np.fft.rfft(b, size) * np.conj(np.fft.rfft(a, size)), size)
    limit = int(max_lag * rate)
    lags = np.concatenate([np.arange(0, limit + 1), np.arange(-limit, 0)])
    values = np.concatenate([corr[: limit + 1], corr[size - limit :]])
    return float(lags[int(np.argmax(values))] / rate)
