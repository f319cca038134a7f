"""The shared model layer (silkpurse.nn and models.resolve_weights), independent of any one stage."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from silkpurse.errors import ModelError
from silkpurse.models import looks_like_path, resolve_weights, weights_sha256
from silkpurse.nn.architecture import ARCHITECTURES, KeyCondition, load_model
from silkpurse.nn.checkpoint import WRAPPERS, read_state_dict

FAMILIES = {"SRVGGNetCompact", "RRDBNet", "IFNet-HDv3", "IFNet-v4"}


def _tiny_state() -> dict[str, torch.Tensor]:
    return {"body.0.weight": torch.ones(4, 3, 3, 3), "body.0.bias": torch.zeros(4)}


def test_core_top_level_modules_import_without_torch() -> None:
    code = (
        "import importlib, pkgutil, sys, silkpurse\n"
        "for m in pkgutil.iter_modules(silkpurse.__path__):\n"
        "    if m.name != 'nn': importlib.import_module('silkpurse.' + m.name)\n"
        "sys.exit('torch' in sys.modules)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("wrapper", [*WRAPPERS, None])
def test_every_wrapper_and_the_dataparallel_prefix_are_removed(tmp_path: Path, wrapper: str | None) -> None:
    state = {f"module.{k}": v for k, v in _tiny_state().items()}
    path = tmp_path / "net.pkl"
    torch.save({wrapper: state, "epoch": 3} if wrapper else state, path)
    loaded = read_state_dict(path)
    assert loaded.keys() == _tiny_state().keys()


def test_a_pickle_without_tensors_is_a_model_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.pth"
    torch.save({"params": {"lr": 0.1}}, path)
    with pytest.raises(ModelError, match="holds no network weights"):
        read_state_dict(path)


def test_every_family_is_registered_once_through_the_entry_points() -> None:
    # A fresh process that imported no stage: load_model finds the families by entry point.
    code = (
        "from silkpurse.nn.architecture import ARCHITECTURES, load_architectures\n"
        "load_architectures()\n"
        "print(','.join(a.name for a in ARCHITECTURES.all()))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    names = out.strip().split(",")
    assert set(names) == FAMILIES and len(names) == len(FAMILIES)
    assert {a.name for a in ARCHITECTURES.all("interpolate")} <= {"IFNet-HDv3", "IFNet-v4"}


def test_unknown_checkpoint_is_one_line_naming_the_known_families() -> None:
    with pytest.raises(ModelError, match="unknown checkpoint") as err:
        load_model({"encoder.weight": torch.zeros(3, 3), "decoder.bias": torch.zeros(3)})
    message = str(err.value)
    assert "\n" not in message and all(name in message for name in FAMILIES)


def test_a_checkpoint_of_the_other_kind_says_what_it_is() -> None:
    rife_keys = ("conv0.0.0.weight", "convblock0.0.0.weight", "conv1.2.weight", "conv2.2.weight")
    state = {f"module.block0.{k}": torch.zeros(1) for k in rife_keys}
    with pytest.raises(ModelError, match="unknown checkpoint: its keys are those of IFNet-HDv3, an interpolate model"):
        load_model(state, kind="upscale")


def test_key_conditions_nest_like_spandrels() -> None:
    condition = KeyCondition.has_all("a", KeyCondition.has_any("b", "c"))
    assert condition({"a": 1, "c": 2}) and not condition({"a": 1}) and not condition({"b": 1, "c": 1})


def test_names_and_paths_are_told_apart(tmp_path: Path) -> None:
    assert not looks_like_path("rife-hdv3", "interpolate")
    assert looks_like_path("rife-hdv3", "upscale") is False  # unknown name: an error later, not a path
    assert all(looks_like_path(p, "upscale") for p in ("x.pth", "x.safetensors", "dir/x", tmp_path, "flownet.pkl"))


def test_resolving_a_path_hashes_the_file(tmp_path: Path) -> None:
    import hashlib

    path = tmp_path / "my-net.pth"
    torch.save(_tiny_state(), path)
    resolved = resolve_weights(str(path), "upscale")
    assert (resolved.name, resolved.path, resolved.spec) == ("my-net", path, None)
    assert resolved.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    torch.save({"params": _tiny_state()}, path)  # rewritten in place: the memo must not serve the old digest
    assert weights_sha256(path) == hashlib.sha256(path.read_bytes()).hexdigest() != resolved.sha256


def test_unknown_names_and_missing_files_are_one_line_model_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="unknown upscale model 'nope'.*realesr-animevideov3") as err:
        resolve_weights("nope", "upscale")
    assert "\n" not in str(err.value)
    with pytest.raises(ModelError, match="unknown interpolation model 'realesr-animevideov3'"):
        resolve_weights("realesr-animevideov3", "interpolate")
    with pytest.raises(ModelError, match="does not exist"):
        resolve_weights(tmp_path / "missing.pkl", "interpolate")
