"""Backward warping shared by every IFNet family.

RIFE predicts, for the frame at time ``t``, where each of its pixels comes from in the two
input frames (a backward flow in pixels). Warping reads the input at those positions with
bilinear sampling, clamping at the border, as the upstream models were trained with.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_GRIDS: dict[tuple[str, int, int], torch.Tensor] = {}


def _base_grid(height: int, width: int, device: torch.device) -> torch.Tensor:
    """Normalised pixel centres (``align_corners=True`` convention), shape ``(1, 2, H, W)``."""
    key = (str(device), height, width)
    grid = _GRIDS.get(key)
    if grid is None:
        xs = torch.linspace(-1.0, 1.0, width, device=device, dtype=torch.float32)
        ys = torch.linspace(-1.0, 1.0, height, device=device, dtype=torch.float32)
        grid = torch.stack((xs.view(1, width).expand(height, width), ys.view(height, 1).expand(height, width)))
        grid = grid.unsqueeze(0)
        # A handful of frame sizes per process; keep the cache from growing without bound anyway.
        if len(_GRIDS) > 16:
            _GRIDS.clear()
        _GRIDS[key] = grid
    return grid


def warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample ``image`` (N, C, H, W) at ``pixel + flow`` (N, 2, H, W), flow in pixels (x, y).

    The sampling grid is always built in float32: in fp16, normalised coordinates near 1.0
    are only about 1/2048 apart, which is half a pixel on a 1920-wide frame.
    """
    n, _, height, width = image.shape
    scale = torch.tensor([(width - 1.0) / 2.0, (height - 1.0) / 2.0], device=flow.device, dtype=torch.float32)
    grid = _base_grid(height, width, image.device) + flow.float() / scale.view(1, 2, 1, 1)
    sampled = F.grid_sample(
        image.float(),
        grid.permute(0, 2, 3, 1),
        mode="bilinear",
        padding_mode="border",
        align_corners=True,
    )
    return sampled.to(image.dtype)
