"""IFNet of the Practical-RIFE 4.x models (4.6; 4.2x with a feature encoder), written for silkpurse.

Architecture by Zhewei Huang et al. (RIFE, ECCV 2022; Practical-RIFE, hzwer/Practical-RIFE),
published under the MIT licence (Copyright (c) Megvii Inc.) together with the trained models.
This module is a re-implementation from reading ``train_log/IFNet_HDv3.py`` of those releases;
parameter names follow the upstream checkpoints so that ``flownet.pkl`` loads unchanged.

What changed from HDv3 (see ``ifnet_hdv3.py``):

* the timestep ``t`` is an input channel, so one pass gives any ``t`` in (0, 1);
* blocks are a strided stem, a stack of residual convs with a learned per-channel gain
  (``beta``) and LeakyReLU, and one transposed conv + pixel shuffle that emits flow (4),
  mask (1) and, in 4.2x, 8 feature channels handed to the next block;
* 4 blocks at 1/8..1 (4.6, 4.22) or 5 blocks at 1/16..1 (4.25, 4.26);
* 4.2x runs a small encoder (``encode``) on each frame once and warps its features with
  the images; in 4.6 the mask accumulates across blocks, in 4.2x each block replaces it.

Hyper-parameters (block count, widths, encoder channels) are read from tensor shapes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from silkpurse.errors import ModelError
from silkpurse.nn.architecture import Architecture, KeyCondition, ModelDescriptor, StateDict, load_weights
from silkpurse_interpolator.archs.warp import warp

FAMILY = "IFNet-v4"

#: Recognises the 4.x family (4.6-style and 4.2x-style alike): residual stacks with learned gains.
detect = KeyCondition.has_all(
    "block0.conv0.0.0.weight",
    "block0.convblock.0.conv.weight",
    "block0.convblock.0.beta",
    "block0.lastconv.0.weight",
)


def _conv_lrelu(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=True), nn.LeakyReLU(0.2, inplace=True))


def _resize(x: torch.Tensor, factor: float) -> torch.Tensor:
    if factor == 1.0:
        return x
    return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)


class ResConv(nn.Module):
    """``lrelu(conv(x) * beta + x)``: a residual conv with a learned per-channel gain."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, 1, 1)
        self.beta = nn.Parameter(torch.ones((1, c, 1, 1)))
        self.relu = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv(x) * self.beta + x)


