"""stackctl validate: schema and cross-file checks with file:line errors."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..registry.checks import check
from ..registry.load import load_registry
from ..registry.problems import Problem, RegistryError
from .common import config_dir_option


@click.command()
@config_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable report.")
@click.option("--strict", is_flag=True, help="Warnings fail too (exit 1).")
def validate(config_dir: Path, as_json: bool, strict: bool) -> None:
    """Check the registry: types, references, fallbacks, ports, GPU groups, secrets.

    Exit 0 when clean, 1 on errors (and on warnings with --strict).
    """
    try:
        reg = load_registry(config_dir)
        problems = check(reg)
        summary = {"providers": len(reg.providers.providers),
                   "models": len(reg.mappings.exact_matches) + len(reg.mappings.load_balancing)}
    except RegistryError as exc:
        problems, summary = exc.problems, {}
    errors = [p for p in problems if p.severity == "error"]
    warnings = [p for p in problems if p.severity == "warning"]
    ok = not errors and not (strict and warnings)
    if as_json:
        click.echo(json.dumps(report(ok, errors, warnings, summary), indent=2))
    else:
        for p in errors + warnings:
            click.echo(p.render(), err=True)
        verdict = "ok" if ok else "failed"
        click.echo(f"{config_dir}: {verdict}: {len(errors)} error(s), {len(warnings)} warning(s)")
    if not ok:
        raise click.exceptions.Exit(1)


def report(ok: bool, errors: list[Problem], warnings: list[Problem], summary: dict) -> dict:
    """The --json document: stable keys, problems in file order."""
    def rows(items: list[Problem]) -> list[dict]:
        return [p.model_dump(exclude={"severity"}) for p in items]

    return {"ok": ok, "errors": rows(errors), "warnings": rows(warnings), "summary": summary}
