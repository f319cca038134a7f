"""Real recorded speech (Debian's asterisk-core-sounds-en-wav: a human voice, 8 kHz) and
generated real-world-like noises, mixed at a chosen SNR: shared by tests/test_speech.py and
bench/bench_speech.py."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

SOUNDS = Path("/usr/share/asterisk/sounds/en_US_f_Allison")
RATE = 48_000


def read_audio(path: Path, rate: int = RATE, stream: str = "a:0", channels: int = 1) -> np.ndarray:
    """``path``'s audio as float32 at ``rate`` (mono: shape (n,); else (n, channels))."""
    raw = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-map", f"0:{stream}", "-ac", str(channels)]
        + ["-ar", str(rate), "-f", "f32le", "-"],
        capture_output=True,
        check=True,
    ).stdout
    data = np.frombuffer(raw, dtype=np.float32)
    return data if channels == 1 else data.reshape(-1, channels)


def speech(names: list[str], rate: int = RATE, gap: float = 0.4) -> np.ndarray:
    """Prompts of the recorded voice, one after another with ``gap`` seconds of silence."""
    parts: list[np.ndarray] = []
    for name in names:
        path = SOUNDS / f"{name}.wav"
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing: run scripts/setup.sh --test (asterisk-core-sounds-en-wav)")
        parts += [np.zeros(int(gap * rate), np.float32), read_audio(path, rate)]
    parts.append(np.zeros(int(gap * rate), np.float32))
    voice = np.concatenate(parts)
    return (voice / np.abs(voice).max() * 0.5).astype(np.float32)


def _coloured(n: int, rng: np.random.Generator, exponent: float) -> np.ndarray:
    """Noise whose power falls as 1/f**exponent (0 white, 1 pink, 2 brown)."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n)
    f[0] = f[1]
    noise = np.fft.irfft(spectrum / f ** (exponent / 2), n)
    return noise / noise.std()


def noise(kind: str, n: int, rate: int = RATE, seed: int = 1) -> np.ndarray:
    """Unit-power noise: ``hum`` (50 Hz mains and its harmonics, with a little hiss), ``hiss``
    (tape/preamp: white plus pink), ``street`` (brown rumble, pink wash, passing swells and
    clatter) or ``babble`` (other talkers: the same voice's other prompts, overlapped)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / rate
    if kind == "hum":
        tone = sum(np.sin(2 * np.pi * 50 * k * t + k) / k for k in range(1, 12))
        out = tone / np.std(tone) + 0.1 * rng.standard_normal(n)
    elif kind == "hiss":
        out = rng.standard_normal(n) + _coloured(n, rng, 1.0)
    elif kind == "street":
        swell = 1 + 0.8 * np.sin(2 * np.pi * 0.15 * t + 1) ** 2
        clatter = np.zeros(n)
        for start in rng.integers(0, max(1, n - rate // 5), size=max(1, n // rate)):
            length = rate // 20
            clatter[start : start + length] += (
                rng.standard_normal(min(length, n - start)) * np.hanning(length)[: n - start]
            )
        out = swell * (_coloured(n, rng, 2.0) + 0.5 * _coloured(n, rng, 1.0)) + 0.7 * clatter
    elif kind == "babble":
        names = ["demo-congrats", "demo-instruct", "basic-pbx-ivr-main", "demo-echotest", "priv-callee-options"]
        out = np.zeros(n)
        for k, name in enumerate(names):
            voice = read_audio(SOUNDS / f"{name}.wav", rate).astype(np.float64)
            voice = np.tile(voice, n // len(voice) + 1)
            shift = int(rng.integers(0, len(voice) - n + 1))
            out += np.roll(voice, -shift)[:n] * (0.6 + 0.1 * k)
    else:
        raise ValueError(f"unknown noise {kind!r}")
    out = np.asarray(out, dtype=np.float64)
    return (out / out.std()).astype(np.float32)


def mix(clean: np.ndarray, noisy: np.ndarray, snr_db: float) -> np.ndarray:
    """``clean`` plus ``noisy`` scaled to ``snr_db`` (speech power over its active part)."""
    active = np.abs(clean) > 1e-4
    speech_power = float(np.mean(np.square(clean[active].astype(np.float64))))
    scale = np.sqrt(speech_power / 10 ** (snr_db / 10))
    out = clean + scale * noisy[: len(clean)]
    peak = np.abs(out).max()
    return (out / peak * 0.9 if peak > 0.9 else out).astype(np.float32)


def write_wav(path: Path, samples: np.ndarray, rate: int = RATE, codec: str = "pcm_s16le") -> Path:
    """Write mono float samples with ffmpeg (any container the suffix names)."""
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "f32le", "-ar", str(rate), "-ac", "1", "-i", "-"]
        + ["-c:a", codec, str(path)],
        input=samples.astype(np.float32).tobytes(),
        check=True,
    )
    return path
