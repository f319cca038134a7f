"""Helpers shared by the upscaler tests (a uniquely named module: every test folder has a conftest)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

NcnnReference = Callable[[str, np.ndarray], np.ndarray]
"""``reference(model_name, hwc_uint8) -> hwc_uint8``: ncnn Real-ESRGAN's own CPU result."""
