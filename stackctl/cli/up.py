"""stackctl up: validate, regenerate if stale, start profiles, health-gate, check the gateway."""

from __future__ import annotations

import time
from pathlib import Path

import click

from stackctl.cli.common import (
    FAILED,
    NO_ENGINE,
    OK,
    Failed,
    Say,
    Watched,
    complete_profiles,
    config_dir_option,
    docker_for,
    echo_json,
    exit_codes,
    json_errors,
    load_or_fail,
    ops_errors,
    prepare_files,
    verbosity_options,
)


@click.command(epilog=exit_codes({
    OK: "every service is healthy, the gateway lists the expected models",
    FAILED: "registry errors, a missing image, a service failed or timed out, the\n"
            "       gateway check failed, or a concurrent up/switch (see --wait)",
    NO_ENGINE: "no Docker engine answers",
}))
@config_dir_option
@click.option("-p", "--profile", "profiles", multiple=True, metavar="PROFILE",
              shell_complete=complete_profiles,
              help="Profile to start (repeatable); default: stack.yaml default_profiles.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=300,
              show_default=True, envvar="STACKCTL_TIMEOUT", show_envvar=True,
              help="Seconds each service may take to become healthy.")
@click.option("--wait", "lock_wait", type=click.FloatRange(min=0), default=None,
              envvar="STACKCTL_LOCK_WAIT", show_envvar=True,
              help="Wait up to this many seconds for a concurrent up/switch instead of failing.")
@click.option("--pull", is_flag=True,
              help="Pull missing images first (not the local stackctl-local/* set: "
                   "`stackctl images build` makes those).")
@click.option("--json", "as_json", is_flag=True,
              help="Print the result as JSON (profiles, services, ready_after, gateway, "
                   "expected models; never the key). Progress goes to stderr.")
@verbosity_options
@json_errors
def up(config_dir: Path, profiles: tuple[str, ...], timeout: float, lock_wait: float | None,
       pull: bool, as_json: bool, quiet: bool, verbose: bool) -> None:
    """Start the stack and wait until every service is healthy.

    Fails fast when a container exits or turns unhealthy (naming it, with its exit code and
    last log lines) and says "X not healthy after Ns" on timeout. Refuses to start two
    members of an exclusive GPU group: use `stackctl switch` for that. Checks first that
    every image is on this machine (nothing starts if one is missing).
    """
    out = Say(quiet, verbose, as_json)
    from rich.console import Console

    from stackctl.health.gate import GateFailure
    from stackctl.targets.compose_up import GatewayCheckFailed, UpOptions, bring_up

    console = Console(highlight=False, stderr=as_json, quiet=quiet)
    reg = load_or_fail(config_dir)
    with ops_errors():  # a .env that cannot be completed safely is a user error
        files = prepare_files(reg, console.print)
    if reg.stack.deploy.target == "kubernetes":
        from stackctl.cli import cluster

        cluster.not_on_kubernetes(reg, "up")
    if reg.stack.deploy.target == "swarm":
        from stackctl.cli import cluster

        return cluster.up(reg, timeout, as_json, lambda s: console.print(f"  {s}"))
    marks = {"ready": "[green]✓[/]", "failed": "[red]✗[/]", "waiting": "[yellow]…[/]"}
    waiting: dict[str, str] = {}

    def on_change(service: str, verdict: str, t: float) -> None:
        if verdict == "waiting":
            waiting[service] = verdict
        else:
            waiting.pop(service, None)
        console.print(f" {marks[verdict]} {service:<18} {verdict:<8} {t:5.1f}s")

    docker = docker_for(reg)
    if verbose:
        docker = Watched(docker, out.detail, waiting=lambda: waiting)
    opts = UpOptions(profiles=list(profiles), timeout=timeout, lock_wait=lock_wait, pull=pull)
    started = time.monotonic()
    try:
        with ops_errors():
            changed = any("litellm" in Path(p).parts for p in files["files_written"])
            result = bring_up(reg, docker, opts, on_change, say=lambda s: console.print(f"  {s}"),
                              gateway_config_changed=changed)
    except (GateFailure, GatewayCheckFailed) as exc:
        raise Failed(str(exc) + "\n(`stackctl status` shows the rest; "
                     "`stackctl down` removes the stack)") from None
    took = time.monotonic() - started
    url, key_env = result.gateway_url, reg.stack.gateway.master_key_env
    plan = result.plan
    if as_json:
        echo_json({"ok": True, "project": reg.stack.project, "profiles": plan.profiles,
                   "services": plan.services, "ready_after": result.ready_after,
                   "seconds": round(took, 2),
                   "gateway": {"url": url, "endpoint": f"{url}/v1", "key_env": key_env,
                               "env_file": _shell_path(reg.env_file)},
                   "expected_models": plan.expected_models, **files})
        return
    if verbose:
        for service, t in sorted(result.ready_after.items(), key=lambda kv: kv[1]):
            out.detail(f"{service} ready after {t:.1f}s")
        out.detail(f"up took {took:.1f}s (start, health gate and gateway check)")
    summary = f"stack {reg.stack.project!r} is up: profiles {', '.join(plan.profiles)}"
    if quiet:
        out.result(f"{summary}; endpoint {url}/v1")
        return
    console.print(f"\n{summary}")
    console.print(f"endpoint: {url}/v1  (OpenAI-compatible; key: {key_env} in {reg.env_file.name})")
    model = plan.expected_models[0] if plan.expected_models else "MODEL"
    console.print("try:\n  " + _curl(url, model, _shell_path(reg.env_file), key_env),
                  soft_wrap=True)


def _shell_path(path: Path) -> str:
    try:
        return "./" + str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _curl(url: str, model: str, env_file: str, key_env: str) -> str:
    import json

    # bounded: a small model on CPU may otherwise ramble until its context is full
    body = json.dumps({"model": model, "max_tokens": 32,
                       "messages": [{"role": "user", "content": "Say hello"}]})
    return (f"(set -a; . {env_file}; curl -s {url}/v1/chat/completions "
            f"-H \"Authorization: Bearer ${key_env}\" -H 'Content-Type: application/json' "
            f"-d '{body}')")
