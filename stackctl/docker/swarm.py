"""The Swarm manager's API for one stack (python-on-whales and the docker CLI against
`deploy.manager`): services and their tasks, nodes, scaling, secrets, `docker stack
deploy`/`rm`, and pushing the local images to `deploy.registry`.

The second Docker client of stackctl, beside the Compose adapter (adapter.py): a Swarm is
another engine, reached through its manager. What `up`, `down`, `status` and `switch` do with
it is targets/swarm.py's. python-on-whales is imported when a call first needs it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from stackctl.docker.adapter import UNREACHABLE, EngineUnreachable
from stackctl.errors import PlanError
from stackctl.registry.load import Registry
from stackctl.registry.vocabulary import GATEWAY
from stackctl.render.swarm import swarm_secrets
from stackctl.store.envfile import compose_value

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
        from python_on_whales import DockerClient  # ~150 ms: only once the Swarm is asked

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
    def ping(self) -> None:
        """EngineUnreachable unless the manager's engine answers; SwarmError unless it is a
        Swarm manager (a deploy anywhere else fails only after the secrets step)."""
        from python_on_whales.exceptions import DockerException

        where = self.reg.stack.deploy.manager or "the local engine"
        try:
            info = self.client.system.info()
        except FileNotFoundError:
            raise EngineUnreachable("the docker CLI is not installed: run "
                                    "scripts/ensure-docker.sh") from None
        except DockerException as exc:
            lines = (exc.stderr or exc.stdout or "").strip().splitlines() or [str(exc)]
            if any(marker in lines[-1] for marker in UNREACHABLE):
                raise EngineUnreachable(f"no Docker engine answers at the Swarm manager "
                                        f"({where}): {lines[-1]}") from None
            raise SwarmError(f"docker info at {where}: {lines[-1]}") from None
        swarm = info.swarm
        if swarm is None or swarm.local_node_state != "active" or not swarm.control_available:
            state = swarm.local_node_state if swarm is not None else "unknown"
            raise SwarmError(f"{where} is not a Swarm manager (swarm state: {state}): "
                             "`docker swarm init` makes it one, or set deploy.manager to a "
                             "manager's address")

    def services(self) -> dict[str, ServiceState]:
        """The stack's services (registry names) with their tasks, from two CLI calls: a
        python-on-whales Task inspects itself again on access, and fails once a task
        scaled away is gone."""
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
        mine = sorted(set(swarm_secrets(self.reg)) & self.secret_names())
        if mine:
            self._cli("docker secret rm", "secret", "rm", *mine)

    def leftovers(self) -> dict[str, list[str]]:
        """What of the stack is still there: services, secrets, networks. Names from the
        CLI's listing: a python-on-whales object inspects itself on access, and fails once
        the Swarm has removed it since the listing (`down` met a network that went so)."""
        def listed(kind: str) -> list[str]:
            return self._cli(f"docker {kind} ls", kind, "ls", "--filter",
                             f"label=com.docker.stack.namespace={self.project}",
                             "--format", "{{.Name}}").split()

        return {"services": listed("service"),
                "secrets": sorted(set(swarm_secrets(self.reg)) & self.secret_names()),
                "networks": listed("network")}


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
