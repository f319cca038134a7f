"""What the encoder can write: video codecs with their quality ranges and presets, and the
output containers. Plain data in the core, so the job plan validates encode options without
the encoder stage installed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from silkpurse.errors import OptionsError


@dataclass(frozen=True)
class VideoCodec:
    encoder: str
    default_crf: int
    crf_range: tuple[int, int]
    presets: tuple[str, ...]
    default_preset: str


X26X_PRESETS = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
    "placebo",
)
CODECS: dict[str, VideoCodec] = {
    "h264": VideoCodec("libx264", 18, (0, 51), X26X_PRESETS, "medium"),
    "h265": VideoCodec("libx265", 20, (0, 51), X26X_PRESETS, "medium"),
    "av1": VideoCodec("libsvtav1", 30, (1, 63), tuple(str(p) for p in range(14)), "8"),
}
CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}


@dataclass(frozen=True)
class EncodeOptions:
    codec: str = "h264"
    crf: int | None = None
    preset: str | None = None
    ten_bit: bool | None = None
    """10-bit output; ``None`` follows the source's bit depth."""

    def validate(self) -> None:
        codec = CODECS.get(self.codec)
        if codec is None:
            raise OptionsError(f"unknown codec {self.codec!r}", f"choose one of: {', '.join(CODECS)}")
        low, high = codec.crf_range
        if self.crf is not None and not low <= self.crf <= high:
            raise OptionsError(f"--crf {self.crf} is out of range for {self.codec}", f"use {low}..{high}")
        if self.preset is not None and self.preset not in codec.presets:
            raise OptionsError(
                f"unknown preset {self.preset!r} for {self.codec}", f"choose one of: {', '.join(codec.presets)}"
            )


def container_for(output: Path) -> str:
    container = CONTAINERS.get(output.suffix.lower())
    if container is None:
        raise OptionsError(
            f"cannot write {output.suffix or 'files without an extension'} files", "name the output .mp4, .mov or .mkv"
        )
    return container
