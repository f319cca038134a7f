"""The upscaler's catalogue in the core registry: names, sources, offline builds, downloads."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from silkpurse.errors import ModelError
from silkpurse.models import REGISTRY, ensure_weights, fetch

NAMES = {
    "realesr-animevideov3",
    "realesrgan-x4plus",
    "realesrgan-x4plus-anime",
    "realesr-general-x4v3",
    "realesr-general-wdn-x4v3",
    "realesrgan-x2plus",
}


def test_every_catalogue_model_is_registered_with_its_official_release() -> None:
    specs = {s.name: s for s in REGISTRY.all("upscale")}
    assert specs.keys() >= NAMES
    for name in NAMES:
        spec = specs[name]
        assert spec.url and spec.url.startswith("https://github.com/xinntao/Real-ESRGAN/releases/download/")
        assert spec.licence == "BSD-3-Clause" and spec.scale in (2, 4)
        assert spec.sha256 is not None and len(spec.sha256) == 64


def test_models_in_the_ncnn_wheel_have_offline_builders() -> None:
    offline = {s.name for s in REGISTRY.all("upscale") if s.offline is not None}
    assert offline == {"realesr-animevideov3", "realesrgan-x4plus", "realesrgan-x4plus-anime"}


def test_unknown_model_name_is_a_model_error() -> None:
    from silkpurse_upscaler.engine import Upscaler

    with pytest.raises(ModelError, match="unknown upscale model 'realesrgan-x5'"):
        Upscaler("realesrgan-x5", device="cpu")


def test_offline_weights_are_built_once_into_the_models_dir(private_models_dir: Path) -> None:
    spec = REGISTRY.get("realesr-animevideov3")
    path = ensure_weights(spec)
    assert path.parent == private_models_dir and path.name == "realesr-animevideov3.pth"
    assert ensure_weights(spec).stat().st_mtime_ns == path.stat().st_mtime_ns


def test_model_without_offline_source_asks_for_a_fetch(private_models_dir: Path) -> None:
    with pytest.raises(ModelError, match="(?i)silkpurse models fetch realesrgan-x2plus"):
        ensure_weights(REGISTRY.get("realesrgan-x2plus"))


def test_fetch_from_an_unreachable_url_is_a_model_error(
    private_models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SILKPURSE_DOWNLOAD_TIMEOUT_S", "5")
    spec = dataclasses.replace(REGISTRY.get("realesrgan-x2plus"), url="http://127.0.0.1:9/")
    with pytest.raises(ModelError, match="could not download realesrgan-x2plus"):
        fetch(spec)
    assert not any(private_models_dir.iterdir())  # no half-written file left behind
