"""stackctl down: stop and remove the stack's containers (and volumes with --volumes)."""

from __future__ import annotations

from pathlib import Path

import click

from stackctl.cli.common import (
    FAILED,
    NO_ENGINE,
    OK,
    Failed,
    complete_profiles,
    config_dir_option,
    docker_for,
    exit_codes,
    json_errors,
    load_or_fail,
    ops_errors,
    verbosity_options,
)
from stackctl.cli.ui import Ui
from stackctl.targets.factory import target_for


@click.command(epilog=exit_codes({
    OK: "stopped and removed",
    FAILED: "registry errors, Docker refused, or stack containers are still present",
    NO_ENGINE: "no Docker engine answers",
}))
@config_dir_option
@click.option("-p", "--profile", "profiles", multiple=True, metavar="PROFILE",
              shell_complete=complete_profiles,
              help="Only these profiles' services (repeatable); default: the whole stack.")
@click.option("--volumes", is_flag=True, help="Also remove named volumes (model caches!).")
@click.option("--json", "as_json", is_flag=True,
              help="Print the result as JSON (what was removed, what is left).")
@verbosity_options
@json_errors
def down(config_dir: Path, profiles: tuple[str, ...], volumes: bool, as_json: bool,
         quiet: bool, verbose: bool) -> None:
    """Stop and remove containers and the network; keep volumes unless --volumes."""
    ui = Ui(quiet, verbose, as_json)
    reg = load_or_fail(config_dir)
    target = target_for(reg, docker=lambda: docker_for(reg))
    with ops_errors():
        report = target.down(list(profiles), volumes, ui)
    report.show(ui)
    if not report.ok:
        raise Failed(report.problem, doc=report.document())
    if as_json:
        click.echo(report.json_text())
