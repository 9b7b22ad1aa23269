"""The stack on a Docker Swarm: up, down, status and switch through a manager's API.

`stack.yaml` `deploy.target: swarm` sends `up`, `down`, `status` and `switch` here. The
stack file is render/swarm.py's (`docker stack deploy`); secrets come from `.env` as Swarm
secrets; with `deploy.registry` the local images are pushed there first, for the nodes to
pull. Swarm has no profiles: every provider is a service, scaled 0 or 1; a GPU group's
switch scales the outgoing member to 0, waits until its task is gone (the GPU is free),
scales the target to 1 and waits until its task runs — Swarm reports a task with a
healthcheck as running only once it is healthy — then confirms through a gateway replica
that its model is routed to it, and rolls back the same way on failure.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from stackctl.errors import PlanError
from stackctl.registry.catalog import deployments, exclusive_groups
from stackctl.registry.load import Registry
from stackctl.store.envfile import compose_value, read_env

if TYPE_CHECKING:
    from python_on_whales import DockerClient

class SwarmError(PlanError):
    """The Swarm refused, or did not converge in time; the message says where."""


@dataclass
class TaskState:
    service: str  # the registry's name (without the stack's prefix)
    node: str  # the node's hostname
    state: str  # running, starting, pending, failed, shutdown …
    desired: str
    error: str = ""


@dataclass
class ServiceState:
    name: str
    replicas: int  # desired
    tasks: list[TaskState] = field(default_factory=list)

    @property
    def running(self) -> int:
        return sum(t.state == "running" and t.desired == "running" for t in self.tasks)


class NodeState(BaseModel):
    hostname: str
    address: str
    role: str
    availability: str
    status: str = Field(description="ready or down, as the managers see it")
    labels: dict[str, str] = Field(default_factory=dict)
    resources: dict[str, int] = Field(default_factory=dict, description="generic resources")


class Swarm:
    """The manager's API (python-on-whales), for one stack."""

    def __init__(self, reg: Registry, client: DockerClient | None = None):
        from python_on_whales import DockerClient

        self.reg = reg
        self.project = reg.stack.project
        self.client = client or DockerClient(host=reg.stack.deploy.manager)

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        from python_on_whales.exceptions import DockerException

        try:
            return fn()
        except DockerException as exc:
            detail = (exc.stderr or str(exc)).strip().splitlines()
            raise SwarmError(f"{what}: {detail[-1] if detail else exc}") from None

    # -- reading ------------------------------------------------------------------------
    def services(self) -> dict[str, ServiceState]:
        """The stack's services (registry names) with their tasks, from two CLI calls: a
        python-on-whales Task inspects itself again on access, and fails once a task
        scaled away is gone."""
        import json

        label = f"label=com.docker.stack.namespace={self.project}"
        out: dict[str, ServiceState] = {}
        for line in self._cli("docker service ls", "service", "ls", "--filter", label,
                              "--format", "{{json .}}").splitlines():
            svc = json.loads(line)
            name = svc["Name"].removeprefix(f"{self.project}_")
            desired = str(svc.get("Replicas", "0/0")).split("/")[-1].split()[0]
            out[name] = ServiceState(name, int(desired) if desired.isdigit() else 0)
        if not out:
            return out
        for line in self._cli("docker stack ps", "stack", "ps", "--no-trunc", "--format",
                              "{{json .}}", self.project).splitlines():
            task = json.loads(line)
            # "<project>_<service>.<slot>" ("\_ " before an older task of the same slot)
            service = task["Name"].lstrip("\\_ ").removeprefix(f"{self.project}_")
            name = service.rsplit(".", 1)[0]
            if name not in out:
                continue
            state = (task.get("CurrentState") or "unknown").split()[0].lower()
            out[name].tasks.append(TaskState(name, task.get("Node") or "-", state,
                                             (task.get("DesiredState") or "").lower(),
                                             task.get("Error") or ""))
        return out

    def nodes(self) -> list[NodeState]:
        return self._call("docker node inspect", self._nodes)

    def _nodes(self) -> list[NodeState]:
        out = []
        for n in self._call("docker node ls", self.client.node.list):
            desc, spec, status = n.description, n.spec, n.status
            res: dict[str, int] = {}
            for g in ((desc.resources.generic_resources or []) if desc and desc.resources
                      else []):
                d = g.discrete_resource_spec
                if d is not None and d.kind:
                    res[d.kind] = res.get(d.kind, 0) + int(d.value or 0)
                named = g.named_resource_spec
                if named is not None and named.kind:
                    res[named.kind] = res.get(named.kind, 0) + 1
            out.append(NodeState(
                hostname=desc.hostname if desc else n.id, address=status.addr or "",
                role=spec.role or "", availability=spec.availability or "",
                status=status.state or "", labels=dict(spec.labels or {}), resources=res))
        return out

    def gateway_urls(self) -> list[str]:
        """http://<node address>:<port> of every node where a gateway task runs (host-mode
        publishing: the port answers only there)."""
        from stackctl.render.compose import GATEWAY

        addrs = {n.hostname: n.address for n in self.nodes()}
        gw = self.services().get(GATEWAY)
        port = self.reg.stack.gateway.host_port
        return sorted({f"http://{addrs[t.node]}:{port}" for t in (gw.tasks if gw else [])
                       if t.state == "running" and t.desired == "running" and t.node in addrs})

    # -- changing -----------------------------------------------------------------------
    def _cli(self, what: str, *args: str) -> str:
        """The docker CLI against the manager, its output captured (python-on-whales' own
        `service scale` and `stack deploy` print to our stdout, which --json keeps clean)."""
        from python_on_whales.utils import run

        return self._call(what, lambda: run(self.client.client_config.docker_cmd + list(args)))

    def scale(self, scales: dict[str, int]) -> None:
        full = [f"{self.project}_{name}={n}" for name, n in scales.items()]
        self._cli(f"docker service scale {' '.join(full)}", "service", "scale", "--detach",
                  *full)

    def secret_names(self) -> set[str]:
        # the CLI, not python-on-whales' Secret objects: their constructor prints each
        # secret's id to stdout (python-on-whales 0.80)
        return set(self._cli("docker secret ls", "secret", "ls", "--format",
                             "{{.Name}}").split())

    def secrets(self, env_file: Path) -> list[str]:
        """Create the stack's secrets that are missing from `.env`'s values; return their
        names. A secret is immutable: one that exists is kept as it is."""
        from python_on_whales.utils import run

        from stackctl.render.swarm import swarm_secrets

        have = self.secret_names()
        created = []
        for name, var in swarm_secrets(self.reg).items():
            if name in have:
                continue
            value = compose_value(env_file, var)
            if not value:
                raise SwarmError(f"{var} has no value in {env_file}: the Swarm secret {name} "
                                 "cannot be created")
            cmd = self.client.client_config.docker_cmd + ["secret", "create", name, "-"]
            # on stdin: the value is on no command line and in no file
            self._call(f"docker secret create {name}",
                       lambda c=cmd, v=value: run(c, input=v.encode()))
            created.append(name)
        return created

    def deploy(self, stack_file: Path, variables: dict[str, str]) -> None:
        from python_on_whales.utils import run

        cmd = self.client.client_config.docker_cmd + [
            "stack", "deploy", "--compose-file", str(stack_file), "--resolve-image", "never",
            self.project]
        # `${VAR}` in the stack file: filled in from the environment of the CLI
        self._call("docker stack deploy", lambda: run(cmd, env=variables))

    def remove(self) -> None:
        self._call("docker stack rm", lambda: self.client.stack.remove(self.project))

    def remove_secrets(self) -> None:
        from stackctl.render.swarm import swarm_secrets

        mine = sorted(set(swarm_secrets(self.reg)) & self.secret_names())
        if mine:
            self._cli("docker secret rm", "secret", "rm", *mine)

    def leftovers(self) -> dict[str, list[str]]:
        """What of the stack is still there: services, secrets, networks."""
        from stackctl.render.swarm import swarm_secrets

        label = [("label", f"com.docker.stack.namespace={self.project}")]
        names = set(swarm_secrets(self.reg))
        return {
            "services": [s.spec.name for s in self._call(
                "docker service ls", lambda: self.client.service.list(filters=label))],
            "secrets": sorted(names & self.secret_names()),
            "networks": [n.name for n in self._call(
                "docker network ls", lambda: self.client.network.list(filters=label))],
        }


