"""Prometheus metrics of a service (prometheus-client, served on the metrics port).

* ``silkpurse_calls_total{method, code}``: finished calls by status code
* ``silkpurse_calls_in_flight{method}``: calls being served (queued ones included)
* ``silkpurse_batches_total{stage, result}``: batches ``computed`` or ``resumed`` (an
  idempotent hit: the output was already in the store, nothing computed)
* ``silkpurse_frames_total{stage, result}``: their frames
* ``silkpurse_batch_seconds{stage}``: seconds per batch call (computed ones)
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

CALLS = Counter("silkpurse_calls", "Finished gRPC calls by method and status code.", ["method", "code"])
IN_FLIGHT = Gauge("silkpurse_calls_in_flight", "gRPC calls being served or queued.", ["method"])
BATCHES = Counter(
    "silkpurse_batches", "Batches by stage, computed or resumed (found in the store).", ["stage", "result"]
)
FRAMES = Counter("silkpurse_frames", "Frames by stage, computed or resumed.", ["stage", "result"])
BATCH_SECONDS = Histogram(
    "silkpurse_batch_seconds",
    "Seconds per computed batch (or segment) call.",
    ["stage"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)


def record_batch(stage: str, frames: int, *, resumed: bool, seconds: float) -> None:
    """Count one batch (or segment) a call produced or found."""
    result = "resumed" if resumed else "computed"
    BATCHES.labels(stage, result).inc()
    FRAMES.labels(stage, result).inc(frames)
    if not resumed:
        BATCH_SECONDS.labels(stage).observe(seconds)


def start_metrics_server(host: str, port: int) -> None:
    """Serve ``/metrics`` on ``host:port`` (0: no metrics server)."""
    if port:
        start_http_server(port, addr=host)
