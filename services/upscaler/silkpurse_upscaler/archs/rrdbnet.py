"""RRDBNet: the ESRGAN generator used by ``RealESRGAN_x4plus``, ``_x4plus_anime_6B`` and ``_x2plus``.

Written for silkpurse from the ESRGAN paper (residual-in-residual dense blocks, residual
scaling 0.2, nearest-neighbour upsampling + conv). Module names follow the BasicSR
checkpoints (``conv_first``, ``body.N.rdb1.conv1``, ``conv_body``, ``conv_up1``, ``conv_up2``,
``conv_hr``, ``conv_last``) so they load by key.

The x2 (and x1) variants fold the input into channels with pixel-unshuffle first, so the
same x4 trunk gives a x2 (x1) result; their input sides must be even (multiples of 4).
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from torch import nn

from silkpurse.errors import ModelError
from silkpurse.nn.architecture import Architecture, KeyCondition, ModelDescriptor, StateDict, load_weights

FAMILY = "RRDBNet"


class ResidualDenseBlock(nn.Module):
    """Five densely connected convs; each sees the block input and all earlier outputs."""

    def __init__(self, num_feat: int = 64, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_grow_ch, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat + num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv3 = nn.Conv2d(num_feat + 2 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv4 = nn.Conv2d(num_feat + 3 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv5 = nn.Conv2d(num_feat + 4 * num_grow_ch, num_feat, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.lrelu(self.conv1(x))
        x2 = self.lrelu(self.conv2(torch.cat((x, x1), 1)))
        x3 = self.lrelu(self.conv3(torch.cat((x, x1, x2), 1)))
        x4 = self.lrelu(self.conv4(torch.cat((x, x1, x2, x3), 1)))
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        # Residual scaling 0.2 keeps the very deep trunk stable (ESRGAN, section 3.1).
        return x5 * 0.2 + x


class RRDB(nn.Module):
    def __init__(self, num_feat: int, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


def _unshuffle_factor(scale: int) -> int:
    """How much the input is pixel-unshuffled so the x4 (x8) trunk yields ``scale``."""
    return {1: 4, 2: 2}.get(scale, 1)


class RRDBNet(nn.Module):
    def __init__(
        self,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        scale: int = 4,
        num_feat: int = 64,
        num_block: int = 23,
        num_grow_ch: int = 32,
    ) -> None:
        super().__init__()
        self.scale = scale
        self.unshuffle = _unshuffle_factor(scale)
        self.conv_first = nn.Conv2d(num_in_ch * self.unshuffle**2, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*(RRDB(num_feat, num_grow_ch) for _ in range(num_block)))
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        if scale == 8:
            self.conv_up3 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def _up(self, conv: nn.Module, feat: torch.Tensor) -> torch.Tensor:
        return self.lrelu(conv(F.interpolate(feat, scale_factor=2, mode="nearest")))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = F.pixel_unshuffle(x, self.unshuffle) if self.unshuffle > 1 else x
        feat = self.conv_first(feat)
        feat = feat + self.conv_body(self.body(feat))
        feat = self._up(self.conv_up1, feat)
        feat = self._up(self.conv_up2, feat)
        if self.scale == 8:
            feat = self._up(self.conv_up3, feat)
        return self.conv_last(self.lrelu(self.conv_hr(feat)))


_BLOCK = re.compile(r"^body\.(\d+)\.rdb1\.conv1\.weight$")
detect = KeyCondition.has_all(
    "conv_first.weight",
    "body.0.rdb1.conv1.weight",
    "conv_body.weight",
    "conv_up1.weight",
    "conv_up2.weight",
    "conv_hr.weight",
    "conv_last.weight",
)


def load(state: StateDict) -> ModelDescriptor:
    first, last = state["conv_first.weight"], state["conv_last.weight"]
    num_feat, folded_in = int(first.shape[0]), int(first.shape[1])
    out_ch = int(last.shape[0])
    num_grow_ch = int(state["body.0.rdb1.conv1.weight"].shape[0])
    num_block = len({m.group(1) for k in state if (m := _BLOCK.match(k))})
    # The trunk always upsamples x4 (x8 with conv_up3); pixel-unshuffle of the input
    # (visible as conv_first taking 4x or 16x the output channels) lowers the net scale.
    folding = folded_in // out_ch if folded_in % out_ch == 0 else 0
    trunk = 8 if "conv_up3.weight" in state else 4
    scale = {1: trunk, 4: 2, 16: 1}.get(folding)
    if scale is None or (trunk == 8 and folding != 1):
        raise ModelError(
            f"cannot infer the scale of this {FAMILY} checkpoint (conv_first takes {folded_in} channels, "
            f"conv_last gives {out_ch})",
            "only x1/x2/x4/x8 RRDBNet checkpoints with equal input and output channels are supported",
        )
    hyper = {"num_feat": num_feat, "num_block": num_block, "num_grow_ch": num_grow_ch, "scale": scale}
    network = RRDBNet(num_in_ch=out_ch, num_out_ch=out_ch, **hyper)
    load_weights(network, state, FAMILY)
    up = _unshuffle_factor(scale)
    low_px = 1 / up**2  # trunk pixels per input pixel
    hr_px = (trunk / up) ** 2  # upsampled-feature pixels per input pixel
    # Trunk: the dense block's concatenations (up to num_feat + 4 growth) plus inputs;
    # head: interpolated + conv + activation maps at num_feat. Doubled for slack.
    per_px = low_px * (3 * num_feat + 8 * num_grow_ch) + hr_px * 3 * num_feat
    return ModelDescriptor(
        network=network,
        family=FAMILY,
        kind="upscale",
        scale=scale,
        in_channels=out_ch,
        out_channels=out_ch,
        supports_half=True,
        # bf16 vs fp32 on real frames (bench/bench_precision.py, x4plus, vtest.avi 320x240 x2):
        # 47.9 dB min PSNR (the bar is 45; 51.6 dB on a demo photo at x4), 2.6x faster on an AMX CPU.
        supports_bf16=True,
        size_multiple=up,
        tiling="supported",
        bytes_per_pixel=int(4 * 2 * per_px),
        # The deep trunk sees far: with 10 px of context tiles differed from the whole frame
        # by 39.7 dB on a real photo (6 blocks), with 16 px by 44.5 dB.
        tile_pad=16,
        hyperparameters=hyper,
    )


ARCHITECTURE = Architecture(name=FAMILY, kind="upscale", detect=detect, load=load)
