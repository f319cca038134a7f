"""Encode stage: frame batches into video segments, and segments into the finished file.

A long job is encoded chunk by chunk, so its frames never all wait on disk at once. Joining
segments is where timestamps usually go wrong (ffmpeg's concat demuxer places each file at
the sum of the previous files' durations, which MP4 headers keep in milliseconds: 0.2-0.4 ms
of drift per segment), so the recipe is measured, not guessed (docs/architecture.md):

1. **Segments** are video-only MP4 whose timestamps start at 0. MP4 keeps every packet's
   DTS (B-frames) and its track timescale represents ``1 / rate`` exactly (60000 for
   60000/1001).
2. **Join**: the concat demuxer copies the segments' packets, and a ``setts`` filter snaps
   every pts/dts to the exact frame grid (whole ticks per frame), undoing the drift however
   many segments there are.
3. **Mux**: the joined video gets the source's start offset (``-itsoffset``, kept exact in
   MP4 by a fine ``-movie_timescale``) and the source's audio, subtitles, chapters and
   metadata, copied when the container can hold them and re-encoded otherwise.

Every output frame ``j`` is then at exactly ``start + j / rate`` (to the container's rounding,
once), and the video's bytes are the segments' bytes.

The final file is published through :func:`silkpurse.output.claim_output`: the output is
locked for this run, written under a unique temporary name, and renamed into place only once
ffmpeg exited 0 with no error-level message (ffmpeg 5.1 exits 0 after "Error writing trailer:
No space left on device") and the file holds every frame at the expected duration. A partial
output never looks complete, and a full disk is reported as such, not blamed on the input.
Every file is named to ffmpeg as ``file:<absolute path>`` (never a protocol or an option).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import ffmpeg

from silkpurse.batch import FrameBatch
from silkpurse.errors import InputError, MediaError, OutputError, StoreError
from silkpurse.media.codecs import CODECS, EncodeOptions, container_for
from silkpurse.media.ffmpeg_process import DISK_FULL, FfmpegProcess
from silkpurse.media.probe import AudioStream, SubtitleStream, VideoInfo, probe
from silkpurse.media.sources import file_url, input_options
from silkpurse.output import OutputClaim, check_output_path, claim_output
from silkpurse.tasks import JoinResult

# Audio codecs MP4/MOV hold without re-encoding (ffmpeg 5.1's mov muxer).
_MP4_AUDIO = {"aac", "mp3", "ac3", "eac3", "alac", "opus"}


def check_output(output: Path, source: Path) -> None:
    """Refuse outputs that would overwrite the input or cannot be written, or no container holds."""
    container_for(output)
    check_output_path(output, source)


# -- 1. segments ----------------------------------------------------------------------------------


class SegmentWriter:
    """Feeds batches to one ffmpeg process writing a video-only MP4 segment at ``path``."""

    def __init__(
        self,
        path: Path,
        source: VideoInfo,
        *,
        width: int,
        height: int,
        rate: Fraction,
        sixteen_bit: bool,
        options: EncodeOptions,
    ) -> None:
        options.validate()
        self.path = path
        self.frames = 0
        self._expected_shape = (height, width, 3)
        ten_bit = options.ten_bit if options.ten_bit is not None else source.bit_depth > 8
        self._process = FfmpegProcess(
            _segment_graph(path, source, width, height, rate, sixteen_bit, ten_bit, options), pipe_stdin=True
        )

    def write(self, batch: FrameBatch) -> None:
        if batch.frames.shape[1:] != self._expected_shape:
            raise ValueError(f"batch frames are {batch.frames.shape[1:]}, encoder expects {self._expected_shape}")
        if self._process.errors:
            self._fail()  # ffmpeg 5.1 keeps reading after a failed write (a full disk): stop now
        stdin = self._process.proc.stdin
        assert stdin is not None
        try:
            frames = batch.frames
            stdin.write(frames.data.cast("B") if frames.flags.c_contiguous else frames.tobytes())
        except BrokenPipeError:
            self._fail()  # ffmpeg exited early; its own message says why
        self.frames += len(batch)

    def close(self) -> int:
        """Finish the segment; the number of frames it holds."""
        stdin = self._process.proc.stdin
        assert stdin is not None
        with contextlib.suppress(BrokenPipeError):
            stdin.close()
        if self._process.wait() != 0 or self._process.errors:
            self._fail()
        return self.frames

    def abort(self) -> None:
        self._process.kill()
        self.path.unlink(missing_ok=True)

    def _fail(self) -> None:
        self._process.kill()  # it has usually exited already; this also waits for its last messages
        error = self._process.last_error()
        disk_full = self._process.disk_full()
        self.abort()
        if disk_full:
            raise StoreError(
                f"the disk holding the work directory {self.path.parent.parent} is full ({DISK_FULL})",
                "free some space, or point --work-dir (SILKPURSE_WORK_DIR) at a larger disk",
            )
        raise MediaError(f"encoding failed ({error})", "see the message; check codec and options") from None


def write_segment(batches: Iterable[FrameBatch], writer: SegmentWriter) -> int:
    """Write every batch, then finish; any failure removes the partial segment."""
    try:
        for batch in batches:
            writer.write(batch)
    except BaseException:
        writer.abort()
        raise
    return writer.close()


def _segment_graph(
    path: Path,
    source: VideoInfo,
    width: int,
    height: int,
    rate: Fraction,
    sixteen_bit: bool,
    ten_bit: bool,
    options: EncodeOptions,
) -> Any:
    codec = CODECS[options.codec]
    video = ffmpeg.input(
        "pipe:",
        format="rawvideo",
        pix_fmt="rgb48le" if sixteen_bit else "rgb24",
        s=f"{width}x{height}",
        framerate=f"{rate.numerator}/{rate.denominator}",
    ).video
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
    args: dict[str, Any] = {
        "c:v": codec.encoder,
        "crf": options.crf if options.crf is not None else codec.default_crf,
        "preset": options.preset or codec.default_preset,
        "pix_fmt": "yuv420p10le" if ten_bit else "yuv420p",
        "format": "mp4",
        # Timestamps come from the frame rate alone: never duplicate or drop a frame.
        "fps_mode": "passthrough",
        **source.colour.encoder_tags(),
    }
    if options.codec == "h265":
        args["x265-params"] = "log-level=error"
    return ffmpeg.output(video, file_url(path), **args).overwrite_output()


# -- 2. and 3. join and mux -----------------------------------------------------------------------


@dataclass(frozen=True)
class Speech:
    """A cleaned speech track to mux in place of the source's first audio track."""

    path: Path
    start_time: float
    """Where the original track starts in the source file, seconds."""
    keep_original: bool
    """Keep the original track too, second and not default."""


