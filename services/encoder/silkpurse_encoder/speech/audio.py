"""ffmpeg's side of the speech path: what a file's audio streams are, decoding one stream as
mono float samples in bounded chunks, and EBU R128 measurement (``loudnorm``'s analysis)."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import ffmpeg
import numpy as np
import numpy.typing as npt

from silkpurse.errors import InputError, MediaError
from silkpurse.media.ffmpeg_process import FfmpegProcess
from silkpurse.media.sources import file_url, input_options
from silkpurse.settings import get_settings

CHUNK_SECONDS = 10
"""Samples are decoded, cleaned and written this many seconds at a time: memory stays a few
MB whatever the track's length."""


@dataclass(frozen=True)
class AudioTrack:
    """One audio stream of a file (audio-only or video)."""

    path: Path
    index: int
    """Stream index in the file (ffprobe's ``index``)."""
    codec: str
    channels: int
    channel_layout: str
    sample_rate: int
    start_time: float
    """Of the stream, relative to the file's start (kept when the cleaned track is muxed back)."""
    duration: float | None


@dataclass(frozen=True)
class MediaStreams:
    path: Path
    format_name: str
    audio: list[AudioTrack]
    has_video: bool


def probe_streams(path: Path) -> MediaStreams:
    """The audio streams of ``path``; a missing, empty or unreadable file raises :class:`InputError`."""
    if not path.exists():
        raise InputError(f"input {path} does not exist", "check the path")
    if path.is_dir() or path.stat().st_size == 0:
        raise InputError(
            f"input {path} is {'a directory' if path.is_dir() else 'empty'}", "give an audio or video file"
        )
    try:
        meta: dict[str, Any] = ffmpeg.probe(file_url(path), cmd=get_settings().ffprobe, **input_options())
    except ffmpeg.Error as err:
        lines = (err.stderr or b"").decode(errors="replace").strip().splitlines()
        raise InputError(
            f"{path} is not a readable media file ({lines[-1] if lines else 'ffprobe failed'})",
            "give an audio or video file",
        ) from None
    except FileNotFoundError:
        raise InputError("ffprobe was not found", "install ffmpeg (apt-get install ffmpeg)") from None
    file_start = _float(meta.get("format", {}).get("start_time")) or 0.0
    audio = [
        AudioTrack(
            path=path,
            index=int(s["index"]),
            codec=str(s.get("codec_name", "")),
            channels=int(s.get("channels") or 0),
            channel_layout=str(s.get("channel_layout", "")),
            sample_rate=int(s.get("sample_rate") or 0),
            start_time=max(0.0, (_float(s.get("start_time")) or 0.0) - file_start),
            duration=_float(s.get("duration")) or _float(meta.get("format", {}).get("duration")),
        )
        for s in meta.get("streams", [])
        if s.get("codec_type") == "audio"
    ]
    has_video = any(
        s.get("codec_type") == "video" and not s.get("disposition", {}).get("attached_pic")
        for s in meta.get("streams", [])
    )
    return MediaStreams(path, str(meta.get("format", {}).get("format_name", "")), audio, has_video)


