"""stackctl switch MEMBER: move an exclusive GPU group to another member, with rollback."""

from __future__ import annotations

from pathlib import Path

import click

from stackctl.cli.common import (
    FAILED,
    NO_ENGINE,
    OK,
    UNRESTORED,
    Failed,
    Say,
    Watched,
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


@click.command(epilog=exit_codes({
    OK: "MEMBER is active (or already was; or --dry-run)",
    FAILED: "MEMBER failed, the previous member runs again (rolled back); also an\n"
            "       unknown MEMBER, registry errors, a concurrent up/switch (see --wait)",
    NO_ENGINE: "no Docker engine answers",
    UNRESTORED: "MEMBER failed AND so did the rollback: the group has no healthy member",
}))
@config_dir_option
@click.argument("member", shell_complete=complete_members)
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
    """
    from stackctl.switching.run import SwitchFailed, SwitchOptions, ensure_active

    out = Say(quiet, verbose, as_json)
    reg = load_or_fail(config_dir)
    if reg.stack.deploy.target in ("swarm", "kubernetes") and not dry_run:
        from stackctl.cli import cluster

        return cluster.switch(reg, member, timeout, as_json, out.progress)
    docker = docker_for(reg)
    if verbose:
        docker = Watched(docker, out.detail)
    opts = SwitchOptions(member=member, timeout=timeout, dry_run=dry_run, lock_wait=lock_wait)

    def say(text: str) -> None:
        if verbose:
            out.detail(text)
        else:
            out.progress(f"  {text}")

    try:
        with ops_errors():
            result = ensure_active(reg, docker, opts, say=say)
    except SwitchFailed as exc:
        restored = exc.restored
        code = FAILED if restored else UNRESTORED
        raise Failed(str(exc), code, doc={"ok": False, "member": member, "error": str(exc),
                                          "restored": restored, "exit_code": code}) from None
    plan = result.plan
    if as_json:
        echo_json({"ok": True, "dry_run": dry_run, "steps": plan.describe(),
                   **result.model_dump(mode="json")})
        return
    if dry_run:
        for step in plan.describe():
            click.echo("plan: " + step)
        return
    t = result.timings
    if plan.noop:
        out.result(f"{plan.target} is already the active member of GPU group {plan.group!r}: "
                   f"ready and routable (checked in {t['total']:.1f}s)")
        return
    out.result(f"switched GPU group {plan.group!r} to {plan.target} in {t['total']:.1f}s "
               f"(stop {t['stop']:.1f}s, start {t['start']:.1f}s, ready {t['ready']:.1f}s, "
               f"routable {t['routable']:.1f}s)")
