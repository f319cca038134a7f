"""What a video file holds: ``silkpurse probe`` and the facts every stage plans with."""

from __future__ import annotations

import math
import re
import statistics
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, NoReturn

import ffmpeg

from silkpurse.errors import InputError
from silkpurse.media.colour import Colour
from silkpurse.media.sources import demuxer_of, file_url, input_options, is_container
from silkpurse.settings import Settings, env_name, get_settings

_HIGH_DEPTH = re.compile(r"(9|10|12|14|16)(le|be)$")


@dataclass(frozen=True)
class AudioStream:
    index: int
    codec: str
    channels: int
    sample_rate: int
    language: str | None


@dataclass(frozen=True)
class SubtitleStream:
    index: int
    codec: str
    language: str | None

    @property
    def is_text(self) -> bool:
        return self.codec in {"subrip", "srt", "ass", "ssa", "mov_text", "webvtt", "text"}


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    container: str
    width: int
    """Display width, after rotation."""
    height: int
    """Display height, after rotation."""
    coded_width: int
    coded_height: int
    rotation: int
    """Display-matrix rotation as ffprobe reports it (0, 90, 180, 270); decoding applies it."""
    codec: str
    pix_fmt: str
    bit_depth: int
    rate: Fraction
    """Exact constant frame rate of the frames the extractor yields."""
    frame_count: int
    """Frames the extractor yields (after constant-rate conversion of VFR input)."""
    duration: float
    """Video duration in seconds."""
    start_time: float
    """Video start relative to the container's start, kept on output for A/V sync."""
    vfr: bool
    colour: Colour
    audio: list[AudioStream] = field(default_factory=list)
    subtitles: list[SubtitleStream] = field(default_factory=list)
    keyframes: tuple[int, ...] = ()
    """Indices (in the frames the extractor yields) of the source's keyframes: where encoders
    put scene cuts, and where a chunk can start without decoding from far before it."""

    @property
    def demuxer(self) -> str:
        """The probed demuxer, to pin with ``-f`` whenever this file is read again."""
        return demuxer_of(self.container)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"] = str(self.path)
        data["rate"] = f"{self.rate.numerator}/{self.rate.denominator}"
        data["fps"] = float(self.rate)
        data["colour"]["bt601"] = self.colour.matrix in {"smpte170m", "bt470bg"}
        data["keyframes"] = list(self.keyframes)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> VideoInfo:
        """The facts back from :meth:`to_json` (a runner hands them to a stage in another process)."""
        colour = {k: v for k, v in data["colour"].items() if k != "bt601"}
        fields = {k: v for k, v in data.items() if k not in ("fps", "colour", "audio", "subtitles")}
        return cls(
            **{
                **fields,
                "path": Path(data["path"]),
                "rate": Fraction(data["rate"]),
                "keyframes": tuple(data.get("keyframes", ())),
            },
            colour=Colour(**colour),
            audio=[AudioStream(**a) for a in data.get("audio", [])],
            subtitles=[SubtitleStream(**s) for s in data.get("subtitles", [])],
        )


def probe(path: Path, *, limits: bool = True) -> VideoInfo:
    """Probe ``path``; a missing, empty, non-video or unsafe input raises :class:`InputError`.

    With ``limits`` (the default, for inputs) the settings' limits on frame size, frame count,
    duration, rate and variable-rate expansion are checked here, before any work; the frame size
    is checked from the header, before any frame is decoded. ``limits=False`` is for files
    silkpurse wrote itself. Only the named local file is read: see :mod:`silkpurse.media.sources`.
    """
    _check_readable(path)
    settings = get_settings()
    max_pixels = settings.max_pixels if limits else None
    meta = _ffprobe(path, **input_options(max_pixels=max_pixels))
    video = _video_stream(meta, path, settings if limits else None)
    demuxer = demuxer_of(str(meta["format"]["format_name"]))
    packets = _ffprobe(
        path,
        select_streams=str(video["index"]),
        show_entries="packet=pts,dts,duration,flags",
        **input_options(demuxer, max_pixels=max_pixels),
    )
    return parse_probe(path, meta, packets, settings if limits else None)


def parse_probe(path: Path, meta: Any, packets: Any, limits: Settings | None = None) -> VideoInfo:
    """The :class:`VideoInfo` of ffprobe's JSON reports: ``meta`` (``-show_format -show_streams``)
    and ``packets`` (the video stream's ``-show_entries packet=...``). Pure: no file is read.

    Anything that is not a usable, safe video raises :class:`InputError`, malformed reports too;
    ``limits`` (the settings) are checked when given.
    """
    try:
        return _parse(path, meta, packets, limits)
    except InputError:
        raise
    except (KeyError, IndexError, TypeError, ValueError, ZeroDivisionError, AttributeError, OverflowError) as err:
        raise InputError(
            f"{path} is not a readable video (ffprobe's report is malformed: {type(err).__name__})",
            "give a video file; it may be truncated or corrupt",
        ) from None