@lru_cache(maxsize=1)
def has_soxr() -> bool:
    """Whether this ffmpeg has the SoX resampler (Debian's does); else swresample's default."""
    try:
        conf = subprocess.run(
            [get_settings().ffmpeg, "-hide_banner", "-buildconf"], capture_output=True, text=True, timeout=30
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "enable-libsoxr" in conf


def resample(rate: int) -> str:
    """An ``aresample`` filter to ``rate`` (soxr at high precision where available)."""
    return f"aresample={rate}:resampler=soxr:precision=28" if has_soxr() else f"aresample={rate}"


def mono_at(rate: int) -> str:
    """Downmix to mono (ffmpeg's standard matrix: centre and fronts, surrounds at -3 dB, no LFE),
    then convert to ``rate``: what a speech model hears."""
    return f"aformat=channel_layouts=mono,{resample(rate)},aformat=sample_fmts=flt"


def decode_mono(
    track: AudioTrack, rate: int, chunk_seconds: float = CHUNK_SECONDS
) -> Iterator[npt.NDArray[np.float32]]:
    """The track downmixed to mono at ``rate``, as float32 chunks of ``chunk_seconds``."""
    graph = ffmpeg.input(file_url(track.path), **input_options()).output(
        "pipe:", map=f"0:{track.index}", af=mono_at(rate), ac=1, ar=rate, format="f32le", acodec="pcm_f32le"
    )
    process = FfmpegProcess(graph, pipe_stdout=True)
    stdout = process.proc.stdout
    assert stdout is not None
    size = int(rate * chunk_seconds) * 4
    try:
        while True:
            data = stdout.read(size)
            if not data:
                break
            usable = len(data) // 4 * 4
            yield np.frombuffer(data[:usable], dtype=np.float32)
    except BaseException:
        process.kill()
        raise
    if process.wait() != 0:
        raise MediaError(f"decoding audio stream #{track.index} of {track.path} failed ({process.last_error()})")


class MonoWriter:
    """Streams mono float32 samples at ``rate`` into a FLAC file (24-bit) through ffmpeg."""

    def __init__(self, path: Path, rate: int) -> None:
        graph = ffmpeg.input("pipe:", format="f32le", ar=rate, ac=1).output(
            file_url(path), acodec="flac", sample_fmt="s32", format="flac"
        )
        self.path = path
        self.samples = 0
        self._process = FfmpegProcess(graph.overwrite_output(), pipe_stdin=True)

    def write(self, samples: npt.NDArray[np.float32]) -> None:
        stdin = self._process.proc.stdin
        assert stdin is not None
        try:
            stdin.write(np.clip(samples, -1.0, 1.0).astype(np.float32).tobytes())
        except BrokenPipeError:
            self._fail()
        self.samples += len(samples)

    def close(self) -> None:
        stdin = self._process.proc.stdin
        assert stdin is not None
        with contextlib.suppress(BrokenPipeError):
            stdin.close()
        if self._process.wait() != 0:
            self._fail()

    def abort(self) -> None:
        self._process.kill()

    def _fail(self) -> None:
        error = self._process.last_error()
        self._process.kill()
        raise MediaError(f"writing {self.path} failed ({error})")


@dataclass(frozen=True)
class Loudness:
    """EBU R128 facts of a signal, as ``loudnorm`` measures them."""

    integrated: float
    """Integrated loudness, LUFS."""
    true_peak: float
    """dBTP."""
    lra: float
    threshold: float
    samples: int = 0
    """Samples per channel seen (at the measured rate)."""

    def loudnorm(self, target: float, true_peak: float = -1.0) -> str:
        """The second pass of a two-pass ``loudnorm`` to ``target`` LUFS, with these measurements."""
        return (
            f"loudnorm=I={target}:TP={true_peak}:LRA=11:measured_I={self.integrated:.2f}"
            f":measured_TP={self.true_peak:.2f}:measured_LRA={self.lra:.2f}"
            f":measured_thresh={self.threshold:.2f}:offset=0:linear=true"
        )


_JSON_BLOCK = re.compile(r"\{[^{}]*\"input_i\"[^{}]*\}", re.S)
_SAMPLES = re.compile(r"Number of samples:\s*(\d+)")


def measure_loudness(inputs: list[str], filters: str) -> Loudness:
    """Run ``filters`` (a filter chain ending in the analysed signal) over ``inputs`` (ffmpeg
    input arguments) and return the loudnorm analysis, with the sample count (astats)."""
    chain = f"{filters},astats=measure_perchannel=none:measure_overall=Number_of_samples,loudnorm=print_format=json"
    args = [get_settings().ffmpeg, "-hide_banner", "-nostdin", "-nostats", *inputs, "-af", chain, "-f", "null", "-"]
    try:
        result = subprocess.run(args, capture_output=True, text=True, errors="replace")
    except FileNotFoundError:
        raise MediaError("ffmpeg was not found", "install ffmpeg (apt-get install ffmpeg)") from None
    match = _JSON_BLOCK.search(result.stderr)
    if result.returncode != 0 or match is None:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        raise MediaError(f"loudness measurement failed ({lines[-1] if lines else 'no message'})")
    data = json.loads(match.group(0))
    samples = _SAMPLES.search(result.stderr)
    return Loudness(
        integrated=_finite(data["input_i"], -70.0),
        true_peak=_finite(data["input_tp"], -70.0),
        lra=_finite(data["input_lra"], 0.0),
        threshold=_finite(data["input_thresh"], -70.0),
        samples=int(samples.group(1)) if samples else 0,
    )


def _finite(value: object, default: float) -> float:
    number = _float(value)
    return number if number is not None and np.isfinite(number) else default


def _float(value: object) -> float | None:
    try:
        return float(str(value))
    except ValueError:
        return None
