"""Compiled forms of a network (``silkpurse.nn.accel``) are used only where they agree with the
eager network (>= 45 dB on the first input of each shape); otherwise the engine stays eager."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from silkpurse.errors import OptionsError
from silkpurse.nn.accel import MIN_AGREEMENT_DB, Accelerated, check_backend


@pytest.fixture
def network() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), nn.Sigmoid()).eval()


def frame(size: int = 16) -> torch.Tensor:
    return torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(size))


def test_a_form_that_agrees_is_used_per_input_shape(network: nn.Module) -> None:
    built: list[tuple[int, ...]] = []

    def build(net: nn.Module, inputs: tuple[torch.Tensor, ...]) -> nn.Module:
        built.append(tuple(inputs[0].shape))
        return net  # the same maths: agrees exactly

    fast = Accelerated(network, "compile", builder=build)
    with torch.inference_mode():
        for size in (16, 16, 24):
            assert torch.equal(fast(frame(size)), network(frame(size)))
    assert built == [(1, 3, 16, 16), (1, 3, 24, 24)]  # built once per shape
    assert all(db == float("inf") for db in fast.agreement.values())


def test_a_form_that_disagrees_is_not_used(network: nn.Module) -> None:
    fast = Accelerated(network, "compile", builder=lambda net, _: lambda x: net(x) + 0.02)
    with torch.inference_mode():
        assert torch.equal(fast(frame()), network(frame()))
    assert list(fast.agreement.values())[0] < MIN_AGREEMENT_DB


def test_a_form_that_cannot_be_built_leaves_the_network_eager(network: nn.Module) -> None:
    def broken(net: nn.Module, inputs: tuple[torch.Tensor, ...]) -> nn.Module:
        raise RuntimeError("unsupported operator")

    fast = Accelerated(network, "tensorrt", builder=broken)
    with torch.inference_mode():
        assert torch.equal(fast(frame()), network(frame()))


def test_backends_are_checked_before_any_work() -> None:
    with pytest.raises(OptionsError, match="unknown backend"):
        check_backend("onnx", torch.device("cpu"))
    with pytest.raises(OptionsError, match="needs a CUDA device"):
        check_backend("tensorrt", torch.device("cpu"))
    assert check_backend("compile", torch.device("cpu")) == "compile"
