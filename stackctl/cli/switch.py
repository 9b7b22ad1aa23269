"""stackctl switch MEMBER: move an exclusive GPU group to another member, with rollback."""

from __future__ import annotations

from pathlib import Path

import click

from .common import config_dir_option, docker_on, load_or_fail


@click.command()
@config_dir_option
@click.argument("member")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=300,
              show_default=True,
              help="Seconds the target may take to become healthy before rollback.")
@click.option("--dry-run", is_flag=True, help="Print the plan; change nothing.")
@click.option("--wait", "lock_wait", type=float, default=None,
              help="Wait up to this many seconds for a concurrent up/switch instead of failing.")
def switch(config_dir: Path, member: str, timeout: float, dry_run: bool,
           lock_wait: float | None) -> None:
    """Make MEMBER the running member of its exclusive GPU group (e.g. `switch dolphin`).

    Stops the active member, starts MEMBER, waits until it is healthy and the gateway routes
    its model to it. Meanwhile the gateway serves the switched-out model from its fallback
    chain; it is never restarted. If MEMBER fails, the previous member is started again and
    the exit code is non-zero. A switched-out member's container is kept, stopped (`status`
    shows it as standby), so switching back starts it again quickly.
    """
    from ..docker.adapter import DockerError
    from ..ops.errors import PlanError
    from ..ops.lock import Busy
    from ..ops.switch import SwitchFailed, SwitchOptions, ensure_active
    from ..ops.switch_index import index_for

    index = index_for(config_dir, load_or_fail)
    docker = docker_on(index.compose_file, index.project, index.env_file)
    opts = SwitchOptions(member=member, timeout=timeout, dry_run=dry_run, lock_wait=lock_wait)
    try:
        result = ensure_active(index, docker, opts, say=lambda s: click.echo(f"  {s}"))
    except (PlanError, Busy, SwitchFailed, DockerError) as exc:
        raise click.ClickException(str(exc)) from None
    plan = result.plan
    if plan.noop or dry_run:
        for step in plan.describe():
            click.echo(("plan: " if dry_run and not plan.noop else "") + step)
        return
    t = result.timings
    click.echo(f"switched GPU group {plan.group!r} to {plan.target} in {t['total']:.1f}s "
               f"(stop {t['stop']:.1f}s, start {t['start']:.1f}s, ready {t['ready']:.1f}s, "
               f"routable {t['routable']:.1f}s)")
