"""stackctl up: validate, regenerate if stale, start profiles, health-gate, check the gateway."""

from __future__ import annotations

from pathlib import Path

import click

from .common import config_dir_option, docker_for, load_or_fail, prepare_files


@click.command()
@config_dir_option
@click.option("-p", "--profile", "profiles", multiple=True,
              help="Profile to start (repeatable); default: stack.yaml default_profiles.")
@click.option("--timeout", type=float, default=300, show_default=True,
              help="Seconds each service may take to become healthy.")
@click.option("--wait", "lock_wait", type=float, default=None,
              help="Wait up to this many seconds for a concurrent up/switch instead of failing.")
def up(config_dir: Path, profiles: tuple[str, ...], timeout: float, lock_wait: float | None) -> None:
    """Start the stack and wait until every service is healthy.

    Fails fast when a container exits or turns unhealthy (naming it, with its exit code and
    last log lines) and says "X not healthy after Ns" on timeout. Refuses to start two
    members of an exclusive GPU group: use `stackctl switch` for that.
    """
    from rich.console import Console

    from ..docker.adapter import DockerError
    from ..ops.health import GateFailure
    from ..ops.lock import Busy
    from ..ops.plan import PlanError
    from ..ops.up import GatewayCheckFailed, UpOptions, bring_up

    console = Console(highlight=False)
    reg = load_or_fail(config_dir)
    prepare_files(reg, console)
    docker = docker_for(reg)
    marks = {"ready": "[green]✓[/]", "failed": "[red]✗[/]", "waiting": "[yellow]…[/]"}

    def on_change(service: str, verdict: str, t: float) -> None:
        console.print(f" {marks[verdict]} {service:<18} {verdict:<8} {t:5.1f}s")

    try:
        result = bring_up(reg, docker, UpOptions(profiles=list(profiles), timeout=timeout,
                                                 lock_wait=lock_wait), on_change)
    except (PlanError, Busy, GatewayCheckFailed, DockerError) as exc:
        raise click.ClickException(str(exc)) from None
    except GateFailure as exc:
        raise click.ClickException(str(exc) + "\n(`stackctl status` shows the rest; "
                                   "`stackctl down` removes the stack)") from None
    url = result.gateway_url
    key_env = reg.stack.gateway.master_key_env
    console.print(f"\nstack {reg.stack.project!r} is up: profiles {', '.join(result.plan.profiles)}")
    console.print(f"endpoint: {url}/v1  (OpenAI-compatible; key: {key_env} in {reg.env_file.name})")
    model = result.plan.expected_models[0] if result.plan.expected_models else "MODEL"
    env = _shell_path(reg.env_file)
    console.print("try:\n  " + _curl(url, model, env, key_env), soft_wrap=True)


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
