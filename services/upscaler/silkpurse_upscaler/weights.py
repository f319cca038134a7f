"""Reading checkpoints into plain state dicts, and blending two of them (Real-ESRGAN's DNI)."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch

from silkpurse.errors import ModelError

StateDict = dict[str, torch.Tensor]

#: Wrappers BasicSR (``params_ema`` preferred, as Real-ESRGAN's inference does) and other
#: trainers put around the network's state dict.
_WRAPPERS = ("params_ema", "params", "state_dict", "model")


def read_state_dict(path: Path) -> StateDict:
    """The network state dict in a ``.pth``/``.pt`` or ``.safetensors`` file, unwrapped."""
    if not path.is_file():
        raise ModelError(f"weights file {path} does not exist", "give the path of a .pth or .safetensors file")
    raw = _read_safetensors(path) if path.suffix.lower() == ".safetensors" else _read_torch(path)
    return _unwrap(raw, path)


def _read_torch(path: Path) -> object:
    try:
        # weights_only: a checkpoint is data; never run code from a downloaded pickle.
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, zipfile.BadZipFile, OSError) as err:
        raise ModelError(
            f"{path} is not a readable PyTorch checkpoint ({str(err).splitlines()[0][:160]})",
            "re-download it (`silkpurse models fetch NAME --force`) or give a plain state-dict .pth",
        ) from err


def _read_safetensors(path: Path) -> object:
    try:
        from safetensors.torch import load_file
    except ImportError as err:
        raise ModelError(
            f"{path.name} is a .safetensors file but the safetensors package is not installed",
            "pip install safetensors (or use the .pth release of the model)",
        ) from err
    try:
        return load_file(str(path), device="cpu")
    except Exception as err:  # safetensors raises its own SafetensorError, not importable by name
        raise ModelError(f"{path} is not a readable safetensors file ({err})", "re-download the file") from err


def _unwrap(raw: object, path: Path) -> StateDict:
    state = raw
    while isinstance(state, dict) and not _is_state_dict(state):
        inner = next((state[k] for k in _WRAPPERS if isinstance(state.get(k), dict)), None)
        if inner is None:
            break
        state = inner
    if not isinstance(state, dict) or not _is_state_dict(state):
        raise ModelError(
            f"{path} holds no network weights (expected a dict of tensors, optionally under params_ema/params)",
            "give a checkpoint saved with torch.save(model.state_dict())",
        )
    # DataParallel checkpoints prefix every key; the architectures know plain names.
    return {k.removeprefix("module."): v for k, v in state.items()}


def _is_state_dict(d: dict[object, object]) -> bool:
    return bool(d) and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in d.items())


def blend(a: StateDict, b: StateDict, weight_a: float) -> StateDict:
    """``weight_a * a + (1 - weight_a) * b``, tensor by tensor (Real-ESRGAN's ``dni``).

    Real-ESRGAN blends *weights*, not outputs: one network runs, at the cost of one.
    """
    if a.keys() != b.keys() or any(a[k].shape != b[k].shape for k in a):
        raise ModelError(
            "the two checkpoints to blend have different layers",
            "blend only realesr-general-x4v3 with realesr-general-wdn-x4v3",
        )
    return {k: (weight_a * a[k].float() + (1 - weight_a) * b[k].float()) for k in a}
