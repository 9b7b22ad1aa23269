"""The real Sources of a Snapshot: `status`'s own collection on the local engine, the
gateway over loopback (one keep-alive session: no new connection per refresh), the
routing state file and the switch journal."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from stackctl.docker.adapter import Docker
from stackctl.errors import PlanError
from stackctl.monitoring.client import prometheus_url
from stackctl.registry.load import Registry
from stackctl.store.envfile import EnvFileError, compose_value
from stackctl.store.lock import state_dir
from stackctl.switching import journal
from stackctl.switching.routing import routing_path
from stackctl.top.collect import HttpGet, Sources


def http_getter() -> HttpGet:
    import requests  # here: the module is imported by `top --help` too

    session = requests.Session()

    def get(url: str, headers: dict[str, str], timeout: float) -> tuple[int, str]:
        r = session.get(url, headers=headers, timeout=timeout)
        return r.status_code, r.text
    return get


def live_sources(reg: Registry, docker: Callable[[], Docker], timeout: float = 0.8) -> Sources:
    """`docker` makes the adapter (the CLI's, checked) when first needed."""
    from stackctl.targets.compose_status import collect_status  # requests, on the run path

    made: list[Docker] = []

    def status():  # type: ignore[no-untyped-def]
        if not made:
            made.append(docker())
        return collect_status(reg, made[0], timeout=timeout)

    try:
        key = compose_value(reg.env_file, reg.stack.gateway.master_key_env)
    except EnvFileError:
        key = None
    path = journal.journal_path(state_dir(), reg.stack.project)
    return Sources(status=status, get=http_getter(), routing=lambda: read_routing(reg),
                   switches=lambda: journal.recent(path), clock=time.time,
                   gateway_url=f"http://127.0.0.1:{reg.stack.gateway.host_port}",
                   gateway_key=key, prometheus_url=prometheus_url(reg), timeout=timeout)


def read_routing(reg: Registry) -> dict[str, Any]:
    try:
        doc = json.loads(routing_path(reg).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def check_target(reg: Registry) -> None:
    """top reads the local engine: a Swarm or Kubernetes stack has no containers here."""
    if reg.stack.deploy.target != "compose":
        raise PlanError(f"`stackctl top` shows a stack on the local Docker engine; this one is "
                        f"deployed to {reg.stack.deploy.target} (`stackctl status` reads it)")
