"""Speech clean-up of one audio track: the story from a source file to a cleaned, loudness-
normalised audio file.

1. **Measure** the source track (EBU R128 loudness, exact sample count).
2. **Enhance**: decode it as 48 kHz mono in 10 s chunks, clean each chunk (DeepFilterNet3, or
   the classic ffmpeg chain), and stream the result into a FLAC file in a temporary folder
   beside the output. Memory is bounded by the chunk, whatever the track's length.
3. **Normalise**: two-pass ``loudnorm`` (linear gain where the true-peak ceiling allows) to the
   target (-16 LUFS for online video, -23 LUFS broadcast), true peak <= -1 dBTP, back at the
   source's sample rate, to exactly the source's number of samples.
4. **Write** the output atomically (temporary name, then rename).

Output layout: the cleaned speech is one signal. A mono source gives a mono track; any source
with two or more channels (stereo, 5.1, ...) gives a stereo track with the speech on both
channels: a talk's other channels hold room and noise, which is what was removed, and stereo
plays everywhere (docs/speech.md).
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from silkpurse.errors import InputError, ModelError, OptionsError, OutputError
from silkpurse.files import write_atomically
from silkpurse.media.ffmpeg_process import FfmpegProcess
from silkpurse.media.sources import file_url, input_args
from silkpurse.models import resolve_weights
from silkpurse_encoder.speech.audio import (
    AudioTrack,
    Loudness,
    MonoWriter,
    decode_mono,
    measure_loudness,
    probe_streams,
    resample,
)
from silkpurse_encoder.speech.classic import ClassicSettings, CommandLine, find_noise_window, run_classic
from silkpurse_encoder.speech.deepfilter import RATE, DeepFilterRunner

LevelName = Literal["light", "normal", "strong"]
MethodName = Literal["auto", "model", "ffmpeg"]
METHODS: tuple[str, ...] = ("auto", "model", "ffmpeg")
DEFAULT_MODEL = "deepfilternet3"
LOUDNESS_TARGETS = {"online": -16.0, "broadcast": -23.0}
TRUE_PEAK = -1.0


@dataclass(frozen=True)
class Level:
    """How much noise is removed against how much the voice may be altered."""

    atten_lim_db: float
    """The model's attenuation cap: at most this much is taken from any time-frequency bin."""
    classic: ClassicSettings


LEVELS: dict[str, Level] = {
    "light": Level(atten_lim_db=12.0, classic=ClassicSettings(noise_reduction_db=8.0, deess=0.2)),
    "normal": Level(atten_lim_db=24.0, classic=ClassicSettings(noise_reduction_db=14.0, deess=0.4, compress_ratio=1.5)),
    "strong": Level(
        atten_lim_db=100.0, classic=ClassicSettings(noise_reduction_db=24.0, deess=0.6, compress_ratio=2.0)
    ),
}

#: Output file endings -> (ffmpeg format, audio codec arguments).
_OUTPUT_FORMATS: dict[str, tuple[str, list[str]]] = {
    ".flac": ("flac", ["-c:a", "flac", "-sample_fmt", "s32"]),
    ".wav": ("wav", ["-c:a", "pcm_s24le"]),
    ".mka": ("matroska", ["-c:a", "flac", "-sample_fmt", "s32"]),
}


