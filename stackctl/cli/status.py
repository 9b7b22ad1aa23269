"""stackctl status: services, GPU groups and the gateway; the exit code tells healthy (0),
degraded (1), gateway down (3) and no Docker engine (4) apart."""

from __future__ import annotations

from pathlib import Path

import click

from stackctl.cli.common import (
    FAILED,
    GATEWAY_DOWN,
    NO_ENGINE,
    OK,
    config_dir_option,
    docker_for,
    exit_codes,
    json_errors,
    load_or_fail,
    ops_errors,
)
from stackctl.cli.ui import Ui
from stackctl.targets.factory import target_for


@click.command(epilog=exit_codes({
    OK: "healthy: the gateway answers and every present container is ready",
    FAILED: "degraded: a present container (not standby) is not ready or the cache\n"
            "       is missing; also: registry errors",
    GATEWAY_DOWN: "the gateway does not answer",
    NO_ENGINE: "no Docker engine answers",
}))
@config_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON (see README).")
@json_errors
def status(config_dir: Path, as_json: bool) -> None:
    """Show each service's state, health, port, probe latency and models; the active member
    of each exclusive GPU group; the gateway's URL, health and model list; and, when the
    monitoring profile runs, the alerts firing in Prometheus."""
    reg = load_or_fail(config_dir)
    target = target_for(reg, docker=lambda: docker_for(reg))
    with ops_errors():
        report = target.status()
    if as_json:
        click.echo(report.json_text())
    else:
        report.show(Ui())
    raise click.exceptions.Exit(report.exit_code)
