"""stackctl down: stop and remove the stack's containers (and volumes with --volumes)."""

from __future__ import annotations

import time
from pathlib import Path

import click

from stackctl.cli.common import (
    FAILED,
    NO_ENGINE,
    OK,
    Failed,
    Say,
    complete_profiles,
    config_dir_option,
    docker_for,
    echo_json,
    exit_codes,
    json_errors,
    load_or_fail,
    ops_errors,
    verbosity_options,
)


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
    from stackctl.targets.compose_up import bring_down

    out = Say(quiet, verbose, as_json)
    reg = load_or_fail(config_dir)
    if reg.stack.deploy.target == "kubernetes":
        from stackctl.cli import cluster

        cluster.not_on_kubernetes(reg, "down")
    if reg.stack.deploy.target == "swarm":
        from stackctl.cli import cluster

        return cluster.down(reg, as_json)
    docker = docker_for(reg)
    what = f"profiles {', '.join(profiles)}" if profiles else f"stack {reg.stack.project!r}"
    out.progress(f"stopping {what}" + (" and removing its volumes" if volumes else ""))
    started = time.monotonic()
    with ops_errors():
        left = bring_down(reg, docker, list(profiles), volumes)
    took = time.monotonic() - started
    # bring_down returns the services removed (with profiles), else the containers left
    removed, left = (left, []) if profiles else ([], left)
    doc = {"ok": not left, "project": reg.stack.project, "profiles": list(profiles),
           "volumes": volumes, "removed": removed, "left": left, "seconds": round(took, 2)}
    if removed:
        out.detail("removed " + ", ".join(removed))
    out.detail(f"down took {took:.1f}s")
    if left:
        raise Failed("containers still present: " + ", ".join(left), doc=doc)
    if as_json:
        echo_json(doc)
    else:
        out.result(f"{what} down" + (" (volumes removed)" if volumes else ""))
