"""stackctl up: validate, regenerate if stale, start profiles, health-gate, check the gateway."""

from __future__ import annotations

from pathlib import Path

import click

from stackctl.cli.common import (
    FAILED,
    NO_ENGINE,
    OK,
    Watched,
    complete_profiles,
    config_dir_option,
    docker_for,
    exit_codes,
    json_errors,
    load_or_fail,
    ops_errors,
    prepare_files,
    verbosity_options,
)
from stackctl.cli.ui import Ui
from stackctl.targets.compose_up import UpOptions
from stackctl.targets.factory import target_for


@click.command(epilog=exit_codes({
    OK: "every service is healthy, the gateway lists the expected models",
    FAILED: "registry errors, a missing image, a service failed or timed out, the\n"
            "       gateway check failed, or a concurrent up/switch (see --wait)",
    NO_ENGINE: "no Docker engine answers",
}))
@config_dir_option
@click.option("-p", "--profile", "profiles", multiple=True, metavar="PROFILE",
              shell_complete=complete_profiles,
              help="Profile to start (repeatable); default: stack.yaml default_profiles.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=300,
              show_default=True, envvar="STACKCTL_TIMEOUT", show_envvar=True,
              help="Seconds each service may take to become healthy.")
@click.option("--wait", "lock_wait", type=click.FloatRange(min=0), default=None,
              envvar="STACKCTL_LOCK_WAIT", show_envvar=True,
              help="Wait up to this many seconds for a concurrent up/switch instead of failing.")
@click.option("--pull", is_flag=True,
              help="Pull missing images first (not the local stackctl-local/* set: "
                   "`stackctl images build` makes those).")
@click.option("--json", "as_json", is_flag=True,
              help="Print the result as JSON (profiles, services, ready_after, gateway, "
                   "expected models; never the key). Progress goes to stderr.")
@verbosity_options
@json_errors
def up(config_dir: Path, profiles: tuple[str, ...], timeout: float, lock_wait: float | None,
       pull: bool, as_json: bool, quiet: bool, verbose: bool) -> None:
    """Start the stack and wait until every service is healthy.

    Fails fast when a container exits or turns unhealthy (naming it, with its exit code and
    last log lines) and says "X not healthy after Ns" on timeout. Refuses to start two
    members of an exclusive GPU group: use `stackctl switch` for that. Checks first that
    every image is on this machine (nothing starts if one is missing).
    """
    ui = Ui(quiet, verbose, as_json)
    reg = load_or_fail(config_dir)
    marks = {"ready": "[green]✓[/]", "failed": "[red]✗[/]", "waiting": "[yellow]…[/]"}
    waiting: dict[str, str] = {}

    def on_change(service: str, verdict: str, t: float) -> None:
        if verdict == "waiting":
            waiting[service] = verdict
        else:
            waiting.pop(service, None)
        ui.rich(f" {marks[verdict]} {service:<18} {verdict:<8} {t:5.1f}s")

    def docker():  # type: ignore[no-untyped-def]
        adapter = docker_for(reg)
        return Watched(adapter, ui.detail, waiting=lambda: waiting) if verbose else adapter

    target = target_for(reg, docker=docker)
    with ops_errors():  # no engine (exit 4), or none fit: fail before a file is written
        target.before_up()
    with ops_errors():  # a .env that cannot be completed safely is a user error
        files = prepare_files(reg, ui.rich)
    opts = UpOptions(profiles=list(profiles), timeout=timeout, lock_wait=lock_wait, pull=pull)
    with ops_errors():
        report = target.up(opts, files, ui, on_change)
    if as_json:
        click.echo(report.json_text())
        return
    report.show(ui)
