"""Serving the flow: the ``enhance-video/default`` deployment."""

from __future__ import annotations

from silkpurse_orchestrator import DEPLOYMENT_NAME
from silkpurse_orchestrator.flow import enhance_video


def serve(*, runs: int, max_runs: int | None = None, webserver: bool = False) -> None:
    """Serve ``enhance-video/default`` from this process: Prefect UI runs and ``prefect
    deployment run`` start here, each flow run in its own subprocess (``runs`` at a time here,
    ``max_runs`` at a time over every process serving it: the deployment's concurrency limit)."""
    enhance_video.serve(
        name=DEPLOYMENT_NAME,
        limit=runs,
        global_limit=max_runs,
        description="Enhance a recording through the silkpurse services (see docs/orchestration.md).",
        tags=["silkpurse"],
        webserver=webserver,
    )
