"""Options and helpers shared by the commands."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, TypeVar

import click

from ..registry.load import Registry, load_registry
from ..registry.problems import RegistryError

F = TypeVar("F", bound=Callable)


def config_dir_option(func: F) -> F:
    return click.option(
        "-C", "--config-dir", type=click.Path(file_okay=False, path_type=Path),
        default=Path("config"), show_default=True, envvar="STACKCTL_CONFIG_DIR",
        help="Folder holding providers.yaml, model-mappings.yaml and stack.yaml.",
    )(func)


def load_or_fail(config_dir: Path) -> Registry:
    """Load and fully check the registry; a user mistake becomes a ClickException, not a traceback."""
    from ..registry.checks import check

    try:
        reg = load_registry(config_dir)
    except RegistryError as exc:
        raise click.ClickException(_summary(exc.problems)) from None
    errors = [p for p in check(reg) if p.severity == "error"]
    if errors:
        raise click.ClickException(_summary(errors) + "\nrun `stackctl validate` for details")
    return reg


def _summary(problems: list) -> str:
    lines = [p.render() for p in problems]
    return f"the registry has {len(lines)} error(s):\n" + "\n".join(lines)
