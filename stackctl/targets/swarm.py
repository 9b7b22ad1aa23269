"""The stack on a Docker Swarm (`deploy.target: swarm`): up, down, status and switch through
the manager's API (docker/swarm.py).

The stack file is render/swarm.py's (`docker stack deploy`); secrets come from `.env` as
Swarm secrets; with `deploy.registry` the local images are pushed there first, for the
nodes to pull. Swarm has no profiles: every provider is a service, scaled 0 or 1; a GPU
group's switch scales the outgoing member to 0, waits until its task is gone (the GPU is
free), scales the target to 1 and waits until its task runs — Swarm reports a task with a
healthcheck as running only once it is healthy — then confirms through every gateway replica
that its model is routed to it, and rolls back the same way on failure (scaled.py, and the
one run loop of switching/loop.py).

The gateway's client (requests) is imported when a gateway is first asked.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, Field

from stackctl.docker.swarm import NodeState, ServiceState, Swarm, SwarmError, push_images
from stackctl.registry.catalog import deployments, exclusive_groups
from stackctl.registry.load import Registry
from stackctl.registry.vocabulary import SWARM_FILE
from stackctl.render.swarm import render_swarm
from stackctl.store.envfile import compose_value, read_env
from stackctl.switching.effects import confirm_routable
from stackctl.switching.loop import SwitchOptions, ensure_active
from stackctl.targets.base import OnChange, Report, SwitchOutcome, Ui
from stackctl.targets.scaled import ScaledEffects, ScaledSwitchOutcome

Routable = Callable[[str, str, list[str]], bool]  # (model, deployment id, gateway URLs)


def wait_converged(swarm: Swarm, timeout: float, only: set[str] | None = None,
                   on_change: Callable[[str, str], None] = lambda s, v: None,
                   clock: Callable[[], float] = time.monotonic,
                   sleep: Callable[[float], None] = time.sleep) -> dict[str, ServiceState]:
    """Until every (or every `only`) service runs as many tasks as it wants, and none more
    (a scaled-down task is gone). SwarmError names the laggards and their tasks' errors."""
    deadline = clock() + timeout
    seen: dict[str, str] = {}
    while True:
        services = swarm.services()
        lagging = {}
        for name, svc in services.items():
            if only is not None and name not in only:
                continue
            live = [t for t in svc.tasks if t.state in ("running", "starting", "preparing",
                                                         "assigned", "accepted", "pending",
                                                         "ready", "new")]
            verdict = "ready" if svc.running == svc.replicas and len(live) == svc.replicas \
                else "waiting"
            if seen.get(name) != verdict:
                seen[name] = verdict
                on_change(name, verdict)
            if verdict != "ready":
                lagging[name] = svc
        if not lagging:
            return services
        if clock() >= deadline:
            raise SwarmError(f"not converged after {timeout:g}s: " + "; ".join(
                f"{n} runs {s.running}/{s.replicas}" + "".join(
                    f" [{t.node}: {t.state}{': ' + t.error if t.error else ''}]"
                    for t in s.tasks if t.desired == "running")
                for n, s in lagging.items()))
        sleep(0.5)


def stack_variables(reg: Registry) -> dict[str, str]:
    """What `docker stack deploy` fills `${VAR}` references in with: `.env`, then the
    environment (as Compose does)."""
    try:
        values = read_env(reg.env_file)
    except OSError:
        values = {}
    return {**values, **{k: v for k, v in os.environ.items() if k in values}}


def swarm_up(reg: Registry, swarm: Swarm, timeout: float,
             say: Callable[[str], None] = lambda s: None,
             on_change: Callable[[str, str], None] = lambda s, v: None) -> list[str]:
    """Secrets, images, deploy, wait until converged, check a gateway replica; return the
    gateway URLs (one per node it runs on)."""
    from stackctl.gateway.client import Gateway

    for name in swarm.secrets(reg.env_file):
        say(f"created Swarm secret {name}")
    stack = render_swarm(reg)
    if reg.stack.deploy.registry:
        push_images(reg, stack, say)
    say(f"deploying stack {reg.stack.project!r}")
    swarm.deploy(reg.output_dir / SWARM_FILE, stack_variables(reg))
    wait_converged(swarm, timeout, on_change=on_change)
    urls = swarm.gateway_urls()
    if not urls:
        raise SwarmError("no gateway task runs")
    key = compose_value(reg.env_file, reg.stack.gateway.master_key_env)
    expected = [m for m, deps in deployments(reg).items()
                if any(stack["services"].get(d.provider, {}).get("deploy", {}).get("replicas")
                       for d in deps)]
    for url in urls:
        missing = Gateway(url, key).wait_models(expected, timeout=min(timeout, 60))
        if missing:
            raise SwarmError(f"the gateway at {url} does not list {', '.join(missing)}")
    return urls


