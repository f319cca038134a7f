"""``silkpurse-orchestrator``: serve the flow's deployment, and the Jobs API."""

from __future__ import annotations

import sys

import click

from silkpurse.errors import SilkpurseError


@click.group()
def main() -> None:
    """silkpurse's Prefect orchestration (PREFECT_API_URL names the server)."""


@main.command()
@click.option("--runs", type=click.IntRange(1, 1000), default=4, show_default=True, help="Flow runs at a time here.")
@click.option(
    "--max-runs", type=click.IntRange(1, 10000), help="Flow runs at a time over all workers (deployment limit)."
)
@click.option(
    "--webserver", is_flag=True, help="Answer /health on PREFECT_RUNNER_SERVER_HOST:PORT (for liveness probes)."
)
def serve(runs: int, max_runs: int | None, webserver: bool) -> None:
    """Serve the enhance-video/default deployment (runs from the UI or `prefect deployment run`)."""
    from silkpurse_orchestrator import deploy

    try:
        deploy.serve(runs=runs, max_runs=max_runs, webserver=webserver)
    except SilkpurseError as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(err.exit_code)


@main.command()
@click.option("--host", help="Address to bind [default: 127.0.0.1, or SILKPURSE_HOST].")
@click.option("--port", type=int, help="gRPC port [default: 50055, or SILKPURSE_PORT].")
@click.option("--metrics-port", type=int, help="Prometheus port, 0 = off [default: 9455, or SILKPURSE_METRICS_PORT].")
def jobs(host: str | None, port: int | None, metrics_port: int | None) -> None:
    """Serve the Jobs gRPC API: submit, get, watch and cancel runs of enhance-video/default."""
    from silkpurse.service.settings import ServiceSettings
    from silkpurse_orchestrator.jobs import main as serve_jobs

    overrides = {k: v for k, v in {"host": host, "port": port, "metrics_port": metrics_port}.items() if v is not None}
    try:
        code = serve_jobs(ServiceSettings().model_copy(update=overrides))
    except SilkpurseError as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(err.exit_code)
    if code:
        sys.exit(code)
