"""stackctl logs: the services' logs, or one line per request through the gateway."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from stackctl.cli.common import (
    FAILED,
    NO_ENGINE,
    OK,
    _completer,
    complete_services,
    config_dir_option,
    docker_for,
    exit_codes,
    json_errors,
    load_or_fail,
    ops_errors,
)
from stackctl.logs.records import (
    RequestFilter,
    RequestLogOptions,
    check_services,
    format_record,
    gateway_container,
    known_models,
    model_hint,
    parse_since,
    request_records,
    service_lines,
    widths_for,
)
from stackctl.registry.catalog import profiles


def _models(reg):  # type: ignore[no-untyped-def]
    return known_models(reg)


complete_models = _completer(_models)


@click.command(epilog=exit_codes({
    OK: "the logs were printed (or, following, until the container stopped)",
    FAILED: "an unknown SERVICE; the gateway has no container, or (with -f) does not\n"
            "       run; registry errors",
    NO_ENGINE: "no Docker engine answers",
}))
@config_dir_option
@click.argument("services", nargs=-1, metavar="[SERVICE]...", shell_complete=complete_services)
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines until Ctrl-C.")
@click.option("--since", metavar="TIME",
              help="Only lines since TIME: a duration back from now (90s, 10m, 1h30m, 2d) or "
                   "a time (2026-11-29T14:05, local unless it ends in Z or +HH:MM).")
@click.option("-n", "--tail", type=click.IntRange(min=0), metavar="N",
              help="Only the last N lines of each service (with --requests: the last N "
                   "matching requests), then, with -f, every new one.")
@click.option("-t", "--timestamps", is_flag=True, help="Prefix each service log line with "
              "Docker's timestamp (not with --requests: its lines have their own).")
@click.option("--requests", "requests_", is_flag=True,
              help="One line per request through the gateway instead of service logs: time, "
                   "model asked → deployment that answered, FALLBACK/cached/retried, HTTP "
                   "status, latency, tokens in→out (or the error's class).")
@click.option("--model", "models", multiple=True, metavar="MODEL", shell_complete=complete_models,
              help="With --requests: only requests that asked for MODEL or were answered by "
                   "it (a model group or a deployment id model@provider). Repeatable.")
@click.option("--errors", "errors_only", is_flag=True,
              help="With --requests: only the requests that failed.")
@click.option("--json", "as_json", is_flag=True,
              help="With --requests: one JSON object per request and line (see README).")
@json_errors
def logs(config_dir: Path, services: tuple[str, ...], follow: bool, since: str | None,
         tail: int | None, timestamps: bool, requests_: bool, models: tuple[str, ...],
         errors_only: bool, as_json: bool) -> None:
    """Print the logs of the stack's services (all, or each SERVICE), as Docker Compose keeps
    them; or, with --requests, one line per request the gateway handled.

    Request lines come from stackctl's callback in the gateway (generated beside its config
    as litellm/stackctl_trace.py); they hold names and numbers, never a prompt, an answer or
    a key. A request answered down its model's fallback chain shows FALLBACK and the
    deployment (model@provider) that answered. Only the gateway's current container is read:
    `up` recreating it starts a new log.
    """
    if not requests_:
        for flag, given in (("--model", models), ("--errors", errors_only),
                            ("--json", as_json)):
            if given:
                raise click.UsageError(f"{flag} applies to request lines: add --requests")
    elif services:
        raise click.UsageError("--requests reads the gateway's request lines: drop the "
                               f"service name(s) {' '.join(services)}")
    elif timestamps:
        raise click.UsageError("-t/--timestamps applies to service logs; request lines carry "
                               "their own time")
    start = None
    if since is not None:
        try:
            start = parse_since(since, time.time())
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="'--since'") from None

    reg = load_or_fail(config_dir)
    try:
        if requests_:
            _requests(reg, follow, start, tail, models, errors_only, as_json)
        else:
            _services(reg, list(services), follow, start, tail, timestamps)
    except BrokenPipeError:  # `stackctl logs … | head`: the reader has what it wanted
        raise click.exceptions.Exit(OK) from None


def _services(reg, services: list[str], follow: bool, start: float | None,  # type: ignore[no-untyped-def]
              tail: int | None, timestamps: bool) -> None:
    with ops_errors():
        names = check_services(reg, services)
        docker = docker_for(reg)
        for text in service_lines(docker, profiles(reg), names, follow=follow, since=start,
                                  tail=tail, timestamps=timestamps):
            click.echo(text)


def _requests(reg, follow: bool, start: float | None, tail: int | None,  # type: ignore[no-untyped-def]
              models: tuple[str, ...], errors_only: bool, as_json: bool) -> None:
    for model in models:
        if warning := model_hint(reg, model):
            click.echo(f"warning: {warning}; showing the requests that name it anyway",
                       err=True)
    opts = RequestLogOptions(filter=RequestFilter(models=models, errors_only=errors_only,
                                                  since=start),
                             tail=tail, follow=follow)
    widths = widths_for(reg)
    with ops_errors():
        docker = docker_for(reg)
        container, running = gateway_container(docker, follow)
        if not running:
            click.echo(f"note: the gateway's container {container} is not running: "
                       "its last log follows", err=True)
        for rec in request_records(docker, container, opts):
            if as_json:
                click.echo(json.dumps(rec.as_json()))
            else:
                click.echo(format_record(rec, widths))