def swarm_down(swarm: Swarm, timeout: float = 120,
               clock: Callable[[], float] = time.monotonic,
               sleep: Callable[[float], None] = time.sleep) -> dict[str, list[str]]:
    """Remove the stack, then its secrets once no task uses them; return what is left."""
    swarm.remove()
    deadline = clock() + timeout
    while True:
        left = swarm.leftovers()
        if not left["services"] and not left["networks"]:
            break
        if clock() >= deadline:
            return left
        sleep(0.5)
    while True:  # a secret in use by a task that is still shutting down cannot go yet
        try:
            swarm.remove_secrets()
            break
        except SwarmError:
            if clock() >= deadline:
                break
            sleep(0.5)
    return swarm.leftovers()


class SwarmStatus(BaseModel):
    project: str
    target: str = "swarm"
    manager: str | None
    gateways: list[str] = Field(description="gateway URLs, one per node it runs on")
    healthy: bool = Field(description="every service runs as many tasks as it wants")
    services: list[dict[str, Any]]
    nodes: list[NodeState]
    gpu_groups: dict[str, dict[str, Any]]

    @property
    def exit_code(self) -> int:
        return 0 if self.healthy else (3 if not self.gateways else 1)


def swarm_status(reg: Registry, swarm: Swarm) -> SwarmStatus:
    from stackctl.gateway.client import Gateway

    services = swarm.services()
    key = compose_value(reg.env_file, reg.stack.gateway.master_key_env)
    gateways = [u for u in swarm.gateway_urls() if Gateway(u, key).live()]
    groups = {}
    for group, members in exclusive_groups(reg).items():
        active = [m for m in members if m in services and services[m].replicas > 0]
        groups[group] = {"active": active[0] if len(active) == 1 else None,
                         "members": members, "scaled_up": active,
                         "running": [m for m in members if m in services
                                     and services[m].running > 0]}
    rows = [{"name": s.name, "replicas": s.replicas, "running": s.running,
             "tasks": [{"node": t.node, "state": t.state, "error": t.error}
                       for t in s.tasks if t.desired == "running"]}
            for s in services.values()]
    healthy = bool(services) and all(s.running == s.replicas for s in services.values()) \
        and bool(gateways)
    return SwarmStatus(project=reg.stack.project, manager=reg.stack.deploy.manager,
                       gateways=gateways, healthy=healthy, services=rows, nodes=swarm.nodes(),
                       gpu_groups=groups)


class SwarmEffects(ScaledEffects):
    """A switch on the Swarm: services scaled through the manager, confirmed through every
    gateway replica (each keeps its own cooldowns)."""

    failures = (SwarmError,)

    def __init__(self, reg: Registry, swarm: Swarm, opts: SwitchOptions,
                 say: Callable[[str], None] = lambda s: None, routable: Routable | None = None):
        super().__init__(reg, opts, say)
        self.swarm = swarm
        self._routable = routable

    def replicas(self, members: list[str]) -> dict[str, int]:
        services = self.swarm.services()
        return {m: services[m].replicas for m in members if m in services}

    def scale(self, member: str, n: int) -> None:
        self.swarm.scale({member: n})

    def wait_gone(self, member: str) -> None:
        wait_converged(self.swarm, self.opts.timeout, only={member})

    wait_ready = wait_gone  # converged both ways: as many tasks running as wanted, none more

    def routable(self, model: str, deployment: str) -> bool:
        urls = self.swarm.gateway_urls()
        if self._routable is not None:
            return self._routable(model, deployment, urls)
        from stackctl.gateway.client import Gateway  # requests: once a member runs

        reg = self.reg
        key = compose_value(reg.env_file, reg.stack.gateway.master_key_env)
        # every replica keeps its own cooldowns: each must route the model to its member
        return bool(urls) and all(
            confirm_routable(Gateway(u, key), model, deployment, self.opts.routable_timeout,
                             streak=3 * reg.stack.gateway.workers) for u in urls)

    def unroutable(self, model: str) -> str:
        return (f"runs but no gateway routes {model!r} to it within "
                f"{self.opts.routable_timeout:g}s")


