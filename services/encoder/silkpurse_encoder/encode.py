"""Encode stage: frame batches in, a finished video file out.

The encoder takes raw RGB frames on a pipe and carries everything else (audio, subtitles,
chapters, metadata) from the source file: copied when the output container can hold the
codec, re-encoded otherwise. The video is tagged with the source's colour facts and keeps the
source's start offset, so A/V sync holds. The file is written under a temporary name and
renamed only when ffmpeg has finished successfully: a partial output never looks complete.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import ffmpeg

from silkpurse.batch import FrameBatch
from silkpurse.errors import MediaError, OptionsError, OutputError
from silkpurse.media.ffmpeg_process import FfmpegProcess
from silkpurse.media.probe import AudioStream, SubtitleStream, VideoInfo


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
# Audio codecs MP4/MOV hold without re-encoding (ffmpeg 5.1's mov muxer).
_MP4_AUDIO = {"aac", "mp3", "ac3", "eac3", "alac", "opus"}


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


@dataclass
class EncodeReport:
    output: Path
    frames: int
    copied_streams: list[str] = field(default_factory=list)
    reencoded_streams: list[str] = field(default_factory=list)
    dropped_streams: list[str] = field(default_factory=list)


def container_for(output: Path) -> str:
    container = CONTAINERS.get(output.suffix.lower())
    if container is None:
        raise OptionsError(
            f"cannot write {output.suffix or 'files without an extension'} files", "name the output .mp4, .mov or .mkv"
        )
    return container


def check_output(output: Path, source: Path) -> None:
    """Refuse outputs that would overwrite the input or cannot be written."""
    container_for(output)
    if output.exists() and output.resolve() == source.resolve():
        raise OutputError("the output is the input file", "choose another output path")
    if output.is_dir():
        raise OutputError(f"output {output} is a directory", "give a file name such as out.mp4")
    parent = output.parent if str(output.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"output folder {parent} does not exist", "create it first")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"output folder {parent} is not writable", "choose a folder you can write to")


def partial_path(output: Path) -> Path:
    return output.with_name(f".{output.stem}.partial{output.suffix}")


class Encoder:
    """Feeds batches to one ffmpeg process writing ``output`` (renamed into place on close)."""

    def __init__(
        self,
        output: Path,
        source: VideoInfo,
        *,
        width: int,
        height: int,
        rate: Fraction,
        sixteen_bit: bool,
        options: EncodeOptions,
    ) -> None:
        options.validate()
        self.output = output
        self.partial = partial_path(output)
        self.report = EncodeReport(output=output, frames=0)
        self._expected_shape = (height, width, 3)
        ten_bit = options.ten_bit if options.ten_bit is not None else source.bit_depth > 8
        graph = self._graph(source, width, height, rate, sixteen_bit, ten_bit, options)
        self._process = FfmpegProcess(graph, pipe_stdin=True)

    def _graph(
        self,
        source: VideoInfo,
        width: int,
        height: int,
        rate: Fraction,
        sixteen_bit: bool,
        ten_bit: bool,
        options: EncodeOptions,
    ) -> Any:
        codec = CODECS[options.codec]
        frames = ffmpeg.input(
            "pipe:",
            format="rawvideo",
            pix_fmt="rgb48le" if sixteen_bit else "rgb24",
            s=f"{width}x{height}",
            framerate=f"{rate.numerator}/{rate.denominator}",
            itsoffset=f"{source.start_time:.6f}",
        )
        video = frames.video
        if width % 2 or height % 2:
            # 4:2:0 needs even sizes: grow by one edge-replicated row/column rather than crop pixels away.
            video = video.filter("pad", w="ceil(iw/2)*2", h="ceil(ih/2)*2").filter(
                "fillborders", right=width % 2, bottom=height % 2, mode="smear"
            )
        video = video.filter(
            # Area-averaged chroma subsampling undoes the decoder's chroma upsampling most closely.
            "scale",
            out_color_matrix=source.colour.scale_matrix,
            out_range=source.colour.range,
            flags="area+accurate_rnd+full_chroma_int",
        )
        container = container_for(self.output)
        streams: list[Any] = [video]
        stream_args: dict[str, Any] = {}
        original = ffmpeg.input(str(source.path))
        for n, audio in enumerate(source.audio):
            streams.append(original[str(audio.index)])
            stream_args.update(self._audio_args(n, audio, container))
        kept = 0
        for sub in source.subtitles:
            codec_arg = self._subtitle_codec(sub, container)
            if codec_arg is None:
                self.report.dropped_streams.append(f"subtitle #{sub.index} ({sub.codec}): {container} cannot hold it")
                continue
            streams.append(original[str(sub.index)])
            stream_args[f"c:s:{kept}"] = codec_arg
            kept += 1
        pix_fmt = "yuv420p10le" if ten_bit else "yuv420p"
        args: dict[str, Any] = {
            "c:v": codec.encoder,
            "crf": options.crf if options.crf is not None else codec.default_crf,
            "preset": options.preset or codec.default_preset,
            "pix_fmt": pix_fmt,
            "format": container,
            **source.colour.encoder_tags(),
            **stream_args,
        }
        if len(streams) > 1:
            # ffmpeg-python only adds the source as an input when one of its streams is mapped.
            args.update(map_metadata=1, map_chapters=1)
        if container in ("mp4", "mov"):
            args["movflags"] = "+faststart"
            if options.codec == "h265":
                args["tag:v"] = "hvc1"  # the tag Apple players need for HEVC in MP4
        if options.codec == "h265":
            args["x265-params"] = "log-level=error"
        return ffmpeg.output(*streams, str(self.partial), **args).overwrite_output()

    def _audio_args(self, n: int, audio: AudioStream, container: str) -> dict[str, Any]:
        if container == "matroska" or audio.codec in _MP4_AUDIO:
            self.report.copied_streams.append(f"audio #{audio.index} ({audio.codec})")
            return {f"c:a:{n}": "copy"}
        self.report.reencoded_streams.append(f"audio #{audio.index} ({audio.codec} -> aac)")
        return {f"c:a:{n}": "aac", f"b:a:{n}": f"{64 * max(2, audio.channels)}k"}

    def _subtitle_codec(self, sub: SubtitleStream, container: str) -> str | None:
        if container == "matroska":
            codec = "srt" if sub.codec == "mov_text" else "copy"
        elif sub.is_text:
            codec = "copy" if sub.codec == "mov_text" else "mov_text"
        else:
            return None
        (self.report.copied_streams if codec == "copy" else self.report.reencoded_streams).append(
            f"subtitle #{sub.index} ({sub.codec})"
        )
        return codec

    def write(self, batch: FrameBatch) -> None:
        if batch.frames.shape[1:] != self._expected_shape:
            raise ValueError(f"batch frames are {batch.frames.shape[1:]}, encoder expects {self._expected_shape}")
        stdin = self._process.proc.stdin
        assert stdin is not None
        try:
            frames = batch.frames
            stdin.write(frames.data.cast("B") if frames.flags.c_contiguous else frames.tobytes())
        except BrokenPipeError:
            self._fail()  # ffmpeg exited early; its own message says why
        self.report.frames += len(batch)

    def close(self) -> EncodeReport:
        """Finish the file and move it into place."""
        stdin = self._process.proc.stdin
        assert stdin is not None
        with contextlib.suppress(BrokenPipeError):
            stdin.close()
        if self._process.wait() != 0:
            self._fail()
        os.replace(self.partial, self.output)
        return self.report

    def abort(self) -> None:
        """Stop ffmpeg and remove the partial file."""
        self._process.kill()
        self.partial.unlink(missing_ok=True)

    def _fail(self) -> None:
        error = self._process.last_error()
        self.abort()
        raise MediaError(
            f"encoding {self.output.name} failed ({error})", "see the message; check codec and options"
        ) from None


def encode_batches(batches: Iterable[FrameBatch], output: Path, encoder: Encoder) -> EncodeReport:
    """Write every batch, then finish; any failure removes the partial file."""
    try:
        for batch in batches:
            encoder.write(batch)
    except BaseException:
        encoder.abort()
        raise
    return encoder.close()
