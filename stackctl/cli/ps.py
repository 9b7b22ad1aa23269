"""stackctl ps: the GPU groups' members (and the other providers): state, memory, idle time,
last used and requests waiting."""

from __future__ import annotations

from pathlib import Path

import click

from stackctl.cli.common import (
    FAILED,
    OK,
    config_dir_option,
    docker_for,
    echo_json,
    exit_codes,
    json_errors,
    load_or_fail,
    ops_errors,
)


@click.command(epilog=exit_codes({
    OK: "the table was printed, whatever it shows (no engine: states unknown)",
    FAILED: "registry errors; the compose file is missing (`stackctl generate`); a\n"
            "       stack deployed to a Swarm or Kubernetes",
}))
@config_dir_option
@click.option("--json", "as_json", is_flag=True, help="The rows as JSON (see README).")
@json_errors
def ps(config_dir: Path, as_json: bool) -> None:
    """One row per GPU-group member, then per other provider: its group, state (awake,
    asleep, loading, stopped), pinned, the GPU memory it claims and its group's budget,
    idle time and when it last answered a request (the gateway's request log), and the
    requests the gateway holds for it now (waiting: a load or switch to it is under way).
    """
    reg = load_or_fail(config_dir)
    from stackctl.residency.client import client_for  # the switching machinery: not for --help

    with ops_errors():
        table = client_for(reg, lambda: docker_for(reg)).ps()
    if as_json:
        echo_json(table.model_dump(mode="json"))
        return
    from stackctl.residency.show import render

    click.echo(render(table), nl=False)