@dataclass(frozen=True)
class SpeechReport:
    """What :func:`clean_audio_track` did, for logs, ``--json`` and the job's records."""

    output: str
    method: Literal["model", "ffmpeg"]
    model: str | None
    """Registered name (or file stem) of the model; ``None`` for the ffmpeg chain."""
    model_sha256: str | None
    level: str
    loudness_target: float
    input_loudness: float
    """Integrated loudness of the source track, LUFS."""
    output_loudness: float
    output_true_peak: float
    sample_rate: int
    channels: int
    samples: int
    """Per channel: equal to the source track's."""
    start_time: float
    """The source track's start in its file, seconds: mux the cleaned track with this offset."""
    seconds: float
    """Duration of the track."""
    elapsed: float
    """Wall-clock seconds the clean-up took."""
    real_time_factor: float
    """``elapsed / seconds`` (below 1: faster than real time)."""
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def clean_audio_track(
    source: Path,
    stream_index: int,
    output: Path,
    *,
    level: str = "normal",
    loudness: float = -16.0,
    method: str = "auto",
    model: str | Path = DEFAULT_MODEL,
) -> SpeechReport:
    """Clean the speech of audio stream ``stream_index`` (ffprobe's stream index) of ``source``
    into ``output`` (``.flac``, ``.wav`` or ``.mka``), written atomically.

    ``level``: ``light``, ``normal`` or ``strong``. ``loudness``: integrated target, LUFS (-16
    online, -23 broadcast). ``method``: ``model`` (DeepFilterNet3, or ``model`` as a registered
    name or an archive path), ``ffmpeg`` (the classic chain) or ``auto`` (the model where its
    runtime is installed, else the chain; the report's ``note`` says so).
    """
    started = time.monotonic()
    settings = _check_options(level, loudness, method, output)
    track = _find_track(source, stream_index)
    measured_in = measure_loudness([*input_args(source), "-map", f"0:{track.index}"], "anull")
    if measured_in.samples == 0:
        raise InputError(f"audio stream #{track.index} of {source} holds no samples", "give a file with sound in it")
    channels = 1 if track.channels == 1 else 2
    runner, weights, note = _choose_runner(method, model, settings)

    with tempfile.TemporaryDirectory(prefix=f".{output.name}.", dir=output.parent) as scratch:
        cleaned = Path(scratch) / "cleaned.flac"
        if runner is not None:
            with runner:
                _enhance_with_model(track, runner, cleaned)
        else:
            window = find_noise_window(decode_mono(track, RATE), RATE)
            run_classic(track, RATE, window, settings.classic, cleaned)
        layout = ",pan=stereo|c0=c0|c1=c0" if channels == 2 else ""
        back = f"{resample(track.sample_rate)}{layout}"
        measured = measure_loudness(["-i", file_url(cleaned)], back)
        fmt, codec = _OUTPUT_FORMATS[output.suffix.lower()]
        result = Loudness(integrated=loudness, true_peak=TRUE_PEAK, lra=0.0, threshold=0.0)

        def write(tmp: Path) -> None:
            nonlocal result
            aim = loudness
            for _ in range(2):
                final = (
                    f"{back},{measured.loudnorm(aim, TRUE_PEAK)},{resample(track.sample_rate)},"
                    f"apad=whole_len={measured_in.samples},atrim=end_sample={measured_in.samples}"
                )
                args = ["-i", file_url(cleaned), "-af", final, "-ar", str(track.sample_rate), *codec]
                process = FfmpegProcess(CommandLine([*args, "-f", fmt, "-y", file_url(tmp)]))
                if process.wait() != 0:
                    raise OutputError(f"could not write {output} ({process.last_error()})", "check the output path")
                result = measure_loudness(["-f", fmt, "-i", file_url(tmp)], "anull")
                # Where the true-peak ceiling forces loudnorm's dynamic mode it lands up to about 1 LU
                # short; one more pass aimed by the shortfall brings it within a few tenths.
                if abs(result.integrated - loudness) <= 0.3:
                    break
                aim = min(-5.0, aim + (loudness - result.integrated))

        write_atomically(output, write)
    elapsed = time.monotonic() - started
    seconds = measured_in.samples / track.sample_rate
    return SpeechReport(
        output=str(output),
        method="model" if runner is not None else "ffmpeg",
        model=weights[0] if weights else None,
        model_sha256=weights[1] if weights else None,
        level=level,
        loudness_target=loudness,
        input_loudness=measured_in.integrated,
        output_loudness=result.integrated,
        output_true_peak=result.true_peak,
        sample_rate=track.sample_rate,
        channels=channels,
        samples=result.samples,
        start_time=track.start_time,
        seconds=seconds,
        elapsed=elapsed,
        real_time_factor=elapsed / seconds if seconds else 0.0,
        note=note,
    )


def _check_options(level: str, loudness: float, method: str, output: Path) -> Level:
    if level not in LEVELS:
        raise OptionsError(f"unknown level {level!r}", f"choose one of: {', '.join(LEVELS)}")
    if method not in METHODS:
        raise OptionsError(f"unknown method {method!r}", f"choose one of: {', '.join(METHODS)}")
    if not -40.0 <= loudness <= -5.0:
        raise OptionsError(f"loudness target {loudness} LUFS is out of range", "use -16 (online) or -23 (broadcast)")
    if output.suffix.lower() not in _OUTPUT_FORMATS:
        raise OutputError(f"cannot write cleaned audio as {output.name}", "give a .flac, .wav or .mka file name")
    if not output.parent.is_dir():
        raise OutputError(f"output folder {output.parent} does not exist", "create it first")
    if not os.access(output.parent, os.W_OK):
        raise OutputError(f"output folder {output.parent} is not writable", "choose a folder you can write to")
    return LEVELS[level]


def _find_track(source: Path, stream_index: int) -> AudioTrack:
    streams = probe_streams(source)
    if not streams.audio:
        raise InputError(f"{source} has no audio track", "give a file with sound; there is nothing to clean")
    for track in streams.audio:
        if track.index == stream_index:
            return track
    known = ", ".join(f"#{t.index}" for t in streams.audio)
    raise InputError(f"{source} has no audio stream #{stream_index}", f"its audio streams are {known}")


def _choose_runner(
    method: str, model: str | Path, level: Level
) -> tuple[DeepFilterRunner | None, tuple[str, str] | None, str]:
    if method == "ffmpeg":
        return None, None, ""
    try:
        weights = resolve_weights(model, "speech")
        runner = DeepFilterRunner(weights.path, atten_lim_db=level.atten_lim_db)
    except ModelError as err:
        if method == "model":
            raise
        return None, None, f"used the ffmpeg chain: {err}"
    return runner, (weights.name, weights.sha256), ""


def _enhance_with_model(track: AudioTrack, runner: DeepFilterRunner, target: Path) -> None:
    writer = MonoWriter(target, RATE)
    try:
        for chunk in decode_mono(track, RATE):
            writer.write(runner.process(chunk))
        writer.write(runner.flush())
    except BaseException:
        writer.abort()
        raise
    writer.close()


def report_line(report: SpeechReport) -> str:
    """One human line about a clean-up."""
    how = f"{report.model} ({report.method})" if report.model else "ffmpeg chain"
    return (
        f"{how}, level {report.level}: {report.input_loudness:.1f} -> {report.output_loudness:.1f} LUFS "
        f"(true peak {report.output_true_peak:.1f} dBTP), {report.seconds:.1f} s of audio in {report.elapsed:.1f} s "
        f"(real-time factor {report.real_time_factor:.2f})"
    )
