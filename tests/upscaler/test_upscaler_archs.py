"""Recognising checkpoints by their keys and inferring hyper-parameters from tensor shapes."""

from __future__ import annotations

import pytest
import torch

from silkpurse.errors import ModelError
from silkpurse.nn.architecture import ARCHITECTURES, load_model
from silkpurse_upscaler import archs  # noqa: F401  (registers the families)
from silkpurse_upscaler.archs.compact import SRVGGNetCompact
from silkpurse_upscaler.archs.rrdbnet import RRDBNet


@pytest.mark.parametrize(("num_feat", "num_conv", "upscale"), [(64, 16, 4), (16, 3, 2), (8, 1, 3)])
def test_compact_hyperparameters_are_inferred_from_shapes(num_feat: int, num_conv: int, upscale: int) -> None:
    net = SRVGGNetCompact(num_feat=num_feat, num_conv=num_conv, upscale=upscale)
    d = load_model(net.state_dict(), kind="upscale")
    assert d.family == "SRVGGNetCompact"
    assert (d.scale, d.in_channels, d.out_channels, d.size_multiple) == (upscale, 3, 3, 1)
    assert d.hyperparameters == {"num_feat": num_feat, "num_conv": num_conv, "upscale": upscale, "act_type": "prelu"}


@pytest.mark.parametrize(("scale", "multiple"), [(4, 1), (2, 2), (1, 4)])
def test_rrdbnet_scale_is_inferred_from_pixel_unshuffle_width(scale: int, multiple: int) -> None:
    net = RRDBNet(scale=scale, num_feat=16, num_block=2, num_grow_ch=8)
    d = load_model(net.state_dict(), kind="upscale")
    assert d.family == "RRDBNet"
    assert (d.scale, d.in_channels, d.size_multiple) == (scale, 3, multiple)
    assert d.hyperparameters == {"num_feat": 16, "num_block": 2, "num_grow_ch": 8, "scale": scale}


def test_rrdbnet_x2_variant_runs_and_doubles_the_size() -> None:
    d = load_model(RRDBNet(scale=2, num_feat=8, num_block=1, num_grow_ch=4).state_dict(), kind="upscale")
    with torch.inference_mode():
        assert d.network(torch.rand(1, 3, 12, 16)).shape == (1, 3, 24, 32)


def test_loaded_network_computes_like_the_source_network() -> None:
    torch.default_generator.manual_seed(0)  # not torch.manual_seed, which lazily imports torch._dynamo
    source = SRVGGNetCompact(num_feat=8, num_conv=2, upscale=4).eval()
    x = torch.rand(1, 3, 10, 12)
    with torch.inference_mode():
        assert torch.equal(load_model(source.state_dict(), kind="upscale").network(x), source(x))


def test_renamed_keys_are_an_unknown_checkpoint() -> None:
    state = {k.replace("body", "trunk"): v for k, v in SRVGGNetCompact(num_feat=8, num_conv=1).state_dict().items()}
    with pytest.raises(ModelError, match="unknown checkpoint"):
        ARCHITECTURES.detect(state, "upscale")


def test_bogus_keys_are_an_unknown_checkpoint() -> None:
    with pytest.raises(ModelError, match="unknown checkpoint"):
        load_model({"encoder.weight": torch.zeros(3, 3), "decoder.bias": torch.zeros(3)}, kind="upscale")


def test_truncated_rrdbnet_is_a_model_error() -> None:
    state = RRDBNet(num_feat=8, num_block=2, num_grow_ch=4).state_dict()
    del state["body.1.rdb3.conv5.weight"]
    with pytest.raises(ModelError, match="do not fit"):
        load_model(state, kind="upscale")


def test_wrong_shapes_are_a_model_error() -> None:
    state = SRVGGNetCompact(num_feat=8, num_conv=2).state_dict()
    state["body.2.weight"] = torch.zeros(8, 4, 3, 3)
    with pytest.raises(ModelError):
        load_model(state, kind="upscale")
