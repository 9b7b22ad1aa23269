"""stackctl ports: every host port the stack needs, free, ours or foreign (with its holder)."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from stackctl.cli.common import (
    FAILED,
    NO_ENGINE,
    OK,
    Failed,
    check_config_dir,
    complete_profiles,
    config_dir_option,
    echo_json,
    exit_codes,
    json_errors,
    load_or_fail,
    ops_errors,
)
from stackctl.docker import adapter
from stackctl.hints import did_you_mean
from stackctl.ports.check import check_ports, conflict_lines, describe, registry_duplicates
from stackctl.registry.catalog import profiles as all_profiles
from stackctl.registry.checks import check
from stackctl.registry.load import load_registry
from stackctl.registry.problems import RegistryError


@click.command(epilog=exit_codes({
    OK: "no port is held by anything but this stack",
    FAILED: "a port is held by another process or container, or two services share\n"
            "       a host port in the registry; also: other registry errors",
    NO_ENGINE: "no Docker engine answers",
}))
@config_dir_option
@click.option("-p", "--profile", "profiles", multiple=True, metavar="PROFILE",
              shell_complete=complete_profiles,
              help="Only the ports of this profile's services (repeatable; the gateway and "
                   "the cache always count); default: every profile.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the ports as JSON: each with its service, profile, registry key, "
                   "state and holders (pid, process, container).")
@json_errors
def ports(config_dir: Path, profiles: tuple[str, ...], as_json: bool) -> None:
    """List every host port the stack publishes, on stack.bind_address, and who holds it:
    free, ours (this stack's own container) or foreign (another process, with its pid and
    name when visible, or another project's container). A listener on 0.0.0.0 or :: holds
    the port on every address. Two services given the same host port in the registry are
    reported too. `stackctl up` runs the same check first and starts nothing on a conflict.
    """
    reg, duplicates = _registry(config_dir)
    _known_profiles(reg, profiles)
    with ops_errors():
        # no compose file needed: ports are worth checking before the first `generate`
        statuses = check_ports(reg, adapter.Docker(None, reg.stack.project, reg.env_file),
                               list(profiles) or None)
    conflicts = conflict_lines(statuses)
    code = FAILED if conflicts or duplicates else OK
    if as_json:
        echo_json({"ok": code == OK, "project": reg.stack.project,
                   "bind_address": reg.stack.bind_address,
                   "ports": [st.model_dump(mode="json") for st in statuses],
                   "conflicts": conflicts,
                   "duplicates": [p.render() for p in duplicates]})
    else:
        _table(reg.stack.project, reg.stack.bind_address, statuses, conflicts,
               [p.render() for p in duplicates])
    raise click.exceptions.Exit(code)


def _registry(config_dir: Path):  # type: ignore[no-untyped-def]
    """The checked registry, and its duplicate host ports: those are what `ports` reports,
    so they do not stop it; any other registry error does, as in every command."""
    check_config_dir(config_dir)
    try:
        reg = load_registry(config_dir)
    except RegistryError:
        return load_or_fail(config_dir), []  # raises, with the usual summary
    duplicates = registry_duplicates(reg)
    if any(p.severity == "error" and p not in duplicates for p in check(reg)):
        load_or_fail(config_dir)  # raises, with the usual summary
    return reg, duplicates


def _known_profiles(reg, profiles: tuple[str, ...]) -> None:  # type: ignore[no-untyped-def]
    known = all_profiles(reg)
    for p in profiles:
        if p not in known:
            hint = did_you_mean(p, known)
            raise Failed(f"unknown profile {p!r}" + (f"; {hint}" if hint else "")
                         + f" (profiles: {', '.join(known)})")


def _table(project: str, address: str, statuses, conflicts: list[str],  # type: ignore[no-untyped-def]
           duplicates: list[str]) -> None:
    console = Console(highlight=False)
    # every row's address is stack.bind_address: said once; a holder elsewhere says "on ADDR"
    console.print(f"{project} publishes on {address} (stack.bind_address)")
    table = Table("port", "service", "profile", "state", "held by", box=None)
    table.columns[-1].overflow = "fold"
    colour = {"free": "green", "ours": "cyan", "foreign": "red"}
    for st in statuses:
        held = "; ".join(describe(h, st.address, short=True) for h in st.holders) or "-"
        table.add_row(str(st.port), st.service, st.profile or "-",
                      f"[{colour[st.state]}]{st.state}[/]", escape(held))
    console.print(table)
    for line in conflicts:  # one line each, unwrapped: grep finds them whole
        console.print(f"[red]conflict:[/] {escape(line)}", soft_wrap=True)
    for line in duplicates:
        console.print(f"[red]registry:[/] {escape(line)}", soft_wrap=True)
    counts = {s: sum(st.state == s for st in statuses) for s in ("free", "ours", "foreign")}
    console.print(f"{len(statuses)} port(s): {counts['free']} free, {counts['ours']} ours, "
                  f"{counts['foreign']} foreign" + (f"; {len(duplicates)} registry "
                                                   "duplicate(s)" if duplicates else ""))
