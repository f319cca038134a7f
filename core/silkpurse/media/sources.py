"""How silkpurse names files to ffmpeg and ffprobe, so that a name is only ever a local file.

- Every path is passed as ``file:<absolute path>``: a name such as ``12:30.mp4``, ``pipe:0.mp4``,
  ``-i.mp4`` or ``-report.mp4`` is then a file name, never a protocol or an option.
- Every input is opened with ``-protocol_whitelist file`` and ``-format_whitelist`` of real
  container demuxers (:data:`CONTAINER_DEMUXERS`): playlists and lists of other files (``hls``,
  ``concat``/ffconcat, ``image2`` patterns, ``tee``, ``lavfi``, ``sdp``, ``rtsp``, DASH manifests...)
  fail to open, so a file named ``talk.mp4`` that lists ``/etc/passwd`` or another video is refused
  instead of read. (ffmpeg's ``-safe`` and ``-allowed_extensions`` only narrow what concat and HLS
  may open; refusing those demuxers altogether makes them moot.)
- After probing, the decode is pinned to the probed demuxer (``-f``), so what is read is what was
  probed.
"""

from __future__ import annotations

import os
from pathlib import Path

#: Demuxers of real containers and elementary streams that read only the one file they are given.
#: A demuxer that can open other files or URLs (playlists, manifests, concat lists, image
#: sequences, devices, protocols) is deliberately absent.
CONTAINER_DEMUXERS: tuple[str, ...] = (
    "mov",  # mov,mp4,m4a,3gp,3g2,mj2
    "matroska",  # matroska,webm
    "avi",
    "mpegts",
    "mpeg",  # MPEG program stream (.mpg, .vob)
    "mpegvideo",  # raw MPEG-1/2 video
    "flv",
    "asf",  # .wmv, .asf
    "ogg",
    "mxf",
    "ivf",
    "h264",
    "hevc",
    "m4v",  # raw MPEG-4 part 2 video
    "yuv4mpegpipe",  # .y4m
    "nut",
    "dv",
    "gif",
    # Audio-only containers: accepted so that the message is "has no video stream".
    "wav",
    "mp3",
    "flac",
)


def file_url(path: Path | str) -> str:
    """``file:`` + the absolute path: never an option, a protocol or a pattern."""
    return "file:" + os.path.abspath(path)


def demuxer_of(format_name: str) -> str:
    """The name to pin with ``-f`` for ffprobe's ``format_name`` (e.g. ``mov`` for ``mov,mp4,...``)."""
    return format_name.split(",")[0]


def is_container(format_name: str) -> bool:
    return any(name in CONTAINER_DEMUXERS for name in format_name.split(","))


def input_options(demuxer: str | None = None, *, max_pixels: int | None = None) -> dict[str, str]:
    """ffmpeg/ffprobe options for opening one local input file safely (as ffmpeg-python kwargs)."""
    options = {"protocol_whitelist": "file", "format_whitelist": ",".join(CONTAINER_DEMUXERS)}
    if demuxer:
        options["f"] = demuxer
    if max_pixels:
        options["max_pixels"] = str(max_pixels)
    return options


def input_args(path: Path | str) -> list[str]:
    """The same, as raw command-line arguments ending in ``-i file:<path>``."""
    args: list[str] = []
    for name, value in input_options().items():
        args += [f"-{name}", value]
    return [*args, "-i", file_url(path)]
