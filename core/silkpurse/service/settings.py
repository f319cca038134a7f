"""The services' settings: the core's :class:`~silkpurse.settings.Settings` plus what a server
needs (same ``SILKPURSE_`` prefix, one object per process)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from silkpurse.plan import Backend
from silkpurse.settings import Settings

StageService = Literal["extractor", "upscaler", "interpolator", "encoder"]

#: Default gRPC and metrics ports per service (a machine can run one of each side by side); "jobs"
#: is the orchestrator's Jobs API (silkpurse_orchestrator.jobs).
DEFAULT_PORTS: dict[str, int] = {
    "extractor": 50051,
    "upscaler": 50052,
    "interpolator": 50053,
    "encoder": 50054,
    "jobs": 50055,
}
DEFAULT_METRICS_PORTS: dict[str, int] = {
    "extractor": 9451,
    "upscaler": 9452,
    "interpolator": 9453,
    "encoder": 9454,
    "jobs": 9455,
}
#: Calls served at once by default: one batch at a time on a model replica, a few on the others,
#: many on the Jobs API (a WatchJob call holds its slot for as long as the job runs; its short
#: calls are not counted).
DEFAULT_CONCURRENCY: dict[str, int] = {"upscaler": 1, "interpolator": 1, "jobs": 64}


class ServiceSettings(Settings):
    host: str = Field(default="127.0.0.1", description="Address the gRPC and metrics servers bind to.")
    port: int | None = Field(default=None, ge=0, le=65535, description="gRPC port; default per stage.")
    metrics_port: int | None = Field(
        default=None, ge=0, le=65535, description="Prometheus port; default per stage, 0 turns it off."
    )
    max_concurrent: int | None = Field(
        default=None, ge=1, le=256, description="Calls served at once; default 1 for model stages, 64 for jobs, else 2."
    )
    max_queue: int = Field(
        default=2, ge=0, le=1024, description="Calls waiting for a slot; beyond: RESOURCE_EXHAUSTED."
    )
    queue_wait_s: float = Field(default=60.0, gt=0, description="Longest wait for a slot before RESOURCE_EXHAUSTED.")
    shutdown_grace_s: float = Field(
        default=60.0, ge=0, description="On SIGTERM, how long in-flight calls may take to finish (longer than a batch)."
    )
    log_format: Literal["json", "text"] = "json"
    backend: Backend = Field(
        default="eager", description="Model stages: the network's form (eager, compile, or tensorrt on CUDA)."
    )

    def port_for(self, stage: str) -> int:
        return self.port if self.port is not None else DEFAULT_PORTS[stage]

    def metrics_port_for(self, stage: str) -> int:
        return self.metrics_port if self.metrics_port is not None else DEFAULT_METRICS_PORTS[stage]

    def concurrency_for(self, stage: str) -> int:
        if self.max_concurrent is not None:
            return self.max_concurrent
        return DEFAULT_CONCURRENCY.get(stage, 2)
