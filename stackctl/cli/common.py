"""Options and helpers shared by the commands."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import click

if TYPE_CHECKING:  # imported when used: `switch` must start without pydantic and ruamel
    from ..registry.load import Registry

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
    from ..registry.load import load_registry
    from ..registry.problems import RegistryError

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


def prepare_files(reg: Registry, console) -> None:  # type: ignore[no-untyped-def]
    """Create missing secrets in .env and regenerate stale files before touching Docker."""
    from ..ops.envfile import ensure_secrets
    from ..render.files import render_all, write_all

    names = [reg.stack.gateway.master_key_env, reg.stack.monitoring.grafana_password_env]
    for name in ensure_secrets(reg.env_file, names):
        console.print(f"created {name} in {reg.env_file.name} (random; not shown)")
    files = render_all(reg)
    existed = {f.path for f in files if f.path.exists()}
    for path in write_all(files):
        why = "the registry had changed" if path in existed else "first run"
        console.print(f"wrote {path.name} ({why})")


def docker_for(reg: Registry):  # type: ignore[no-untyped-def]
    """The Docker adapter for this stack."""
    return docker_on(reg.output_dir / "compose.yaml", reg.stack.project, reg.env_file)


def docker_on(compose: Path, project: str, env_file: Path):  # type: ignore[no-untyped-def]
    from ..docker.adapter import Docker

    if not compose.exists():
        raise click.ClickException(f"{compose} is missing: run `stackctl generate`")
    return Docker(compose, project, env_file)
