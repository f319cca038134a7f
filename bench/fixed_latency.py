"""A fixed-latency upscaler replica, for the scaling benchmark only (bench/bench_scaling.py).

    .venv/bin/python bench/fixed_latency.py --port N --metrics-port M --latency 0.4 [--trace PATH]

This machine has 2 cores, so K real model replicas cannot run side by side here: K replicas
would share the same 2 cores and show nothing about how the flow scales. This replica stands
for a model server with its own accelerator: the real upscaler service
(:class:`silkpurse_upscaler.server.UpscalerServicer`: validation, the model and options check,
the stage entry point :func:`silkpurse_upscaler.stage.upscale` reading and writing batches in
the real S3 store, metrics, health, the per-replica limit) around :class:`FixedLatencyUpscaler`,
an engine that takes a fixed wall time per batch (sleeping, so it uses no CPU) and returns the
frames enlarged by pixel repetition (nearest neighbour).

It is selected only by running this script; nothing in the package knows it. Its identity is
honest: the model is named ``fixed-latency-<ms>ms``, its "weights" sha256 is the hash of a
sentence describing it and its family is ``fixed-latency (benchmark)``, so its store keys
never collide with a real model's and a job planned for it is refused by a real replica (and
the other way round).

``--trace PATH`` appends one JSON line per ``Upscale`` call (job, step, wall-clock start and end,
engine seconds, frames), so the benchmark can tell busy from idle time on each replica.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from prometheus_client import Counter

from silkpurse.plan import ModelRef, Precision
from silkpurse.service.server import serve
from silkpurse.service.settings import ServiceSettings
from silkpurse.store import BatchStore, open_store
from silkpurse.v1 import upscaler_pb2, upscaler_pb2_grpc
from silkpurse_upscaler.server import SERVICE, UpscalerOptions, UpscalerServicer

FAMILY = "fixed-latency (benchmark)"

ENGINE_SECONDS = Counter(
    "silkpurse_fixed_latency_engine_seconds", "Seconds the fixed-latency engine spent on batches (benchmark only)."
)
ENGINE_BATCHES = Counter("silkpurse_fixed_latency_batches", "Batches the fixed-latency engine computed.")


def model_name(latency_s: float) -> str:
    """The model name a job must ask for to run on these replicas."""
    return f"fixed-latency-{round(latency_s * 1000)}ms"


class FixedLatencyUpscaler:
    """Takes ``latency_s`` of wall time per batch (whatever its size) and returns the frames
    ``scale`` times larger by pixel repetition. The engine surface the upscaler's servicer and
    stage use: ``name``, ``device``, ``precision``, ``identity()``, ``model_ref()``,
    ``warm_up()``, ``upscale()``."""

    kind = "upscale"
    precision: Precision = "fp32"

    def __init__(self, latency_s: float, scale: int = 2) -> None:
        if latency_s <= 0 or scale < 1:
            raise ValueError(f"a fixed-latency engine needs a positive latency and scale, not {latency_s}, {scale}")
        self.latency_s, self.scale = latency_s, scale
        self.name = model_name(latency_s)
        self.device = "fixed-latency sleep (no device)"
        what = f"silkpurse benchmark fixed-latency upscaler, {self.name}, nearest neighbour x{scale}, no weights"
        self.sha256 = hashlib.sha256(what.encode()).hexdigest()
        self.busy_s = 0.0
        self.batches = 0
        self._lock = threading.Lock()

    def identity(self, frame_size: tuple[int, int] | None = None) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "weights_sha256": self.sha256,
            "family": FAMILY,
            "precision": self.precision,
            "scale": self.scale,
            "tile": 0,
            "tile_pad": 0,
            "denoise_strength": None,
            "denoise_weights_sha256": None,
            "latency_s": self.latency_s,
        }

    def model_ref(self) -> ModelRef:
        return ModelRef(self.name, self.sha256, self.precision, FAMILY)

    def warm_up(self, frame_size: tuple[int, int] | None = None) -> float:
        return 0.0

    def upscale(self, frames: np.ndarray) -> np.ndarray:
        """``(N, H, W, C)`` -> ``(N, H*scale, W*scale, C)``, same dtype, ``latency_s`` after the call."""
        started = time.perf_counter()
        out = np.repeat(np.repeat(frames, self.scale, axis=1), self.scale, axis=2)
        time.sleep(max(0.0, self.latency_s - (time.perf_counter() - started)))
        seconds = time.perf_counter() - started
        with self._lock:
            self.busy_s += seconds
            self.batches += 1
        ENGINE_SECONDS.inc(seconds)
        ENGINE_BATCHES.inc()
        return out


class FixedLatencyServicer(UpscalerServicer):
    """The real upscaler servicer with the fixed-latency engine, tracing each call."""

    def __init__(self, store: BatchStore, latency_s: float, scale: int, trace: Path | None) -> None:
        super().__init__(store, UpscalerOptions(model=model_name(latency_s), scale=scale, device="cpu"))
        self.latency_s, self.scale, self.trace = latency_s, scale, trace
        self._trace_lock = threading.Lock()

    def load(self) -> None:
        import silkpurse_upscaler.stage  # noqa: F401  (imports torch now, not during the first call)

        self.engine = FixedLatencyUpscaler(self.latency_s, self.scale)  # type: ignore[assignment]

    def Upscale(  # noqa: N802 (gRPC's method name)
        self, request: upscaler_pb2.UpscaleRequest, context: grpc.ServicerContext
    ) -> upscaler_pb2.UpscaleResponse:
        start, clock = time.time(), time.perf_counter()
        engine = self.engine
        engine_before = engine.busy_s if isinstance(engine, FixedLatencyUpscaler) else 0.0
        response = super().Upscale(request, context)
        if self.trace is not None:
            engine_s = engine.busy_s - engine_before if isinstance(engine, FixedLatencyUpscaler) else 0.0
            line = {
                "job": request.job,
                "step": request.step,
                "start": start,
                "end": start + (time.perf_counter() - clock),
                "engine_s": round(engine_s, 6),  # approximate if calls overlap (max_concurrent > 1)
                "frames": response.output.frames,
                "resumed": response.resumed,
            }
            with self._trace_lock, self.trace.open("a") as handle:
                handle.write(json.dumps(line) + "\n")
        return response


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A fixed-latency upscaler replica (benchmark only).")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--metrics-port", type=int, required=True)
    parser.add_argument("--host", default=None)
    parser.add_argument("--latency", type=float, required=True, help="Seconds per batch.")
    parser.add_argument("--scale", type=int, default=2)
    parser.add_argument("--trace", type=Path, default=None, help="Append one JSON line per Upscale call here.")
    args = parser.parse_args(argv)
    overrides: dict[str, Any] = {"port": args.port, "metrics_port": args.metrics_port}
    if args.host:
        overrides["host"] = args.host
    settings = ServiceSettings().model_copy(update=overrides)
    servicer = FixedLatencyServicer(open_store(settings), args.latency, args.scale, args.trace)
    return serve(
        servicer,
        upscaler_pb2_grpc.add_UpscalerServiceServicer_to_server,
        SERVICE,
        "upscaler",
        settings,
        warm_up=servicer.load,
    )


if __name__ == "__main__":
    sys.exit(main())
