"""stackctl generate: registry → compose/compose.yaml and compose/litellm/config.yaml."""

from __future__ import annotations

from pathlib import Path

import click

from ..render.files import render_all, write_all
from .common import config_dir_option, load_or_fail


@click.command()
@config_dir_option
@click.option("--check", is_flag=True,
              help="Write nothing; exit 1 with a unified diff if a generated file is stale.")
def generate(config_dir: Path, check: bool) -> None:
    """Render the compose file and the LiteLLM config from the registry (byte-stable)."""
    reg = load_or_fail(config_dir)
    files = render_all(reg)
    if check:
        stale = [f for f in files if f.is_stale()]
        for f in stale:
            click.echo(f.diff(_label(f.path)), nl=False)
        if stale:
            raise click.ClickException(
                f"{len(stale)} generated file(s) are stale: run `stackctl generate -C {config_dir}`")
        click.echo("generated files are up to date")
        return
    written = write_all(files)
    for f in files:
        click.echo(f"{'wrote' if f.path in written else 'unchanged'} {_label(f.path)}")


def _label(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
