"""stackctl reload / backups: apply registry edits to the running gateway, with rollback."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from stackctl.cli.common import (
    FAILED,
    NO_ENGINE,
    OK,
    UNRESTORED,
    Failed,
    Say,
    config_dir_option,
    docker_for,
    echo_json,
    exit_codes,
    json_errors,
    load_or_fail,
    ops_errors,
    verbosity_options,
)
from stackctl.gateway.reload import ReloadFailed, ReloadOptions, list_backups, reload_gateway
from stackctl.registry.catalog import on_demand_groups
from stackctl.resident import process


@click.command(epilog=exit_codes({
    OK: "applied (or nothing to do, or --dry-run, or declined at the prompt)",
    FAILED: "refused before anything changed (the check found errors, unknown backup,\n"
            "       registry errors), or applied and rolled back: the previous config serves",
    NO_ENGINE: "no Docker engine answers",
    UNRESTORED: "rolled back, but the previous config does not serve either",
}))
@config_dir_option
@click.option("--yes", "-y", is_flag=True, help="Apply without asking.")
@click.option("--dry-run", is_flag=True, help="Check the new config and show the diff only.")
@click.option("--restore", metavar="ID", help="Put this backup back (`stackctl backups`).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=120,
              show_default=True, envvar="STACKCTL_TIMEOUT", show_envvar=True,
              help="Seconds the new gateway workers may take to serve before rollback.")
@click.option("--wait", "lock_wait", type=click.FloatRange(min=0), default=None,
              envvar="STACKCTL_LOCK_WAIT", show_envvar=True,
              help="Wait up to this many seconds for a concurrent up/switch/reload.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@verbosity_options
@json_errors
def reload(config_dir: Path, yes: bool, dry_run: bool, restore: str | None, timeout: float,
           lock_wait: float | None, as_json: bool, quiet: bool, verbose: bool) -> None:
    """Regenerate the gateway config, check it with the real LiteLLM (in the gateway image),
    show the diff, back up the current one and apply it without restarting the gateway.

    Compared with what the running gateway's workers read, not only with the disk: files
    `generate` wrote after they started are applied too. The workers are replaced
    gracefully (new ones first, then the old ones finish their requests). If the new workers
    do not serve every model of the new config within --timeout, the previous config is put
    back the same way. --dry-run takes no lock: it runs beside an up/switch/reload.
    """
    out = Say(quiet, verbose, as_json)
    reg = load_or_fail(config_dir)

    def confirm(diff: str) -> bool:
        if not as_json and not quiet:
            click.echo(diff, nl=False)
        if yes:
            return True
        if not sys.stdin.isatty():
            raise Failed("the gateway config would change; pass --yes to apply it "
                         "(no terminal to ask on)")
        return click.confirm("apply this to the running gateway?", default=False, err=True)

    opts = ReloadOptions(restore=restore, dry_run=dry_run, timeout=timeout, lock_wait=lock_wait)
    try:
        with ops_errors():
            result = reload_gateway(reg, docker_for(reg), opts, confirm=confirm,
                                    say=lambda s: out.progress(f"  {s}"))
    except ReloadFailed as exc:
        code = FAILED if exc.restored else UNRESTORED
        raise Failed(str(exc), code, doc={"ok": False, "error": str(exc),
                                          "restored": exc.restored, "exit_code": code}) from None
    if result.applied and on_demand_groups(reg):
        # the scheduler decides from the registry: it follows the one now serving
        with ops_errors():
            sched = process.ensure(reg)
        out.progress(f"scheduler: {'restarted on the new registry' if sched.started else 'running'}"
                     f", pid {sched.pid}")
    if as_json:
        echo_json({"ok": True, **result.model_dump(mode="json")})
    elif not result.changed:
        out.result("the gateway config is up to date: nothing to reload")
    elif result.applied:
        out.result(f"reloaded {', '.join(result.changed)} in {result.seconds:.1f}s; the "
                   f"gateway lists {len(result.models)} model(s)"
                   + (f"; backup {result.backup}" if result.backup else ""))
    elif dry_run:
        out.result("checked: the new config is valid (--dry-run: nothing changed)")
    else:
        out.result("not applied")


@click.command(epilog=exit_codes({OK: "listed", FAILED: "registry errors"}))
@config_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print the backups as JSON.")
@json_errors
def backups(config_dir: Path, as_json: bool) -> None:
    """List the gateway config backups that `reload` took, newest first (`reload --restore
    ID` puts one back). Kept: the 10 newest, the newest of each of the last 7 days and of
    each of the last 4 weeks."""
    reg = load_or_fail(config_dir)
    found = list_backups(reg)
    if as_json:
        echo_json([b.model_dump(mode="json") for b in found])
        return
    if not found:
        click.echo("no backups yet (`stackctl reload` takes one before it writes)")
    for b in found:
        click.echo(f"{b.id}  {', '.join(b.files)}" + ("  (current)" if b.current else ""))
