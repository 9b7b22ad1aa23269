"""stackctl status: services, GPU groups and the gateway. Exit 0 healthy, 1 degraded, 2 gateway down."""

from __future__ import annotations

from pathlib import Path

import click

from .common import config_dir_option, docker_for, load_or_fail


@click.command()
@config_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON (see README).")
def status(config_dir: Path, as_json: bool) -> None:
    """Show each service's state, health, port, probe latency and models; the active member
    of each exclusive GPU group; the gateway's URL, health and model list."""
    from ..docker.adapter import DockerError
    from ..ops.status import collect_status

    reg = load_or_fail(config_dir)
    try:
        st = collect_status(reg, docker_for(reg))
    except DockerError as exc:
        raise click.ClickException(str(exc)) from None
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
        state = f"standby ({s.state})" if s.standby else s.state
        colour = "dim" if s.standby else colour
        table.add_row(s.name, s.profile or "-", f"[{colour}]{state}[/]", s.health,
                      str(s.port or "-"), f"{s.latency_ms:.0f}" if s.latency_ms else "-",
                      ", ".join(s.models) or "-")
    console.print(table)
    for group, g in st.gpu_groups.items():
        console.print(f"GPU group {group}: active {g.active or 'none'} "
                      f"(members: {', '.join(g.members)})")
    verdict = {0: "[green]healthy[/]", 1: "[yellow]degraded[/]", 2: "[red]gateway down[/]"}
    console.print(f"stack {st.project!r}: {verdict[st.exit_code]}")