class SwarmTarget:
    kind = "swarm"
    where = "on the Swarm"

    def __init__(self, reg: Registry, swarm: Callable[[], Swarm] | None = None,
                 routable: Routable | None = None):
        self.reg = reg
        self._swarm = swarm or (lambda: Swarm(reg))
        self._routable = routable

    def before_up(self) -> None:
        self._swarm().ping()

    def up(self, opts: Any, files: dict[str, list[str]], ui: Ui, on_change: OnChange) -> Report:
        def say(text: str) -> None:
            ui.rich(f"  {text}")

        t = time.monotonic()
        urls = swarm_up(self.reg, self._swarm(), opts.timeout, say,
                        on_change=lambda s, v: say(f"{s}: {v}"))
        return SwarmUp(self.reg.stack.project, urls, round(time.monotonic() - t, 2))

    def down(self, profiles: list[str], volumes: bool, ui: Ui) -> Report:
        return SwarmDown(self.reg.stack.project, swarm_down(self._swarm()))

    def status(self) -> Report:
        return SwarmStatusReport(swarm_status(self.reg, self._swarm()))

    def switch(self, opts: SwitchOptions, ui: Ui) -> Report:
        effects = SwarmEffects(self.reg, self._swarm(), opts, ui.progress, self._routable)
        result = ensure_active(effects, opts)
        if opts.dry_run:
            return SwitchOutcome(result, dry_run=True)
        return ScaledSwitchOutcome(self.kind, self.where, opts.member, result)


class SwarmUp(Report):
    def __init__(self, project: str, gateways: list[str], seconds: float):
        self.project, self.gateways, self.seconds = project, gateways, seconds

    def document(self) -> dict[str, Any]:
        return {"ok": True, "project": self.project, "target": "swarm",
                "gateways": self.gateways, "seconds": self.seconds}

    def show(self, ui: Ui) -> None:
        ui.result(f"stack {self.project!r} is up on the Swarm in {self.seconds:.1f}s; "
                  f"gateway on {', '.join(u + '/v1' for u in self.gateways)}")


class SwarmDown(Report):
    def __init__(self, project: str, left: dict[str, list[str]]):
        self.project, self.left = project, left
        self.ok = not any(left.values())
        self.problem = "still on the Swarm: " + "; ".join(
            f"{kind} {', '.join(names)}" for kind, names in left.items() if names)

    def document(self) -> dict[str, Any]:
        return {"ok": self.ok, "project": self.project, "target": "swarm", "left": self.left}

    def show(self, ui: Ui) -> None:
        if self.ok:
            ui.result(f"stack {self.project!r} removed from the Swarm "
                      "(services, network and secrets)")


class SwarmStatusReport(Report):
    def __init__(self, st: SwarmStatus):
        self.st = st

    @property
    def exit_code(self) -> int:
        return self.st.exit_code

    def document(self) -> dict[str, Any]:
        return self.st.model_dump(mode="json")

    def json_text(self) -> str:
        return self.st.model_dump_json(indent=2)

    def show(self, ui: Ui) -> None:
        st = self.st
        ui.result(f"stack {st.project!r} on the Swarm ({st.manager or 'local engine'}): "
                  f"gateway {', '.join(st.gateways) or 'DOWN'}")
        for s in st.services:
            where = ", ".join(f"{t['node']} {t['state']}" for t in s["tasks"]) or "-"
            ui.result(f"  {s['name']:<18} {s['running']}/{s['replicas']}  {where}")
        for n in st.nodes:
            extra = " ".join(f"{k}={v}" for k, v in {**n.labels, **n.resources}.items())
            ui.result(f"  node {n.hostname} {n.role} {n.status}/{n.availability} "
                      f"{n.address} {extra}".rstrip())
        for g, info in st.gpu_groups.items():
            ui.result(f"  GPU group {g}: active {info['active'] or 'none'} "
                      f"(members: {', '.join(info['members'])})")
