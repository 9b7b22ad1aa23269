"""stackctl down: stop and remove the stack's containers (and volumes with --volumes)."""

from __future__ import annotations

from pathlib import Path

import click

from .common import config_dir_option, docker_for, load_or_fail


@click.command()
@config_dir_option
@click.option("-p", "--profile", "profiles", multiple=True,
              help="Only these profiles' services (repeatable); default: the whole stack.")
@click.option("--volumes", is_flag=True, help="Also remove named volumes (model caches!).")
def down(config_dir: Path, profiles: tuple[str, ...], volumes: bool) -> None:
    """Stop and remove containers and the network; keep volumes unless --volumes."""
    from ..docker.adapter import DockerError
    from ..ops.up import bring_down

    reg = load_or_fail(config_dir)
    try:
        left = bring_down(reg, docker_for(reg), list(profiles), volumes)
    except DockerError as exc:
        raise click.ClickException(str(exc)) from None
    what = f"profiles {', '.join(profiles)}" if profiles else f"stack {reg.stack.project!r}"
    click.echo(f"{what} down" + (" (volumes removed)" if volumes else ""))
    if left and not profiles:
        raise click.ClickException("containers still present: " + ", ".join(left))