def join(
    segments: list[Path],
    output: Path,
    source: VideoInfo,
    *,
    rate: Fraction,
    options: EncodeOptions,
    scratch: Path,
    frames: int | None = None,
    claim: OutputClaim | None = None,
    speech: Speech | None = None,
) -> JoinResult:
    """Join ``segments`` into ``output`` with the source's audio, subtitles, chapters and
    metadata (the cleaned ``speech`` in place of the first audio track, when given), and publish
    it once it holds ``frames`` frames (when given) at their duration.

    The output is claimed (:func:`~silkpurse.output.claim_output`) unless ``claim`` is given;
    inside a claim of ``output`` that this thread already holds (the CLI claims around the
    whole job), the join joins it."""
    container_for(output)
    with contextlib.ExitStack() as scope:
        if claim is None:
            claim = scope.enter_context(claim_output(output, inputs=[source.path]))
        elif claim.output != Path(os.path.abspath(output)):
            raise ValueError(f"the claim is of {claim.output}, not {output}")
        joined = scratch / "joined.mp4"
        listing = scratch / "segments.txt"
        # Our own listing of our own files (the only concat list silkpurse ever reads).
        listing.write_text("".join(f"file '{_concat_quote(file_url(s.resolve()))}'\n" for s in segments))
        ticks, timescale = _ticks_per_frame(segments[0], rate)
        snap = f"setts=pts=round(PTS/{ticks})*{ticks}:dts=round(DTS/{ticks})*{ticks}"
        concat = ffmpeg.input(file_url(listing), format="concat", safe=0, protocol_whitelist="file")
        joined_graph = ffmpeg.output(concat["v:0"], file_url(joined), c="copy", format="mp4", **{"bsf:v": snap})
        report = JoinResult(output=str(output))
        try:
            _run(joined_graph.overwrite_output(), "joining the segments", None)
            _run(
                _mux_graph(joined, claim.temp, source, options, timescale, report, speech),
                f"writing {output.name}",
                output,
            )
            claim.publish(verify=lambda written: _verify(written, output, frames, rate))
        except BaseException:
            claim.discard()
            raise
        finally:
            joined.unlink(missing_ok=True)
    if frames is not None:
        report.frames = frames
    return report


def _verify(written: Path, output: Path, frames: int | None, rate: Fraction) -> None:
    """The file probes as a video holding every frame written, at the expected duration."""
    try:
        info = probe(written, limits=False)
    except InputError as err:
        raise MediaError(f"writing {output.name} produced an unreadable file ({err.what})") from None
    if frames is None:
        return
    expected = frames / rate
    if info.frame_count != frames or abs(info.duration - float(expected)) > 2 / float(rate):
        raise MediaError(
            f"writing {output.name} produced an incomplete file ({info.frame_count} of {frames} frames, "
            f"{info.duration:.3f} of {float(expected):.3f} s)",
            "run the job again; finished segments are kept",
        )


