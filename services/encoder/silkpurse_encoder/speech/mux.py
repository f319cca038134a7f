"""``silkpurse clean-audio``: clean the speech of a whole audio or video file.

The first audio track is cleaned (:func:`~silkpurse_encoder.speech.clean.clean_audio_track`)
and muxed back in its place, first and default, at the original track's start offset; the
picture and every other stream are copied untouched, with the chapters and metadata. With
``keep_original`` the original track follows as a second, non-default track.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from silkpurse.errors import InputError, OutputError
from silkpurse.media.ffmpeg_process import FfmpegProcess
from silkpurse.media.sources import file_url, input_args
from silkpurse.output import check_output_path, claim_output
from silkpurse_encoder.speech.audio import probe_streams
from silkpurse_encoder.speech.classic import CommandLine
from silkpurse_encoder.speech.clean import SpeechReport, clean_audio_track

#: Output ending -> (ffmpeg format, codec arguments for the cleaned track, holds video).
CONTAINERS: dict[str, tuple[str, list[str], bool]] = {
    ".mp4": ("mp4", ["aac", "-b:a:0", "192k"], True),
    ".m4v": ("mp4", ["aac", "-b:a:0", "192k"], True),
    ".mov": ("mov", ["aac", "-b:a:0", "192k"], True),
    ".mkv": ("matroska", ["flac"], True),
    ".webm": ("webm", ["libopus", "-b:a:0", "128k"], True),
    ".m4a": ("ipod", ["aac", "-b:a:0", "192k"], False),
    ".mka": ("matroska", ["flac"], False),
    ".flac": ("flac", ["flac"], False),
    ".wav": ("wav", ["pcm_s24le"], False),
    ".mp3": ("mp3", ["libmp3lame", "-q:a:0", "2"], False),
    ".ogg": ("ogg", ["libopus", "-b:a:0", "128k"], False),
    ".opus": ("opus", ["libopus", "-b:a:0", "128k"], False),
}


@dataclass(frozen=True)
class CleanFileReport:
    output: str
    track: SpeechReport
    kept_original: bool


def clean_file(
    source: Path,
    output: Path,
    *,
    level: str = "normal",
    loudness: float = -16.0,
    method: str = "auto",
    keep_original: bool = False,
) -> CleanFileReport:
    """Clean the speech of ``source``'s first audio track into ``output`` (written atomically)."""
    streams = probe_streams(source)
    if not streams.audio:
        raise InputError(f"{source} has no audio track", "give a file with sound; there is nothing to clean")
    suffix = output.suffix.lower()
    if suffix not in CONTAINERS:
        raise OutputError(f"cannot write {output.name}", f"give one of: {', '.join(CONTAINERS)}")
    fmt, codec, holds_video = CONTAINERS[suffix]
    if streams.has_video and not holds_video:
        raise OutputError(f"{output.name} cannot hold {source.name}'s picture", "give a video name such as out.mp4")
    check_output_path(output, source)
    track = streams.audio[0]
    with tempfile.TemporaryDirectory(prefix=f".{output.name}.", dir=output.parent) as scratch:
        cleaned = Path(scratch) / "speech.flac"
        report = clean_audio_track(source, track.index, cleaned, level=level, loudness=loudness, method=method)
        args = [*input_args(source), "-itsoffset", f"{track.start_time:.6f}", "-i", file_url(cleaned)]
        args += ["-map", "0:v?", "-map", "1:a:0", "-map", "0:a", "-map", f"-0:{track.index}"]
        if keep_original:
            args += ["-map", f"0:{track.index}"]
        args += ["-map", "0:s?", "-map", "0:t?", "-map_metadata", "0", "-map_chapters", "0"]
        args += ["-c", "copy", "-c:a:0", *codec, "-disposition:a:0", "default"]
        others = len(streams.audio) - 1 + int(keep_original)
        for n in range(1, others + 1):
            args += [f"-disposition:a:{n}", "0"]
        args += ["-metadata:s:a:0", "title=Speech (cleaned by silkpurse)"]
        if fmt in ("mp4", "mov"):
            args += ["-c:s", "mov_text", "-movflags", "+faststart"]

        with claim_output(output, inputs=[source]) as claim:
            process = FfmpegProcess(CommandLine([*args, "-f", fmt, "-y", file_url(claim.temp)]))
            if process.wait() != 0 or process.errors:
                raise OutputError(f"could not write {output} ({process.last_error()})", "try an .mkv output")
            claim.publish()
    return CleanFileReport(output=str(output), track=report, kept_original=keep_original)
