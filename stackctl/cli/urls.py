"""stackctl urls: where the gateway and the monitoring UIs answer, and how to log in."""

from __future__ import annotations

from pathlib import Path

import click

from stackctl.cli.common import (
    FAILED,
    OK,
    config_dir_option,
    echo_json,
    exit_codes,
    json_errors,
    load_or_fail,
)
from stackctl.registry.urls import urls as stack_urls


@click.command(epilog=exit_codes({OK: "the URLs were printed",
                                  FAILED: "registry errors, or -C is no registry folder"}))
@config_dir_option
@click.option("--json", "as_json", is_flag=True,
              help="Print [{service, what, url, login, login_env, profile}] as JSON.")
@json_errors
def urls(config_dir: Path, as_json: bool) -> None:
    """The gateway's endpoint and every monitoring UI the registry enables and publishes,
    with the variable that holds its login (its name only: the value is in .env).

    Monitoring answers once its profile runs: `stackctl up -p monitoring`.
    """
    rows = stack_urls(load_or_fail(config_dir))
    if as_json:
        echo_json([r.model_dump() for r in rows])
        return
    width = max(len(r.service) for r in rows) if rows else 0
    url_width = max(len(r.url) for r in rows) if rows else 0
    for r in rows:
        login = f"  login: {r.login}" if r.login else ""
        click.echo(f"{r.service:<{width}}  {r.url:<{url_width}}  {r.what}{login}")
    if any(r.profile for r in rows):
        click.echo("(monitoring: `stackctl up -p monitoring` starts it)")
