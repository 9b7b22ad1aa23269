"""stackctl doctor: can this machine run the stack? One line per check, the fix under it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from stackctl.cli.common import (
    FAILED,
    OK,
    config_dir_option,
    config_dir_problem,
    echo_json,
    exit_codes,
    json_errors,
)
from stackctl.docker import adapter
from stackctl.doctor.checks import diagnose
from stackctl.doctor.facts import Machine

MARKS = {"ok": ("✓", "green"), "warn": ("!", "yellow"), "fail": ("✗", "red")}


@click.command(epilog=exit_codes({
    OK: "no check failed (warnings allowed)",
    FAILED: "a check failed (no Docker engine answering is one)",
}))
@config_dir_option
@click.option("--json", "as_json", is_flag=True,
              help="Print {ok, checks: [{name, status, detail, fix}]} as JSON.")
@json_errors
def doctor(config_dir: Path, as_json: bool) -> None:
    """Check that this machine can run the stack, and say how to fix what it cannot.

    Checks, each independent of the others: the Docker engine answers (and its version);
    Compose v2; the NVIDIA runtime (toolkit or CDI), needed when an enabled provider
    reserves a GPU; free disk where Docker keeps images and volumes (warn under 20 GiB,
    fail under 2 GiB); port conflicts; the registry; the images the default profiles need;
    llama.cpp model files in their volumes;
    .env (mode 0600, the gateway key and cache password set; names only, never values).
    Each line is ok (✓), warn (!) or fail (✗), with the fix on the next line.
    """
    problem = config_dir_problem(config_dir)
    folder_problem = None
    if problem:
        folder_problem = problem[0] + (f" ({problem[1]})" if problem[1] else "")
    report = diagnose(config_dir, Machine(docker_for=_docker), folder_problem)
    if as_json:
        echo_json({"ok": report.ok, "checks": [c.model_dump() for c in report.checks]})
    else:
        for c in report.checks:
            mark, colour = MARKS[c.status]
            click.echo(f"{click.style(mark, fg=colour)} {c.name}: {c.detail}")
            if c.fix and c.status != "ok":
                lines = c.fix.splitlines()
                click.echo(f"    fix: {lines[0]}")
                for line in lines[1:]:
                    click.echo(f"         {line}")
        n = report.counts()
        click.echo(f"doctor: {n['ok']} ok, {n['warn']} warning(s), {n['fail']} failed")
    raise click.exceptions.Exit(report.exit_code)


def _docker(reg: Any) -> Any:
    """The Docker adapter for the stack (its compose file need not exist yet)."""
    if reg is None:
        return adapter.Docker()
    return adapter.Docker(reg.output_dir / "compose.yaml", reg.stack.project, reg.env_file)
