"""stackctl switch MEMBER: move an exclusive GPU group to another member, with rollback."""

from __future__ import annotations

import json
from pathlib import Path

import click

from stackctl.cli import FAILED, NO_ENGINE, OK, UNRESTORED, exit_codes
from stackctl.cli.options import Failed, config_dir_option, json_errors, verbosity_options
from stackctl.cli.ui import Ui
from stackctl.resident import client as scheduler


def _complete_members(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    from stackctl.cli.common import complete_members  # the registry: on <TAB> only

    return complete_members(ctx, param, incomplete)


@click.command(epilog=exit_codes({
    OK: "MEMBER is active (or already was; or --dry-run)",
    FAILED: "MEMBER failed, the previous member runs again (rolled back); also an\n"
            "       unknown MEMBER, registry errors, a concurrent up/switch (see --wait)",
    NO_ENGINE: "no Docker engine answers",
    UNRESTORED: "MEMBER failed AND so did the rollback: the group has no healthy member",
}))
@config_dir_option
@click.argument("member", shell_complete=_complete_members)
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=300,
              show_default=True, envvar="STACKCTL_TIMEOUT", show_envvar=True,
              help="Seconds the target may take to become healthy before rollback.")
@click.option("--dry-run", is_flag=True, help="Print the plan; change nothing.")
@click.option("--wait", "lock_wait", type=click.FloatRange(min=0), default=None,
              envvar="STACKCTL_LOCK_WAIT", show_envvar=True,
              help="Wait up to this many seconds for a concurrent up/switch instead of failing.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the plan and the result (timings) as JSON; progress goes to stderr.")
@verbosity_options
@json_errors
def switch(config_dir: Path, member: str, timeout: float, dry_run: bool,
           lock_wait: float | None, as_json: bool, quiet: bool, verbose: bool) -> None:
    """Make MEMBER the running member of its exclusive GPU group (e.g. `switch dolphin`).

    Restart mode (the default): stops the active member, starts MEMBER. Sleep mode
    (`gpu_groups: {GROUP: {switch: sleep}}` in stack.yaml, vLLM only): lets the active
    member finish its requests and puts it to sleep, then wakes MEMBER (or starts it, the
    first time) and warms it up. Either way it waits until MEMBER is healthy and the
    gateway routes its model to it. Meanwhile the gateway holds requests for MEMBER's model
    (up to the group's `hold` seconds, then its fallback answers) and sends the others'
    to their fallbacks; it is never restarted. If MEMBER fails, it is stopped, the previous
    member comes back and the exit code is non-zero. A switched-out member is kept (stopped,
    or asleep: `status` shows it as standby), so switching back is quick.

    When the stack's scheduler runs (on-demand groups), it performs the switch: the same
    steps, in a process that has the registry and its clients loaded already.
    """
    ui = Ui(quiet, verbose, as_json)
    if not dry_run:
        answer = scheduler.switch(config_dir, member, timeout, lock_wait,
                                  say=ui.detail if verbose else lambda s: ui.progress(f"  {s}"))
        if answer is not None:
            _scheduled(answer, member, as_json, ui)
            return
    _switch_here(config_dir, member, timeout, dry_run, lock_wait, as_json, verbose, ui)


def _scheduled(answer: dict, member: str, as_json: bool, ui: Ui) -> None:
    """The scheduler's answer, shown as this command shows its own switch (the scheduler
    renders it: this process need not load the switching machinery to print it)."""
    if not answer.get("ok"):
        restored = bool(answer.get("restored"))
        code = NO_ENGINE if answer.get("engine") else FAILED if restored else UNRESTORED
        error = str(answer.get("error"))
        raise Failed(error, code, doc={"ok": False, "member": member, "error": error,
                                       "restored": restored, "exit_code": code})
    if as_json:
        click.echo(json.dumps(answer["document"], indent=2))
        return
    for line in answer["lines"]:
        ui.result(line)


def _switch_here(config_dir: Path, member: str, timeout: float, dry_run: bool,
                 lock_wait: float | None, as_json: bool, verbose: bool, ui: Ui) -> None:
    """The switch in this process. Its modules are imported here, not at the top: with a
    scheduler running, `switch` never needs them (benchmarks/bench_sleep.py --on-demand:
    the wall-time overhead target, 0.5 s, has no room for their ~250 ms)."""
    from stackctl.cli.common import Watched, docker_for, load_or_fail, ops_errors
    from stackctl.switching.loop import SwitchFailed, SwitchOptions
    from stackctl.targets.factory import target_for

    reg = load_or_fail(config_dir)

    def docker():  # type: ignore[no-untyped-def]
        adapter = docker_for(reg)
        return Watched(adapter, ui.detail) if verbose else adapter

    target = target_for(reg, docker=docker)
    opts = SwitchOptions(member=member, timeout=timeout, dry_run=dry_run, lock_wait=lock_wait)
    try:
        with ops_errors():
            report = target.switch(opts, ui)
    except SwitchFailed as exc:
        restored = exc.restored
        code = FAILED if restored else UNRESTORED
        raise Failed(str(exc), code, doc={"ok": False, "member": member, "error": str(exc),
                                          "restored": restored, "exit_code": code}) from None
    if as_json:
        click.echo(report.json_text())
        return
    report.show(ui)
