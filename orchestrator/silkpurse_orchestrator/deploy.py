"""Serving the flow: the ``enhance-video/default`` deployment and the stages' concurrency limits."""

from __future__ import annotations

from prefect import get_client

from silkpurse.service.client import replica_count
from silkpurse.settings import Settings
from silkpurse_orchestrator import DEPLOYMENT_NAME
from silkpurse_orchestrator.flow import enhance_video
from silkpurse_orchestrator.stages import LIMITS


def limit_sizes(settings: Settings) -> dict[str, int]:
    """Each stage's global concurrency limit: what its replicas take at once (model replicas
    ``calls_per_replica`` each, so one call waits queued behind the running one)."""
    addresses = {
        "upscaler": settings.upscaler_addr,
        "interpolator": settings.interpolator_addr,
        "encoder": settings.encoder_addr,
    }
    per_call = {"upscaler": settings.calls_per_replica, "interpolator": settings.calls_per_replica}
    return {LIMITS[stage]: replica_count(address) * per_call.get(stage, 1) for stage, address in addresses.items()}


def set_limits(settings: Settings) -> dict[str, int]:
    """Create or resize the stages' global concurrency limits on the Prefect server."""
    sizes = limit_sizes(settings)
    with get_client(sync_client=True) as client:
        for name, size in sizes.items():
            client.upsert_global_concurrency_limit_by_name(name, size)
    return sizes


def serve(*, runs: int, webserver: bool = False) -> None:
    """Serve ``enhance-video/default`` from this process: Prefect UI runs and ``prefect
    deployment run`` start here, each flow run in its own subprocess (``runs`` at a time)."""
    enhance_video.serve(
        name=DEPLOYMENT_NAME,
        limit=runs,
        description="Enhance a recording through the silkpurse services (see docs/orchestration.md).",
        tags=["silkpurse"],
        webserver=webserver,
    )
