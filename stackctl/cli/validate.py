"""stackctl validate: schema and cross-file checks with file:line errors."""

from __future__ import annotations

import json
from pathlib import Path

import click

from stackctl.cli.common import (
    FAILED,
    OK,
    config_dir_option,
    config_dir_problem,
    env_problems,
    exit_codes,
)
from stackctl.registry.budget_checks import budget_notes
from stackctl.registry.checks import check, sleep_costs
from stackctl.registry.load import load_registry
from stackctl.registry.problems import Problem, RegistryError, display_path


@click.command(epilog=exit_codes({
    OK: "the registry is clean (warnings allowed unless --strict)",
    FAILED: "errors (with --strict: warnings too), or -C is no registry folder",
}))
@config_dir_option
@click.option("--json", "as_json", is_flag=True,
              help="Print a machine-readable report (problems with file, line, key path).")
@click.option("--strict", is_flag=True, help="Warnings fail too (exit 1).")
def validate(config_dir: Path, as_json: bool, strict: bool) -> None:
    """Check the registry: types, references, fallbacks, ports, GPU groups, secrets."""
    summary: dict = {}
    folder = config_dir_problem(config_dir)
    if folder is not None:
        message, hint = folder
        problems = [Problem(severity="error", file=display_path(config_dir), message=message,
                            hint=hint)]
    else:
        try:
            reg = load_registry(config_dir)
            problems = check(reg) + env_problems(reg)  # .env: as Compose reads it
            summary = {"providers": len(reg.providers.providers),
                       "models": len(reg.mappings.exact_matches) + len(reg.mappings.load_balancing),
                       "notes": sleep_costs(reg) + budget_notes(reg)}
        except RegistryError as exc:
            problems = exc.problems
    errors = [p for p in problems if p.severity == "error"]
    warnings = [p for p in problems if p.severity == "warning"]
    ok = not errors and not (strict and warnings)
    if as_json:
        click.echo(json.dumps(report(ok, errors, warnings, summary), indent=2))
    else:
        for p in errors + warnings:
            click.echo(p.render(), err=True)
        for note in summary.get("notes", []):
            click.echo(f"note: {note}")
        verdict = "ok" if ok else "failed"
        click.echo(f"{config_dir}: {verdict}: {len(errors)} error(s), {len(warnings)} warning(s)")
    if not ok:
        raise click.exceptions.Exit(FAILED)


def report(ok: bool, errors: list[Problem], warnings: list[Problem], summary: dict) -> dict:
    """The --json document: stable keys, problems in file order."""
    def rows(items: list[Problem]) -> list[dict]:
        return [p.model_dump(exclude={"severity"}) for p in items]

    return {"ok": ok, "errors": rows(errors), "warnings": rows(warnings), "summary": summary}
