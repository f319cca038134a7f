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
from silkpurse.media.sources import file_url, input_options
from silkpurse.settings import get_settings

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


def decode_graph(info: VideoInfo, raw: RawFormat, first: int = 0) -> object:
    """The ffmpeg-python graph that decodes ``info``'s video, from frame ``first``, to raw RGB
    on stdout. A constant-rate source is entered by an accurate seek half a frame before
    ``first`` (ffmpeg decodes from the keyframe before it and drops the frames in between, so
    the result is frame-exact and cheap); a variable-rate one is decoded from its start,
    since its constant-rate timeline is only defined from there (the caller skips frames)."""
    seek = {}
    if first > 0 and not info.vfr:
        seek["ss"] = f"{info.start_time + (first - 0.5) / float(info.rate):.6f}"
    # Only the probed file, read by the probed demuxer. The probe checked the declared frame size;
    # the decoder refuses frames far over it too (a stream whose size changes mid-way).
    limit = 2 * max(get_settings().max_pixels, info.coded_width * info.coded_height)
    source = input_options(info.demuxer, max_pixels=limit)
    video = ffmpeg.input(file_url(info.path), **source, **seek)["v:0"]
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
    """Yield consecutive batches of ``batch_size`` frames of the whole video (the last may be shorter)."""
    ranges = [(first, min(first + batch_size, info.frame_count)) for first in range(0, info.frame_count, batch_size)]
    yield from decode_ranges(info, ranges, meta=meta)


def decode_ranges(
    info: VideoInfo, ranges: list[tuple[int, int]], *, meta: dict[str, object] | None = None
) -> Iterator[FrameBatch]:
    """Yield one batch per consecutive ``[first, end)`` range of frames, from one decode.

    A source that ends up to 2 % short of its probed frame count (some containers count
    packets that carry no displayable frame) has its last frame held to the planned count, so
    the timeline every later stage planned with stays true; shorter than that is truncation.
    """
    if not ranges:
        return
    start, stop = ranges[0][0], ranges[-1][1]
    raw = RawFormat.for_depth(info.bit_depth)
    frame_bytes = raw.frame_bytes(info.width, info.height)
    process = FfmpegProcess(decode_graph(info, raw, start), pipe_stdout=True)
    stdout = process.proc.stdout
    assert stdout is not None
    skip = start if info.vfr else 0
    decoded = 0
    last: np.ndarray | None = None
    try:
        scratch = np.empty((1, info.height, info.width, raw.channels), dtype=raw.dtype)
        for _ in range(skip):
            if not _read_frames(stdout, scratch, frame_bytes):
                break
        for first, end in ranges:
            frames = np.empty((end - first, info.height, info.width, raw.channels), dtype=raw.dtype)
            count = _read_frames(stdout, frames, frame_bytes)
            decoded += count
            if count < len(frames):
                _check_decoder(process, info)
                frames = _hold_last(frames, count, last, info, start + decoded, stop, process.last_error())
            last = frames[-1]
            yield FrameBatch(frames, first_index=first, rate=info.rate, meta=dict(meta or {}))
    finally:
        process.kill()  # done, abandoned or failed: ffmpeg may still be decoding past the range


def _check_decoder(process: FfmpegProcess, info: VideoInfo) -> None:
    """The pipe ended early: a decoder that failed says why."""
    if process.wait() != 0:
        raise MediaError(f"decoding {info.path} failed ({process.last_error()})", "the file may be corrupt")


def _hold_last(
    frames: np.ndarray, count: int, last: np.ndarray | None, info: VideoInfo, reached: int, stop: int, detail: str
) -> np.ndarray:
    """Fill a short read with the last decoded frame, when the shortfall is within tolerance."""
    missing = stop - reached
    if count == 0 and last is None or missing > info.frame_count * _TRUNCATION_TOLERANCE:
        raise InputError(
            f"{info.path} is truncated or corrupt: decoding stopped at frame {reached} of {info.frame_count} "
            f"({detail})",
            "re-download or re-export the source video",
        )
    frames[count:] = frames[count - 1] if count else last
    return frames


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
