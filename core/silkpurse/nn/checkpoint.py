"""One checkpoint reader for every model stage: a weights file in, a plain state dict out.

``.pth``/``.pt``/``.pkl``/``.ckpt`` are read with ``torch.load(weights_only=True)`` (a
checkpoint is data; a downloaded pickle must never run code), ``.safetensors`` with the
safetensors package. Trainers' wrappers (BasicSR's ``params_ema``/``params``, Lightning's
``state_dict``, ``model``) are unwrapped and DataParallel's ``module.`` prefix (RIFE's
``flownet.pkl``) is stripped, so the architectures only ever see their plain key names.
"""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch

from silkpurse.errors import ModelError

StateDict = dict[str, torch.Tensor]

#: Wrappers around a network's state dict, in order of preference: ``params_ema`` (the
#: exponential moving average) first, as Real-ESRGAN's own inference does.
WRAPPERS = ("params_ema", "params", "state_dict", "model")
#: The prefix ``torch.nn.DataParallel`` puts on every key of the model it wraps.
PARALLEL_PREFIX = "module."


def read_state_dict(path: Path) -> StateDict:
    """The network state dict stored in ``path``, unwrapped and without ``module.`` prefixes."""
    if not path.is_file():
        raise ModelError(
            f"weights file {path} does not exist", "give the path of a .pth, .pkl or .safetensors weights file"
        )
    raw = _read_safetensors(path) if path.suffix.lower() == ".safetensors" else _read_torch(path)
    return strip_prefix(_unwrap(raw, path))


def strip_prefix(state: Mapping[str, torch.Tensor]) -> StateDict:
    """Drop the ``module.`` prefix DataParallel training leaves on every key (if present)."""
    return {k.removeprefix(PARALLEL_PREFIX): v for k, v in state.items()}


def _read_torch(path: Path) -> object:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, zipfile.BadZipFile, OSError) as err:
        first_line = (str(err).splitlines() or [type(err).__name__])[0][:160]
        raise ModelError(
            f"{path} is not a readable PyTorch checkpoint ({first_line})",
            "re-download it (`silkpurse models fetch NAME --force`) or give a plain state-dict file",
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


def _unwrap(raw: object, path: Path) -> Mapping[str, torch.Tensor]:
    state = raw
    while isinstance(state, dict) and not _is_state_dict(state):
        inner = next((state[k] for k in WRAPPERS if isinstance(state.get(k), dict)), None)
        if inner is None:
            break
        state = inner
    if not isinstance(state, dict) or not _is_state_dict(state):
        raise ModelError(
            f"{path} holds no network weights (expected a dict of tensors, optionally under {'/'.join(WRAPPERS)})",
            "give a checkpoint saved with torch.save(model.state_dict())",
        )
    return state


def _is_state_dict(d: dict[object, object]) -> bool:
    return bool(d) and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in d.items())
