"""Extract stage: decode a video into frame batches through a pipe (no image files).

Frames come out display-oriented (ffmpeg applies the rotation), in full-range RGB converted
with the source's own matrix and range, 8-bit (``rgb24``) for 8-bit sources and 16-bit
(``rgb48le``) for deeper ones so 10/12-bit precision survives until the encoder.
Variable-frame-rate input is converted to a constant rate (``VideoInfo.rate``) by the ``fps``
filter, which duplicates or drops frames on the source timeline so audio stays in sync.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import ffmpeg
import numpy as np

from silkpurse.batch import FrameBatch
from silkpurse.errors import InputError, MediaError
from silkpurse.media.ffmpeg_process import FfmpegProcess
from silkpurse.media.probe import VideoInfo

#: Frames may come up short by this fraction before the input counts as truncated (some
#: containers over-report packets that carry no displayable frame).
_TRUNCATION_TOLERANCE = 0.02


@dataclass(frozen=True)
class RawFormat:
    pix_fmt: str
    dtype: type[np.generic]
    channels: int = 3

    @classmethod
    def for_depth(cls, bit_depth: int) -> RawFormat:
        return cls("rgb48le", np.uint16) if bit_depth > 8 else cls("rgb24", np.uint8)

    def frame_bytes(self, width: int, height: int) -> int:
        return width * height * self.channels * np.dtype(self.dtype).itemsize


def decode_graph(info: VideoInfo, raw: RawFormat) -> object:
    """The ffmpeg-python graph that decodes ``info``'s video to raw RGB on stdout."""
    video = ffmpeg.input(str(info.path))["v:0"]
    if info.vfr:
        video = video.filter("fps", fps=f"{info.rate.numerator}/{info.rate.denominator}", round="near")
    video = video.filter(
        "scale",
        in_color_matrix=info.colour.scale_matrix,
        in_range=info.colour.range,
        out_range="pc",
        flags="accurate_rnd+full_chroma_int+full_chroma_inp",
    )
    return video.output("pipe:", format="rawvideo", pix_fmt=raw.pix_fmt, fps_mode="passthrough")


def extract_batches(info: VideoInfo, batch_size: int, meta: dict[str, object] | None = None) -> Iterator[FrameBatch]:
    """Yield consecutive batches of ``batch_size`` frames (the last may be shorter)."""
    raw = RawFormat.for_depth(info.bit_depth)
    frame_bytes = raw.frame_bytes(info.width, info.height)
    process = FfmpegProcess(decode_graph(info, raw), pipe_stdout=True)
    stdout = process.proc.stdout
    assert stdout is not None
    index = 0
    finished = False
    try:
        while True:
            frames = np.empty((batch_size, info.height, info.width, raw.channels), dtype=raw.dtype)
            count = _read_frames(stdout, frames, frame_bytes)
            if count:
                yield FrameBatch(frames[:count], first_index=index, rate=info.rate, meta=dict(meta or {}))
                index += count
            if count < batch_size:
                break
        finished = True
    finally:
        if not finished:
            process.kill()
    code = process.wait()
    if code != 0:
        raise MediaError(f"decoding {info.path} failed ({process.last_error()})", "the file may be corrupt")
    if index == 0 or index < info.frame_count * (1 - _TRUNCATION_TOLERANCE):
        raise InputError(
            f"{info.path} is truncated or corrupt: decoded {index} of {info.frame_count} frames "
            f"({process.last_error()})",
            "re-download or re-export the source video",
        )


def _read_frames(stream: object, frames: np.ndarray, frame_bytes: int) -> int:
    """Fill ``frames`` from the pipe; return how many whole frames were read."""
    buffer = frames.data.cast("B")
    filled = 0
    while filled < len(buffer):
        got = stream.readinto(buffer[filled:])  # type: ignore[attr-defined]
        if not got:
            break
        filled += got
    return filled // frame_bytes