def _mux_graph(
    joined: Path,
    partial: Path,
    source: VideoInfo,
    options: EncodeOptions,
    timescale: int,
    report: JoinResult,
    speech: Speech | None,
) -> Any:
    container = container_for(Path(report.output))
    joined_video = ffmpeg.input(file_url(joined), itsoffset=f"{source.start_time:.6f}", **input_options("mov"))
    streams: list[Any] = [joined_video["v:0"]]
    args: dict[str, Any] = {"c:v": "copy", "format": container}
    original = ffmpeg.input(file_url(source.path), **input_options(source.demuxer))
    audio_tracks = list(source.audio)
    if speech is not None:
        # The cleaned track comes first and is the default; FLAC where the container holds it.
        cleaned = ffmpeg.input(file_url(speech.path), itsoffset=f"{speech.start_time:.6f}", **input_options("flac"))
        streams.append(cleaned["a:0"])
        lossless = container == "matroska"
        args.update(
            {
                "c:a:0": "flac" if lossless else "aac",
                "disposition:a:0": "default",
                # MP4 names a track by its handler, Matroska by its title.
                "metadata:s:a:0": f"{'title' if lossless else 'handler_name'}=Speech (cleaned by silkpurse)",
            }
        )
        if not lossless:
            args["b:a:0"] = "192k"
        report.reencoded_streams.append(f"audio #{source.audio[0].index} ({source.audio[0].codec} -> cleaned speech)")
        if not speech.keep_original:
            audio_tracks = audio_tracks[1:]
    first = len(streams) - 1
    for n, audio in enumerate(audio_tracks, start=first):
        streams.append(original[str(audio.index)])
        args.update(_audio_args(n, audio, container, report))
        if speech is not None:
            args[f"disposition:a:{n}"] = "0"
    kept = 0
    for sub in source.subtitles:
        codec_arg = _subtitle_codec(sub, container, report)
        if codec_arg is None:
            report.dropped_streams.append(f"subtitle #{sub.index} ({sub.codec}): {container} cannot hold it")
            continue
        streams.append(original[str(sub.index)])
        args[f"c:s:{kept}"] = codec_arg
        kept += 1
    if len(streams) > 1:
        # ffmpeg-python only adds the source as an input when one of its streams is mapped.
        args.update(map_metadata=1, map_chapters=1)
    if container in ("mp4", "mov"):
        args["movflags"] = "+faststart"
        # The start offset is an edit list in the movie timescale (1/1000 s by default).
        args["movie_timescale"] = timescale
        if options.codec == "h265":
            args["tag:v"] = "hvc1"  # the tag Apple players need for HEVC in MP4
    return ffmpeg.output(*streams, file_url(partial), **args).overwrite_output()


def _audio_args(n: int, audio: AudioStream, container: str, report: JoinResult) -> dict[str, Any]:
    if container == "matroska" or audio.codec in _MP4_AUDIO:
        report.copied_streams.append(f"audio #{audio.index} ({audio.codec})")
        return {f"c:a:{n}": "copy"}
    report.reencoded_streams.append(f"audio #{audio.index} ({audio.codec} -> aac)")
    return {f"c:a:{n}": "aac", f"b:a:{n}": f"{64 * max(2, audio.channels)}k"}


def _subtitle_codec(sub: SubtitleStream, container: str, report: JoinResult) -> str | None:
    if container == "matroska":
        codec = "srt" if sub.codec == "mov_text" else "copy"
    elif sub.is_text:
        codec = "copy" if sub.codec == "mov_text" else "mov_text"
    else:
        return None
    (report.copied_streams if codec == "copy" else report.reencoded_streams).append(
        f"subtitle #{sub.index} ({sub.codec})"
    )
    return codec


def _ticks_per_frame(segment: Path, rate: Fraction) -> tuple[int, int]:
    """Ticks of the segment's track time base per frame, and that timescale."""
    stream = ffmpeg.probe(file_url(segment), select_streams="v:0", **input_options("mov"))["streams"][0]
    time_base = Fraction(stream["time_base"])
    ticks = 1 / (time_base * rate)
    if ticks.denominator != 1:
        raise MediaError(f"segment time base {time_base} cannot hold frames at {rate} fps", "report this as a bug")
    return ticks.numerator, time_base.denominator


def _concat_quote(path: Path | str) -> str:
    return str(path).replace("'", "'\\''")


def _run(graph: Any, what: str, output: Path | None) -> None:
    """Run ``graph`` writing ``output`` (``None``: a file in the work directory); a non-zero exit
    or any error-level message fails it, a full disk as such."""
    process = FfmpegProcess(graph)
    if process.wait() == 0 and not process.errors:
        return
    if process.disk_full() and output is None:
        raise StoreError(
            f"the disk holding the work directory is full ({DISK_FULL})",
            "free some space, or point --work-dir (SILKPURSE_WORK_DIR) at a larger disk",
        )
    if process.disk_full():
        raise OutputError(
            f"the disk holding {output} is full ({DISK_FULL})", "free some space or write the output elsewhere"
        )
    error = process.last_error()
    if output is not None and "File name too long" in error:
        raise OutputError(f"the output name {output.name!r} is too long for its filesystem", "choose a shorter name")
    raise MediaError(f"{what} failed ({error})", "see the message")
