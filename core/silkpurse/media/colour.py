"""Colour facts of a video stream, explicit rather than assumed.

ffmpeg names (``bt709``, ``smpte170m``, ``tv``/``pc`` ...) are used throughout, since they are
what both ``ffprobe`` reports and the ``scale`` filter and encoders accept.
"""

from __future__ import annotations

from dataclasses import dataclass

# ffprobe colour-matrix names -> the names the `scale` filter takes for the same matrix.
_SCALE_MATRIX = {
    "bt709": "bt709",
    "smpte170m": "smpte170m",
    "bt470bg": "bt470bg",
    "fcc": "fcc",
    "smpte240m": "smpte240m",
    "bt2020nc": "bt2020",
    "bt2020c": "bt2020",
}
_RGB_PIX_FMTS = ("rgb", "bgr", "gbr", "argb", "abgr", "0rgb", "0bgr")
_JPEG_PIX_FMTS = {"yuvj420p", "yuvj422p", "yuvj444p", "yuvj440p", "yuvj411p"}


@dataclass(frozen=True)
class Colour:
    """How a stream's YUV samples map to RGB, and how the result is displayed."""

    matrix: str
    """YUV<->RGB matrix, e.g. ``bt709`` or ``smpte170m`` (BT.601)."""
    range: str
    """``tv`` (limited, 16-235) or ``pc`` (full)."""
    primaries: str
    transfer: str
    guessed: bool = False
    """True when the source was untagged and the matrix was chosen from the frame size."""

    @classmethod
    def from_stream(cls, stream: dict[str, object], height: int) -> Colour:
        """Read ffprobe's tags; untagged streams get what players assume (BT.709 from 720 lines
        up, BT.601 below; limited range unless the pixel format is a JPEG one)."""
        hd = height >= 720
        pix_fmt = str(stream.get("pix_fmt", ""))
        if pix_fmt.startswith(_RGB_PIX_FMTS) or stream.get("color_space") == "gbr":
            # RGB sources have no YUV matrix; the output (YUV) gets what players assume for the size.
            stream = {}
        tagged_matrix = _known(stream.get("color_space"))
        matrix = tagged_matrix or ("bt709" if hd else "smpte170m")
        range_ = _known(stream.get("color_range")) or ("pc" if pix_fmt in _JPEG_PIX_FMTS else "tv")
        primaries = _known(stream.get("color_primaries")) or ("bt709" if hd else "smpte170m")
        transfer = _known(stream.get("color_transfer")) or ("bt709" if hd else "smpte170m")
        return cls(matrix, range_, primaries, transfer, guessed=tagged_matrix is None)

    @property
    def scale_matrix(self) -> str:
        """The matrix name the ``scale`` filter uses."""
        return _SCALE_MATRIX.get(self.matrix, "bt709")

    def encoder_tags(self) -> dict[str, str]:
        """Output options that tag the encoded stream with these colour facts."""
        return {
            "colorspace": self.matrix,
            "color_primaries": self.primaries,
            "color_trc": self.transfer,
            "color_range": self.range,
        }


def _known(value: object) -> str | None:
    text = str(value) if value is not None else ""
    return None if text in ("", "unknown", "reserved", "unspecified") else text
