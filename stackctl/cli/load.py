"""stackctl load MODEL: make a GPU group member awake — a switch in an exclusive group,
beside the loaded members that fit in a group with a memory budget."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from stackctl.cli.common import (
    FAILED,
    NO_ENGINE,
    OK,
    UNRESTORED,
    Failed,
    complete_members,
    config_dir_option,
    docker_for,
    echo_json,
    exit_codes,
    json_errors,
    load_or_fail,
    ops_errors,
    verbosity_options,
)
from stackctl.cli.ui import Ui
from stackctl.switching.loop import SwitchFailed

F = TypeVar("F", bound=Callable[..., Any])


def change_options(func: F) -> F:
    """MODEL, --dry-run, --wait, --json, -q/-v: shared by load and unload."""
    for option in reversed([
        config_dir_option,
        click.argument("model", shell_complete=complete_members),
        click.option("--dry-run", is_flag=True, help="Print the plan; change nothing."),
        click.option("--wait", "lock_wait", type=click.FloatRange(min=0), default=None,
                     envvar="STACKCTL_LOCK_WAIT", show_envvar=True,
                     help="Wait up to this many seconds for a concurrent up/switch/load "
                          "instead of failing."),
        click.option("--json", "as_json", is_flag=True,
                     help="Print the plan and the result as JSON; progress goes to stderr."),
        verbosity_options,
    ]):
        func = option(func)
    return func


def run_change(config_dir: Path, action: str, ui: Ui, **opts: Any) -> None:
    """Ask the residency client to load or unload; report as `switch` does."""
    from stackctl.residency.client import ChangeOptions, client_for

    reg = load_or_fail(config_dir)

    def say(text: str) -> None:
        if ui.verbose:
            ui.detail(text)
        else:
            ui.progress(f"  {text}")

    client = client_for(reg, lambda: docker_for(reg), say)
    try:
        with ops_errors():
            change = getattr(client, action)(ChangeOptions(**opts))
    except SwitchFailed as exc:
        code = FAILED if exc.restored else UNRESTORED
        raise Failed(str(exc), code, doc={"ok": False, "model": opts["model"],
                                          "error": str(exc), "restored": exc.restored,
                                          "exit_code": code}) from None
    if ui.as_json:
        echo_json({"ok": True, **change.model_dump(mode="json")})
        return
    if change.dry_run:
        for step in change.steps:
            ui.result("plan: " + step)
        return
    took = change.timings.get("total")
    if action == "load":
        ui.result(f"{change.member} is already loaded in GPU group {change.group!r}: ready and "
                  "routable" if change.noop else
                  f"loaded {change.member} in GPU group {change.group!r}"
                  + (f" in {took:.1f}s" if took is not None else ""))
    else:
        ui.result(f"{change.member} is not loaded: nothing to do" if change.noop else
                  f"unloaded {change.member} ({change.plan['verb']}); its models go to their "
                  "fallback" + (f" ({took:.1f}s)" if took is not None else ""))


@click.command(epilog=exit_codes({
    OK: "MODEL's member is loaded (or already was; or --dry-run)",
    FAILED: "it failed and the group is as before (rolled back); an unknown MODEL\n"
            "       (the known ones are listed), pinned members leave no room, registry\n"
            "       errors, a concurrent up/switch (see --wait)",
    NO_ENGINE: "no Docker engine answers",
    UNRESTORED: "it failed AND so did the rollback: the group has no healthy member",
}))
@change_options
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=300,
              show_default=True, envvar="STACKCTL_TIMEOUT", show_envvar=True,
              help="Seconds the member may take to become healthy before rollback.")
@json_errors
def load(config_dir: Path, model: str, dry_run: bool, lock_wait: float | None, as_json: bool,
         quiet: bool, verbose: bool, timeout: float) -> None:
    """Make MODEL's GPU group member awake (MODEL: a member, e.g. `dolphin`, or a model it
    serves).

    In an exclusive group this is `stackctl switch`. In a group with a memory budget
    (`memory_gib`) the member is woken or started beside the loaded members that fit; to
    make room the least recently used that are not pinned are put to sleep or stopped —
    the on-demand scheduler's policy. Pinned members are never evicted (`switch` overrides
    pins). Like `switch` it waits until the member is healthy and routable, and rolls back
    if it is not.
    """
    run_change(config_dir, "load", Ui(quiet, verbose, as_json), model=model, dry_run=dry_run,
               lock_wait=lock_wait, timeout=timeout)
