"""Helpers shared by the upscaler tests (a uniquely named module: every test folder has a conftest)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

NcnnReference = Callable[[str, np.ndarray], np.ndarray]
"""``reference(model_name, hwc_uint8) -> hwc_uint8``: ncnn Real-ESRGAN's own CPU result."""


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else float(10 * np.log10(peak * peak / mse))
