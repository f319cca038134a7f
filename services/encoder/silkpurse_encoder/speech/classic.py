"""The classic chain, built from ffmpeg's own filters: the fallback when no model can run, and
the baseline the model is measured against (docs/speech.md).

1. ``highpass`` at 80 Hz: rumble, handling noise and the fundamental of mains hum.
2. ``afftdn`` with its noise floor learned from the quietest half second of the track (found by
   frame energy in one streaming pass, digital silence excluded). afftdn's own profile sampling
   (``sample_noise`` through ``asendcmd``) changed nothing measurable in ffmpeg 5.1; setting the
   floor to the measured level gave +2 to +4 dB SI-SDR on hiss (docs/speech.md). Its delay is
   measured once and compensated, so the output lines up with the input to the sample.
3. ``deesser`` and, at the stronger levels, a gentle ``acompressor`` (1.5:1 or 2:1 above
   -26 dBFS): sibilance and level swings.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import numpy.typing as npt

from silkpurse.errors import MediaError
from silkpurse.media.ffmpeg_process import FfmpegProcess
from silkpurse.media.sources import input_args
from silkpurse.metrics import lag_seconds
from silkpurse.settings import get_settings
from silkpurse_encoder.speech.audio import AudioTrack, mono_at

FRAME_SECONDS = 0.02
NOISE_SECONDS = 0.5
_SILENCE_DB = -90.0


@dataclass(frozen=True)
class NoiseWindow:
    """Where the track is quietest (not silent), in samples at the chain's rate."""

    start: int
    end: int
    level_db: float
    """Mean level of that stretch, dBFS."""


def frame_energies_db(samples: npt.NDArray[np.float32], frame: int) -> npt.NDArray[np.float64]:
    """Level of each whole frame of ``frame`` samples, dBFS."""
    whole = len(samples) // frame * frame
    power = np.square(samples[:whole].astype(np.float64)).reshape(-1, frame).mean(axis=1)
    return np.asarray(10 * np.log10(power + 1e-20))


def quietest_window(energies_db: npt.NDArray[np.float64], frame: int, window_frames: int) -> NoiseWindow | None:
    """The run of ``window_frames`` frames of least mean energy, ignoring digital silence."""
    if len(energies_db) < window_frames:
        return None
    power = np.where(energies_db > _SILENCE_DB, 10 ** (energies_db / 10), np.inf)
    sums = np.convolve(power, np.ones(window_frames), mode="valid")
    best = int(np.argmin(sums))
    if not np.isfinite(sums[best]):
        return None
    level = float(10 * np.log10(sums[best] / window_frames))
    return NoiseWindow(start=best * frame, end=(best + window_frames) * frame, level_db=level)


def find_noise_window(chunks: Iterable[npt.NDArray[np.float32]], rate: int) -> NoiseWindow | None:
    """Stream the track once (bounded memory: one level per 20 ms frame) and find its quietest stretch."""
    frame = int(rate * FRAME_SECONDS)
    levels: list[npt.NDArray[np.float64]] = []
    rest = np.zeros(0, dtype=np.float32)
    for chunk in chunks:
        data = np.concatenate([rest, chunk])
        whole = len(data) // frame * frame
        levels.append(frame_energies_db(data[:whole], frame))
        rest = data[whole:]
    if not levels:
        return None
    return quietest_window(np.concatenate(levels), frame, round(NOISE_SECONDS / FRAME_SECONDS))


@dataclass(frozen=True)
class ClassicSettings:
    noise_reduction_db: float
    """afftdn's ``nr``: how far noise is pushed down."""
    deess: float
    """deesser intensity, 0..1."""
    compress_ratio: float = 1.0
    """acompressor ratio above -26 dBFS (1 = off)."""


def run_classic(
    track: AudioTrack, rate: int, window: NoiseWindow | None, settings: ClassicSettings, target: Path
) -> None:
    """Clean ``track`` with the classic chain into ``target`` (mono FLAC at ``rate``)."""
    # afftdn answers late by part of its window (1200 samples at 48 kHz in ffmpeg 5.1): pad the end
    # by that much and cut it from the start, so the chain's output lines up with its input.
    delay = afftdn_delay(rate)
    floor = min(-20.0, max(-80.0, window.level_db)) if window is not None else -50.0
    chain = [
        f"[0:{track.index}]{mono_at(rate)}",
        "highpass=f=80:poles=2",
        f"apad=pad_len={delay}",
        f"afftdn=nr={settings.noise_reduction_db}:nf={floor:.1f}",
        f"atrim=start_sample={delay}",
        f"deesser=i={settings.deess}:m=0.5:f=0.5",
    ]
    if settings.compress_ratio > 1:
        chain.append(f"acompressor=threshold=0.05:ratio={settings.compress_ratio}:attack=15:release=250:knee=4")
    args = [*input_args(track.path), "-filter_complex", ",".join(chain) + "[out]", "-map", "[out]"]
    args += ["-c:a", "flac", "-sample_fmt", "s32", "-f", "flac", "-y", str(target)]
    process = FfmpegProcess(CommandLine(args))
    if process.wait() != 0:
        raise MediaError(f"the ffmpeg speech chain failed on {track.path} ({process.last_error()})")


@lru_cache(maxsize=4)
def afftdn_delay(rate: int) -> int:
    """Samples by which this ffmpeg's ``afftdn`` delays its output at ``rate``, measured once on
    two seconds of noise (cross-correlation peak)."""
    source = f"anoisesrc=r={rate}:a=0.3:d=2:seed=7"
    args = [get_settings().ffmpeg, "-v", "error", "-nostdin", "-f", "lavfi", "-i", source]
    raw = subprocess.run([*args, "-f", "f32le", "-"], capture_output=True, check=True).stdout
    out = subprocess.run([*args, "-af", "afftdn=nr=1", "-f", "f32le", "-"], capture_output=True, check=True).stdout
    a, b = np.frombuffer(raw, np.float32), np.frombuffer(out, np.float32)
    return max(0, round(lag_seconds(a, b, rate, max_lag=0.2) * rate))


class CommandLine:
    """ffmpeg arguments written out by hand, in the shape :class:`FfmpegProcess` runs (the graph
    names a filter instance for ``asendcmd``, which ffmpeg-python cannot express)."""

    def __init__(self, args: list[str]) -> None:
        self.args = args

    def global_args(self, *args: str) -> CommandLine:
        return CommandLine([*args, *self.args])

    def compile(self, cmd: str = "ffmpeg") -> list[str]:
        return [cmd, *self.args]
