"""SRVGGNetCompact: the small VGG-style network of Real-ESRGAN's v3 models.

Used by ``realesr-animevideov3`` (16 body convs) and ``realesr-general-x4v3`` (32).
Written for silkpurse from the description in the Real-ESRGAN paper/README; the module layout
(``body`` as a flat list of conv / activation pairs) is kept so the official checkpoints load
by key: ``body.0`` is the first conv, ``body.1`` its activation, ..., the last ``body.N`` the
conv that feeds the pixel shuffle.
"""

from __future__ import annotations

import math
import re

import torch
import torch.nn.functional as F
from torch import nn

from silkpurse.errors import ModelError
from silkpurse.nn.architecture import Architecture, KeyCondition, ModelDescriptor, StateDict, load_weights

FAMILY = "SRVGGNetCompact"


def _activation(kind: str, num_feat: int) -> nn.Module:
    if kind == "prelu":
        return nn.PReLU(num_parameters=num_feat)
    if kind == "leakyrelu":
        return nn.LeakyReLU(negative_slope=0.1, inplace=True)
    return nn.ReLU(inplace=True)


class SRVGGNetCompact(nn.Module):
    """conv -> act -> (conv -> act) x num_conv -> conv -> pixel shuffle, plus a nearest-upsampled skip."""

    def __init__(
        self,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        num_feat: int = 64,
        num_conv: int = 16,
        upscale: int = 4,
        act_type: str = "prelu",
    ) -> None:
        super().__init__()
        self.upscale = upscale
        layers: list[nn.Module] = [nn.Conv2d(num_in_ch, num_feat, 3, 1, 1), _activation(act_type, num_feat)]
        for _ in range(num_conv):
            layers += [nn.Conv2d(num_feat, num_feat, 3, 1, 1), _activation(act_type, num_feat)]
        layers.append(nn.Conv2d(num_feat, num_out_ch * upscale * upscale, 3, 1, 1))
        self.body = nn.ModuleList(layers)
        self.upsampler = nn.PixelShuffle(upscale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for layer in self.body:
            out = layer(out)
        out = self.upsampler(out)
        # The network only learns the residual over a nearest-neighbour enlargement.
        return out + F.interpolate(x, scale_factor=self.upscale, mode="nearest")


_BODY_WEIGHT = re.compile(r"^body\.(\d+)\.weight$")


_HAS_BODY = KeyCondition.has_all("body.0.weight", "body.0.bias")


def detect(state: StateDict) -> bool:
    if not _HAS_BODY(state):
        return False
    # Every key must be a body parameter: that rules out other families that also have a body.
    return all(re.fullmatch(r"body\.\d+\.(weight|bias)", k) for k in state)


def load(state: StateDict) -> ModelDescriptor:
    convs = sorted(int(m.group(1)) for k, v in state.items() if (m := _BODY_WEIGHT.match(k)) and v.ndim == 4)
    if len(convs) < 2 or convs != list(range(0, 2 * len(convs) - 1, 2)):
        raise ModelError(
            f"checkpoint looks like {FAMILY} but its conv layers are not body.0, body.2, ... ({len(convs)} found)",
            "check that the file is a complete Real-ESRGAN v3 checkpoint",
        )
    first, last = state["body.0.weight"], state[f"body.{convs[-1]}.weight"]
    num_feat, in_ch = int(first.shape[0]), int(first.shape[1])
    out_ch = in_ch  # the released models map RGB to RGB; the shuffle width gives the scale
    scale = math.isqrt(int(last.shape[0]) // out_ch)
    if scale < 1 or scale * scale * out_ch != last.shape[0]:
        raise ModelError(
            f"cannot infer the scale of this {FAMILY} checkpoint (last conv has {last.shape[0]} outputs)",
            "only checkpoints whose output channels equal their input channels are supported",
        )
    # Only PReLU has parameters; the released models all use it. Without them we assume
    # leaky ReLU (the other option of the original code that people train with).
    act_type = "prelu" if "body.1.weight" in state else "leakyrelu"
    network = SRVGGNetCompact(
        num_in_ch=in_ch, num_out_ch=out_ch, num_feat=num_feat, num_conv=len(convs) - 2, upscale=scale, act_type=act_type
    )
    hyper = {"num_feat": num_feat, "num_conv": len(convs) - 2, "upscale": scale, "act_type": act_type}
    load_weights(network, state, FAMILY)
    return ModelDescriptor(
        network=network,
        family=FAMILY,
        kind="upscale",
        scale=scale,
        in_channels=in_ch,
        out_channels=out_ch,
        supports_half=True,
        # bf16 vs fp32 on real frames (bench/bench_precision.py, animevideov3, vtest.avi 320x240 x2):
        # 54.5 dB min PSNR (the bar is 45), 4.1x faster on an AMX CPU: the CPU default there.
        supports_bf16=True,
        size_multiple=1,
        tiling="supported",
        tile_pad=10,  # Real-ESRGAN's default; tiles then match the whole frame at ~60 dB
        # conv input + output + activation output at num_feat channels, then the shuffle
        # branch at out_ch * scale^2; doubled for allocator slack and conv workspaces.
        bytes_per_pixel=4 * 2 * (3 * num_feat + 4 * out_ch * scale * scale),
        hyperparameters=hyper,
    )


ARCHITECTURE = Architecture(name=FAMILY, kind="upscale", detect=detect, load=load)