def _parse(path: Path, meta: Any, packets: Any, limits: Settings | None) -> VideoInfo:
    video = _video_stream(meta, path, limits)
    entries = packets.get("packets", []) if isinstance(packets, dict) else []
    times = sorted(int(p["pts"]) for p in entries if isinstance(p, dict) and p.get("pts") not in (None, "N/A"))
    if not times:
        raise InputError(f"{path} has a video stream but no frames in it", "the file is truncated or corrupt")
    _check_complete(video, len(times), path)
    time_base = _fraction(video.get("time_base"))
    if time_base is None:
        raise InputError(f"{path} has no valid time base", "the file is corrupt; re-export it")
    vfr = _is_variable_rate(times)
    rate = _stream_rate(video, times, time_base, vfr)
    duration = _duration(video, times, time_base, rate)
    frame_count = len(times) if not vfr else max(1, round(duration * rate))
    if limits is not None:
        _check_limits(path, limits, rate=rate, duration=duration, frames=frame_count, packets=len(times), vfr=vfr)
    rotation = _rotation(video)
    coded_w, coded_h = int(video["width"]), int(video["height"])
    width, height = (coded_h, coded_w) if rotation in (90, 270) else (coded_w, coded_h)
    fmt = meta["format"]
    start = float(times[0] * time_base) - (_float(fmt.get("start_time")) or 0.0)
    streams = [s for s in meta["streams"] if isinstance(s, dict)]
    keyframes = _keyframe_indices(entries, times[0], time_base, rate, frame_count)
    return VideoInfo(
        path=path,
        container=str(fmt.get("format_name", "")),
        width=width,
        height=height,
        coded_width=coded_w,
        coded_height=coded_h,
        rotation=rotation,
        codec=str(video.get("codec_name", "")),
        pix_fmt=str(video.get("pix_fmt", "")),
        bit_depth=_bit_depth(video),
        rate=rate,
        frame_count=frame_count,
        duration=duration,
        start_time=max(0.0, start) if math.isfinite(start) else 0.0,
        vfr=vfr,
        colour=Colour.from_stream(video, coded_h),
        audio=[_audio(s) for s in streams if s.get("codec_type") == "audio"],
        subtitles=[_subtitle(s) for s in streams if s.get("codec_type") == "subtitle"],
        keyframes=keyframes,
    )


def _video_stream(meta: Any, path: Path, limits: Settings | None) -> dict[str, Any]:
    """The first video stream of a safe container, its declared size within ``limits``."""
    fmt = meta.get("format") if isinstance(meta, dict) else None
    name = fmt.get("format_name") if isinstance(fmt, dict) else None
    if not isinstance(fmt, dict) or not isinstance(name, str) or not name:
        raise InputError(f"{path} is not a readable video (no container format)", "give a video file")
    if not is_container(name):
        raise _not_a_container(path, name)
    video = _first_video_stream(meta, path)
    if limits is not None:
        _check_size(path, limits, int(video["width"]), int(video["height"]))
        declared = _float(fmt.get("duration"))
        if declared is not None and declared > limits.max_duration_s:
            _too_much(path, f"lasts {declared:.0f} s", limits.max_duration_s, "max_duration_s", " s")
    return video


def check_frame_size(path: Path, width: int, height: int, settings: Settings | None = None) -> None:
    """:class:`InputError` when a ``width`` x ``height`` frame or image is over the size limits."""
    _check_size(path, settings or get_settings(), width, height)


def _check_size(path: Path, limits: Settings, width: int, height: int) -> None:
    if width <= 0 or height <= 0:
        raise InputError(f"{path} declares an empty frame size {width}x{height}", "the file is corrupt")
    if max(width, height) > limits.max_dimension:
        _too_much(path, f"has {width}x{height} frames", limits.max_dimension, "max_dimension", " pixels a side")
    if width * height > limits.max_pixels:
        _too_much(path, f"has {width}x{height} frames", limits.max_pixels, "max_pixels", " pixels a frame")


def _check_limits(
    path: Path, limits: Settings, *, rate: Fraction, duration: float, frames: int, packets: int, vfr: bool
) -> None:
    if rate > limits.max_rate:
        _too_much(path, f"runs at {float(rate):g} fps", limits.max_rate, "max_rate", " fps")
    if duration > limits.max_duration_s:
        _too_much(path, f"lasts {duration:.0f} s", limits.max_duration_s, "max_duration_s", " s")
    if vfr and frames > packets * limits.max_vfr_expansion:
        _too_much(
            path,
            f"has {packets} frames, but its timestamps (gaps in a variable frame rate) would make "
            f"{frames} at a constant {float(rate):g} fps",
            limits.max_vfr_expansion,
            "max_vfr_expansion",
            " times as many",
        )
    if frames > limits.max_frames:
        _too_much(path, f"yields {frames} frames", limits.max_frames, "max_frames", " frames")