def push_images(reg: Registry, stack: dict[str, Any], say: Callable[[str], None]) -> list[str]:
    """Tag each local image the stack file names with `deploy.registry` and push it there
    (from this machine's engine): the nodes pull it by that name."""
    from python_on_whales import docker
    from python_on_whales.utils import run

    prefix = f"{reg.stack.deploy.registry}/"
    pushed = []
    for image in sorted({svc["image"] for svc in stack["services"].values()}):
        if not image.startswith(prefix):
            continue
        local = image.removeprefix(prefix)
        try:
            docker.image.tag(local, image)
            say(f"pushing {image}")
            run(docker.client_config.docker_cmd + ["image", "push", "-q", image])
        except Exception as exc:  # python-on-whales raises DockerException (and subclasses)
            raise SwarmError(f"could not push {local} to {reg.stack.deploy.registry}: "
                             f"{str(exc).strip().splitlines()[-1]}") from None
        pushed.append(image)
    return pushed


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
    from stackctl.render.swarm import SWARM_FILE, render_swarm

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


def swarm_switch(reg: Registry, swarm: Swarm, member: str, timeout: float,
                 routable_timeout: float = 30,
                 say: Callable[[str], None] = lambda s: None,
                 routable: Callable[[str, str, list[str]], bool] | None = None
                 ) -> dict[str, float]:
    """Scale the group's other members to 0, then `member` to 1; health-gated and confirmed
    through a gateway replica; rolled back (previous member scaled up again) on failure.
    Raises switch.SwitchFailed like the single-engine switch."""
    from stackctl.switching.run import members_of, resolve_member, scaled_switch

    members = members_of(reg)
    group, target = resolve_member(members, member)
    names = [m for m, i in members.items() if i.group == group]
    services = swarm.services()
    previous = [m for m in names if m != target and m in services and services[m].replicas]
    if routable is None:
        routable = _routable_through(reg, routable_timeout)
    t0 = time.monotonic()
    timings: dict[str, float] = {}

    def move(to: str, away: list[str]) -> None:
        if away:
            say(f"scaling {', '.join(away)} to 0")
            swarm.scale(dict.fromkeys(away, 0))
            wait_converged(swarm, timeout, only=set(away))
        t = time.monotonic()
        timings["stop"] = t - t0
        say(f"scaling {to} to 1")
        swarm.scale({to: 1})
        wait_converged(swarm, timeout, only={to})
        timings["ready"] = time.monotonic() - t
        model = members[to].model
        t = time.monotonic()
        if model and not routable(model, f"{model}@{to}", swarm.gateway_urls()):
            raise SwarmError(f"{to} runs but no gateway routes {model!r} to it within "
                             f"{routable_timeout:g}s")
        timings["routable"] = time.monotonic() - t

    scaled_switch(target, previous, group, move, lambda m: swarm.scale({m: 0}), SwarmError, say)
    timings["total"] = time.monotonic() - t0
    return timings


def _routable_through(reg: Registry, timeout: float) -> Callable[[str, str, list[str]], bool]:
    from stackctl.gateway.client import Gateway
    from stackctl.switching.run import confirm_routable

    key = compose_value(reg.env_file, reg.stack.gateway.master_key_env)

    def routable(model: str, dep: str, urls: list[str]) -> bool:
        # every replica keeps its own cooldowns: each must route the model to its member
        return bool(urls) and all(confirm_routable(Gateway(u, key), model, dep, timeout,
                                                   streak=3 * reg.stack.gateway.workers)
                                  for u in urls)
    return routable