class IFBlockV4(nn.Module):
    def __init__(self, in_planes: int, c: int, depth: int, out_channels: int) -> None:
        super().__init__()
        self.conv0 = nn.Sequential(_conv_lrelu(in_planes, c // 2, 2), _conv_lrelu(c // 2, c, 2))
        self.convblock = nn.Sequential(*(ResConv(c) for _ in range(depth)))
        # 4*k channels at 1/2 after the transposed conv, shuffled into k channels at full size.
        self.lastconv = nn.Sequential(nn.ConvTranspose2d(c, 4 * out_channels, 4, 2, 1), nn.PixelShuffle(2))

    def forward(self, x: torch.Tensor, flow: torch.Tensor | None, scale: float) -> torch.Tensor:
        x = _resize(x, 1.0 / scale)
        if flow is not None:
            x = torch.cat((x, _resize(flow, 1.0 / scale) / scale), 1)
        out = _resize(self.lastconv(self.convblock(self.conv0(x))), scale)
        # Only the flow channels are in pixels and must grow with the image.
        return torch.cat((out[:, :4] * scale, out[:, 4:]), 1)


class Head(nn.Module):
    """Per-frame feature encoder of 4.2x: stride-2 conv, two convs, transposed conv back to full size."""

    def __init__(self, hidden: int, out_channels: int) -> None:
        super().__init__()
        self.cnn0 = nn.Conv2d(3, hidden, 3, 2, 1)
        self.cnn1 = nn.Conv2d(hidden, hidden, 3, 1, 1)
        self.cnn2 = nn.Conv2d(hidden, hidden, 3, 1, 1)
        self.cnn3 = nn.ConvTranspose2d(hidden, out_channels, 4, 2, 1)
        self.relu = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.cnn0(x))
        x = self.relu(self.cnn1(x))
        x = self.relu(self.cnn2(x))
        return self.cnn3(x)


@dataclass(frozen=True)
class V4Config:
    widths: tuple[int, ...]
    depth: int
    """Residual convs per block."""
    block_out: int
    """Channels each block emits: 4 flow + 1 mask + carried features (4.2x) or padding (4.6)."""
    encoder: tuple[int, int] | None
    """(hidden, output) channels of the feature encoder; ``None`` for 4.6-style models."""

    @property
    def carried(self) -> int:
        return self.block_out - 5 if self.encoder else 0

    @property
    def enc(self) -> int:
        return self.encoder[1] if self.encoder else 0

    def in_planes(self, level: int) -> int:
        if level == 0:
            return 7 + 2 * self.enc  # img0, img1, t + both encodings
        return 8 + 2 * self.enc + self.carried + 4  # warped imgs, t, mask, warped encodings, feat + flow

    @property
    def version(self) -> str:
        if self.encoder is None:
            return "4.6-style"
        return f"4.2x-style ({len(self.widths)} blocks, encoder {self.enc} ch)"


#: Shapes of the official Practical-RIFE releases (widths, depth, block output, encoder), as
#: their checkpoints give them: for tests and for timing the architecture without the weights.
RELEASES: dict[str, V4Config] = {
    "4.6": V4Config(widths=(192, 128, 96, 64), depth=8, block_out=6, encoder=None),
    "4.22": V4Config(widths=(256, 192, 96, 48), depth=8, block_out=13, encoder=(16, 8)),
    "4.25": V4Config(widths=(192, 128, 96, 64, 32), depth=8, block_out=13, encoder=(16, 4)),
}


class IFNetV4(nn.Module):
    """Any-timestep interpolator. ``forward(img0, img1, t, scale)``: images (N, 3, H, W) in [0, 1],
    ``t`` (N,) tensor of timesteps."""

    supports_timestep = True

    def __init__(self, config: V4Config) -> None:
        super().__init__()
        self.config = config
        for i, c in enumerate(config.widths):
            self.add_module(f"block{i}", IFBlockV4(config.in_planes(i), c, config.depth, config.block_out))
        if config.encoder is not None:
            self.encode = Head(*config.encoder)

    def blocks(self) -> list[IFBlockV4]:
        return [getattr(self, f"block{i}") for i in range(len(self.config.widths))]

    def forward(self, img0: torch.Tensor, img1: torch.Tensor, t: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        n, _, h, w = img0.shape
        tmap = t.to(img0.dtype).view(n, 1, 1, 1).expand(n, 1, h, w)
        with_encoder = self.config.encoder is not None
        if with_encoder:
            feats = self.encode(torch.cat((img0, img1), 0))
            f0, f1 = feats[:n], feats[n:]
        levels = len(self.config.widths)
        flow = mask = carried = None
        warped0, warped1 = img0, img1
        for level, block in enumerate(self.blocks()):
            block_scale = 2 ** (levels - 1 - level) / scale
            if flow is None:
                parts = [img0, img1, f0, f1, tmap] if with_encoder else [img0, img1, tmap]
                out = block(torch.cat(parts, 1), None, block_scale)
                flow, mask = out[:, :4], out[:, 4:5]
            else:
                if with_encoder:
                    parts = [warped0, warped1, warp(f0, flow[:, :2]), warp(f1, flow[:, 2:4]), tmap, mask, carried]
                else:
                    parts = [warped0, warped1, tmap, mask]
                out = block(torch.cat(parts, 1), flow, block_scale)
                flow = flow + out[:, :4]
                # 4.6 accumulates the mask over blocks; 4.2x blocks predict it afresh.
                mask = out[:, 4:5] if with_encoder else mask + out[:, 4:5]
            carried = out[:, 5:]
            warped0 = warp(img0, flow[:, :2])
            warped1 = warp(img1, flow[:, 2:4])
        assert mask is not None  # the config always has at least one block
        weight = torch.sigmoid(mask)
        return warped0 * weight + warped1 * (1 - weight)


def config_from_state(state: StateDict) -> V4Config:
    """Read the hyper-parameters from tensor shapes (spandrel style)."""
    widths: list[int] = []
    while f"block{len(widths)}.conv0.1.0.weight" in state:
        widths.append(int(state[f"block{len(widths)}.conv0.1.0.weight"].shape[0]))
    depth = 0
    while f"block0.convblock.{depth}.conv.weight" in state:
        depth += 1
    block_out = int(state["block0.lastconv.0.weight"].shape[1]) // 4
    encoder = None
    if "encode.cnn0.weight" in state:
        encoder = (int(state["encode.cnn0.weight"].shape[0]), int(state["encode.cnn3.weight"].shape[1]))
    elif any(k.startswith("encode.") for k in state):
        raise ValueError("this 4.x checkpoint has a feature encoder of a layout silkpurse does not know (4.7-4.13?)")
    config = V4Config(widths=tuple(widths), depth=depth, block_out=block_out, encoder=encoder)
    for i in range(len(widths)):
        got = int(state[f"block{i}.conv0.0.0.weight"].shape[1])
        if got != config.in_planes(i):
            raise ValueError(
                f"block{i} takes {got} input channels, expected {config.in_planes(i)} for a {config.version} model"
            )
    if encoder is None and block_out < 5:
        raise ValueError(f"blocks emit {block_out} channels, fewer than flow + mask")
    return config


def build(state: StateDict) -> tuple[IFNetV4, dict[str, torch.Tensor]]:
    config = config_from_state(state)
    model = IFNetV4(config)
    keep = {f"block{i}" for i in range(len(config.widths))} | ({"encode"} if config.encoder else set())
    # Teacher and time-calibration modules only serve training.
    used = {k: v for k, v in state.items() if k.split(".")[0] in keep}
    return model, used


def load(state: StateDict) -> ModelDescriptor:
    try:
        model, used = build(state)
    except (ValueError, KeyError) as err:
        raise ModelError(
            f"checkpoint looks like {FAMILY} but does not fit its architecture ({err})",
            "use an official Practical-RIFE 4.6 or 4.2x flownet.pkl",
        ) from err
    load_weights(model, used, FAMILY)
    config = model.config
    return ModelDescriptor(
        network=model,
        family=FAMILY,
        kind="interpolate",
        scale=1,
        in_channels=3,
        out_channels=3,
        supports_half=True,
        # Not measured: no registry package ships real 4.x weights, and bf16 faithfulness of a flow
        # network can only be judged with trained weights on real frames (random weights give
        # meaningless flow). fp32 on the CPU until bench/bench_precision.py has scored one.
        supports_bf16=False,
        # Upstream pads to 32 (64 for 5-block models): the coarsest block needs 4 * 2**(blocks-1).
        size_multiple=max(32, 4 * 2 ** (len(config.widths) - 1)),
        tiling="discouraged",  # motion crosses tile borders: flow needs the whole frame
        supports_timestep=True,
        version=config.version,
        hyperparameters={
            "widths": list(config.widths),
            "depth": config.depth,
            "block_out": config.block_out,
            "encoder": list(config.encoder) if config.encoder else None,
        },
    )


ARCHITECTURE = Architecture(name=FAMILY, kind="interpolate", detect=detect, load=load)
