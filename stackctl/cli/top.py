"""stackctl top: a live picture of the stack (Textual), or one Snapshot as JSON (--once).

Textual is imported only on the interactive path: `top --once --json` and `top --help`
never load it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from stackctl.cli.common import (
    FAILED,
    OK,
    config_dir_option,
    docker_for,
    exit_codes,
    json_errors,
    load_or_fail,
    ops_errors,
)

if TYPE_CHECKING:
    from stackctl.top.snapshot import Snapshot


@click.command(epilog=exit_codes({
    OK: "top ended (q); --once: the snapshot was printed, whatever it shows",
    FAILED: "registry errors; the compose file is missing (`stackctl generate`); a\n"
            "       stack deployed to a Swarm or Kubernetes",
}))
@config_dir_option
@click.option("--interval", type=click.FloatRange(min=0.2), default=1.0, show_default=True,
              help="Seconds between refreshes (with --once: between its two readings of the "
                   "gateway's metrics, which rates need).")
@click.option("--once", is_flag=True, help="Print one snapshot and exit (no screen).")
@click.option("--json", "as_json", is_flag=True, help="With --once: the snapshot as JSON.")
@json_errors
def top(config_dir: Path, interval: float, once: bool, as_json: bool) -> None:
    """Watch the stack: each GPU group's members (awake, asleep, loading, stopped) with its
    memory budget and any switch under way; per model the request rate, errors, p50/p95
    latency, time to first token and tokens/s from the gateway's /metrics over the last
    minute; requests held or diverted during switches; the recent switches and why; the
    alerts firing when Prometheus runs. A banner says when the engine or the gateway is down.

    Keys: s switch a GPU group to a member; l load a member (`stackctl load`: beside the
    others when they fit the group's memory); u unload one (`stackctl unload`); r
    `stackctl reload`; g follow
    `stackctl logs --requests`; q quit.
    """
    if as_json and not once:
        raise click.UsageError("--json needs --once (the screen is not JSON)")
    reg = load_or_fail(config_dir)
    from stackctl.top.collect import METRICS_EVERY, Collector
    from stackctl.top.live import check_target, live_sources

    with ops_errors():
        check_target(reg)
    docker = docker_for(reg)  # fails at once without a compose file; asks no engine yet
    # --once reads /metrics twice, `interval` apart: both reads count (no reuse)
    collector = Collector(reg, live_sources(reg, lambda: docker),
                          metrics_every=0.0 if once else METRICS_EVERY)
    if once:
        collector.collect()  # the first reading: rates need two
        time.sleep(interval)
        snap = collector.collect()
        if as_json:
            click.echo(snap.model_dump_json(indent=2))
        else:
            _print(snap, interval)
        return
    from stackctl.top.actions import LiveActions
    from stackctl.top.app import TopApp  # Textual: ~150 ms, this path only

    TopApp(collector.collect, LiveActions(reg, config_dir, lambda: docker),
           interval).run()


def _print(snap: Snapshot, interval: float) -> None:
    from rich.console import Console

    from stackctl.top import view

    console = Console(highlight=False)
    for part in (view.header(snap, interval), view.banners(snap), view.groups(snap),
                 view.models(snap), view.switches(snap), view.alerts(snap)):
        console.print(part)