def _too_much(path: Path, what: str, limit: float, setting: str, unit: str = "") -> NoReturn:
    shown = f"{int(limit)}" if float(limit).is_integer() else f"{limit:g}"
    raise InputError(
        f"{path} {what}, over the limit of {shown}{unit}",
        f"if this is intended, raise {env_name(setting)}",
    )


def count_frames(path: Path) -> int:
    """Video packets in ``path``'s first video stream: how a writer checks that a file it just
    made is complete (each packet of silkpurse's own encodes is one frame)."""
    try:
        meta = _ffprobe(
            path, select_streams="v:0", count_packets=None, show_entries="stream=nb_read_packets", **input_options()
        )
        return int(meta["streams"][0]["nb_read_packets"])
    except (InputError, KeyError, IndexError, ValueError):
        return 0


# Demuxers that read other files or URLs named inside the input (refused by name in messages).
_LISTS = {"hls", "applehttp", "concat", "dash", "webm_dash_manifest", "image2", "tee", "sdp", "rtsp", "lavfi"}


def _not_a_container(path: Path, name: str) -> InputError:
    """The refusal of a file ffmpeg would read with the demuxer ``name`` (not on the allow-list)."""
    if set(name.split(",")) & _LISTS:
        what = f"{path} is a {name} file, which silkpurse does not read (it can make ffmpeg read other files)"
    elif name.endswith("_pipe"):
        what = f"{path} is an image ({name.removesuffix('_pipe')}), not a video"
        return InputError(what, "give a video file, or use `silkpurse upscale IMAGE` for images")
    else:
        what = f"{path} is a {name} file, which is not a video container silkpurse reads"
    return InputError(what, "give a video file (MP4, MKV, MOV, WebM, AVI, TS, ...); see docs/reliability.md")


def _check_readable(path: Path) -> None:
    try:
        if not path.exists():
            raise InputError(f"input {path} does not exist", "check the path")
        if path.is_dir():
            raise InputError(f"input {path} is a directory", "give a video file")
        if path.stat().st_size == 0:
            raise InputError(f"input {path} is empty (0 bytes)", "give a complete video file")
    except OSError as err:
        raise InputError(f"cannot read input {path} ({err.strerror or err})", "check the path") from None


_MAX_PIXELS = re.compile(r"Picture size (\d+)x(\d+) exceeds specified max pixel count")
_NOT_WHITELISTED = re.compile(r"\[([\w,]+) @ 0x[0-9a-f]+\] Format not on whitelist")


def _ffprobe(path: Path, **args: Any) -> dict[str, Any]:
    try:
        result = ffmpeg.probe(file_url(path), cmd=get_settings().ffprobe, **args)
    except ffmpeg.Error as err:
        stderr = (err.stderr or b"").decode(errors="replace")
        too_big = _MAX_PIXELS.search(stderr)
        if too_big:
            width, height = int(too_big.group(1)), int(too_big.group(2))
            _check_size(path, get_settings(), width, height)  # raises: over the limit
        playlist = _NOT_WHITELISTED.search(stderr)
        if playlist:
            raise _not_a_container(path, playlist.group(1)) from None
        detail = stderr.strip().splitlines()
        reason = detail[-1] if detail else "ffprobe failed"
        raise InputError(
            f"{path} is not a readable video ({reason})", "give a video file; it may be truncated or corrupt"
        ) from None
    except FileNotFoundError:
        raise InputError("ffprobe was not found", "install ffmpeg (apt-get install ffmpeg)") from None
    if not isinstance(result, dict):
        raise InputError(f"{path} is not a readable video (ffprobe printed no report)", "give a video file")
    return result


def _check_complete(video: dict[str, Any], packets: int, path: Path) -> None:
    """A header that promises more frames than the file holds means the file was cut short."""
    declared = int(video.get("nb_frames") or 0) if str(video.get("nb_frames", "")).isdigit() else 0
    if declared and packets < declared * 0.98:
        raise InputError(
            f"{path} is truncated: its header declares {declared} frames but only {packets} are in the file",
            "re-download or re-export the source video",
        )


def _first_video_stream(meta: dict[str, Any], path: Path) -> dict[str, Any]:
    streams = meta.get("streams", [])
    for stream in streams if isinstance(streams, list) else []:
        if not isinstance(stream, dict):
            continue
        disposition = stream.get("disposition")
        is_picture = isinstance(disposition, dict) and disposition.get("attached_pic")  # cover art, not video
        if stream.get("codec_type") == "video" and not is_picture and int(stream.get("width") or 0) > 0:
            int(stream["height"]), int(stream["index"])  # noqa: B018  (both must be numbers)
            return stream
    raise InputError(f"{path} has no video stream", "give a file with video (audio-only files cannot be enhanced)")


