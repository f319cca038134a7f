"""``silkpurse-orchestrator``: serve the flow's deployment."""

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
