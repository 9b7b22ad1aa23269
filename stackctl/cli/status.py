"""stackctl status: services, GPU groups and the gateway; the exit code tells healthy (0),
degraded (1), gateway down (3) and no Docker engine (4) apart."""

from __future__ import annotations

from pathlib import Path

import click

from stackctl.cli.common import (
    FAILED,
    GATEWAY_DOWN,
    NO_ENGINE,
    OK,
    config_dir_option,
    docker_for,
    exit_codes,
    json_errors,
    load_or_fail,
    ops_errors,
)


@click.command(epilog=exit_codes({
    OK: "healthy: the gateway answers and every present container is ready",
    FAILED: "degraded: a present container (not standby) is not ready or the cache\n"
            "       is missing; also: registry errors",
    GATEWAY_DOWN: "the gateway does not answer",
    NO_ENGINE: "no Docker engine answers",
}))
@config_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON (see README).")
@json_errors
def status(config_dir: Path, as_json: bool) -> None:
    """Show each service's state, health, port, probe latency and models; the active member
    of each exclusive GPU group; the gateway's URL, health and model list; and, when the
    monitoring profile runs, the alerts firing in Prometheus."""
    from stackctl.targets.compose_status import collect_status

    reg = load_or_fail(config_dir)
    if reg.stack.deploy.target == "kubernetes":
        from stackctl.cli import cluster

        cluster.not_on_kubernetes(reg, "status")
    if reg.stack.deploy.target == "swarm":
        from stackctl.cli import cluster

        return cluster.status(reg, as_json)
    with ops_errors():
        st = collect_status(reg, docker_for(reg))
    if as_json:
        click.echo(st.model_dump_json(indent=2, exclude={"project"}))
    else:
        _table(st)
    raise click.exceptions.Exit(st.exit_code)


def _table(st) -> None:  # type: ignore[no-untyped-def]
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    gw = st.gateway
    mark = "[green]healthy[/]" if gw.healthy else "[red]DOWN[/]"
    console.print(f"gateway {gw.url} {mark}  models: {', '.join(gw.models) or '-'}")
    table = Table("service", "profile", "state", "health", "port", "ms", "models", box=None)
    for s in st.services:
        colour = "green" if s.ok else ("dim" if s.state == "absent" else "red")
        state = f"{s.sleep} ({s.state})" if s.sleep else s.state
        state = f"standby: {state}" if s.standby else state
        colour = "dim" if s.standby else colour
        table.add_row(s.name, s.profile or "-", f"[{colour}]{state}[/]", s.health,
                      str(s.port or "-"), f"{s.latency_ms:.0f}" if s.latency_ms else "-",
                      ", ".join(s.models) or "-")
    console.print(table)
    for s in st.services:
        if s.restarts:  # it died and Docker's restart policy brought it back
            up = f", up {s.up_seconds:.0f}s" if s.up_seconds is not None else ""
            console.print(f"[yellow]{s.name} restarted {s.restarts}x[/] (it died; the "
                          f"restart policy brought it back{up})")
    for group, g in st.gpu_groups.items():
        if len(g.awake) > 1:  # only an interrupted switch leaves this
            console.print(f"[red]GPU group {group}: {len(g.awake)} members running "
                          f"({', '.join(g.awake)}), it must be one[/]: `stackctl switch "
                          "MEMBER` keeps MEMBER and "
                          f"{'puts the others to sleep' if g.mode == 'sleep' else 'stops the others'}")
            continue
        asleep = f", asleep: {', '.join(g.asleep)}" if g.asleep else ""
        console.print(f"GPU group {group} ({g.mode}): active {g.active or 'none'}{asleep} "
                      f"(members: {', '.join(g.members)})")
    if st.alerts is not None:
        console.print(f"alerts firing in Prometheus: {len(st.alerts) or 'none'}")
        colours = {"critical": "red", "warning": "yellow"}
        for a in st.alerts:
            where = ", ".join(f"{k}={v}" for k, v in a.labels.items()
                              if k in ("provider", "gpu_group", "requested_model", "instance"))
            console.print(f"  [{colours.get(a.severity, 'dim')}]{a.severity:8}[/] {a.name}"
                          f"{f' ({where})' if where else ''}: {a.summary}")
    verdict = {OK: "[green]healthy[/]", FAILED: "[yellow]degraded[/]",
               GATEWAY_DOWN: "[red]gateway down[/]"}
    console.print(f"stack {st.project!r}: {verdict.get(st.exit_code, st.exit_code)}")