def _keyframe_indices(
    packets: list[dict[str, Any]], first_pts: int, time_base: Fraction, rate: Fraction, frame_count: int
) -> tuple[int, ...]:
    """Keyframe packets mapped to frame indices on the constant-rate timeline."""
    indices = set()
    for packet in packets:
        if "K" in str(packet.get("flags", "")) and packet.get("pts") not in (None, "N/A"):
            index = round((int(packet["pts"]) - first_pts) * time_base * rate)
            if 0 <= index < frame_count:
                indices.add(index)
    return tuple(sorted(indices))


def _is_variable_rate(times: list[int]) -> bool:
    """Constant rate means every frame interval equals the typical one, allowing for the
    rounding of timestamps to the container's time base (e.g. 33/34 ms for 29.97 fps in MKV)."""
    if len(times) < 3:
        return False
    deltas = [b - a for a, b in zip(times, times[1:], strict=False)]
    typical = statistics.median(deltas)
    tolerance = max(1.0, 0.02 * typical)
    return any(abs(d - typical) > tolerance for d in deltas)


def _stream_rate(video: dict[str, Any], times: list[int], time_base: Fraction, vfr: bool) -> Fraction:
    declared = _fraction(video.get("r_frame_rate"))
    average = _fraction(video.get("avg_frame_rate"))
    if not vfr and declared:
        # Millisecond time bases (MKV) make ffprobe guess rates like 19001/317 for 60000/1001.
        return declared if declared.denominator in (1, 1001) else _snap_rate(declared)
    if average:
        # VFR: convert to the average rate, snapped to a broadcast rate when within 0.5 %.
        return _snap_rate(average)
    span = (times[-1] - times[0]) * time_base
    return _snap_rate(Fraction(len(times) - 1) / span) if span > 0 else Fraction(25)


def _snap_rate(rate: Fraction) -> Fraction:
    standard = [
        Fraction(24000, 1001),
        Fraction(24),
        Fraction(25),
        Fraction(30000, 1001),
        Fraction(30),
        Fraction(50),
        Fraction(60000, 1001),
        Fraction(60),
    ]
    nearest = min(standard, key=lambda s: abs(s - rate))
    if abs(nearest - rate) / rate < Fraction(1, 200):
        return nearest
    # Keep slow rates (a time-lapse of one frame per hour is 1/3600) exact rather than rounded to 0.
    limited = rate.limit_denominator(1001)
    return limited if limited > 0 and abs(limited - rate) / rate < Fraction(1, 1000) else rate.limit_denominator(10**7)


def _duration(video: dict[str, Any], times: list[int], tb: Fraction, rate: Fraction) -> float:
    # The last frame lasts one frame interval, which ffprobe's stream duration includes.
    span = float((times[-1] - times[0]) * tb) + float(1 / rate)
    stream_duration = _float(video.get("duration"))
    return stream_duration if stream_duration and abs(stream_duration - span) < 2 / float(rate) else span


def _rotation(video: dict[str, Any]) -> int:
    rotation = 0.0
    for side in video.get("side_data_list", []) or []:
        if "rotation" in side:
            rotation = float(side["rotation"])
    if not rotation and "rotate" in video.get("tags", {}):
        rotation = -float(video["tags"]["rotate"])
    return int(round(rotation)) % 360


def _bit_depth(video: dict[str, Any]) -> int:
    raw = video.get("bits_per_raw_sample")
    if raw and str(raw).isdigit() and int(raw) > 0:
        return int(raw)
    pix_fmt = str(video.get("pix_fmt", ""))
    match = _HIGH_DEPTH.search(pix_fmt)
    if match:
        return int(match.group(1))
    return 10 if pix_fmt.startswith("p010") else 8


def _audio(stream: dict[str, Any]) -> AudioStream:
    return AudioStream(
        index=int(stream["index"]),
        codec=str(stream.get("codec_name", "")),
        channels=int(stream.get("channels") or 0),
        sample_rate=int(stream.get("sample_rate") or 0),
        language=stream.get("tags", {}).get("language"),
    )


def _subtitle(stream: dict[str, Any]) -> SubtitleStream:
    language = stream.get("tags", {}).get("language")
    return SubtitleStream(index=int(stream["index"]), codec=str(stream.get("codec_name", "")), language=language)


def _fraction(value: object) -> Fraction | None:
    try:
        f = Fraction(str(value))
    except (ValueError, ZeroDivisionError):
        return None
    return f if f > 0 else None


def _float(value: object) -> float | None:
    try:
        number = float(str(value))
    except ValueError:
        return None
    return number if math.isfinite(number) else None
