"""stackctl pin / unpin MODEL: keep a GPU group member from being evicted."""

from __future__ import annotations

from pathlib import Path

import click

from stackctl.cli.common import (
    FAILED,
    OK,
    Failed,
    complete_members,
    config_dir_option,
    echo_json,
    exit_codes,
    json_errors,
    load_or_fail,
)

EPILOG = exit_codes({
    OK: "done (or it already was so)",
    FAILED: "an unknown MODEL (the known ones are listed); unpin of a member the\n"
            "       registry pins; registry errors",
})


def _pin(config_dir: Path, model: str, pinned: bool, as_json: bool) -> None:
    from stackctl.errors import PlanError
    from stackctl.residency.client import client_for

    reg = load_or_fail(config_dir)

    def no_docker():  # type: ignore[no-untyped-def]
        raise AssertionError("pinning asks no engine")

    try:
        change = client_for(reg, no_docker).pin(model, pinned)
    except PlanError as exc:
        raise Failed(str(exc)) from None
    if as_json:
        echo_json({"ok": True, **change.model_dump(mode="json")})
        return
    verb = "pinned" if pinned else "unpinned"
    state = f"{change.member} is {verb}" if change.changed else \
        f"{change.member} already was {verb}" if pinned == change.pinned else \
        f"{change.member} stays pinned"
    click.echo(f"{state} (GPU group {change.group!r}); pinned: "
               f"{', '.join(change.pinned_members) or 'none'}")


@click.command(epilog=EPILOG)
@config_dir_option
@click.argument("model", shell_complete=complete_members)
@click.option("--json", "as_json", is_flag=True, help="The result as JSON.")
@json_errors
def pin(config_dir: Path, model: str, as_json: bool) -> None:
    """Pin MODEL's GPU group member: the on-demand scheduler never evicts it nor puts it
    away idle, `load` of another member never makes room with it, `unload` refuses it.
    Kept in the state folder ($STACKCTL_STATE_DIR), beside the registry's `gpu.pinned`;
    it loads nothing (`stackctl load` does)."""
    _pin(config_dir, model, True, as_json)


@click.command(epilog=EPILOG)
@config_dir_option
@click.argument("model", shell_complete=complete_members)
@click.option("--json", "as_json", is_flag=True, help="The result as JSON.")
@json_errors
def unpin(config_dir: Path, model: str, as_json: bool) -> None:
    """Remove the pin `stackctl pin` put on MODEL's member (one the registry pins stays)."""
    _pin(config_dir, model, False, as_json)
