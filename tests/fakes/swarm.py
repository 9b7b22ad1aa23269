"""A fake of the Swarm manager's client (stackctl.docker.swarm.Swarm) for the Swarm target:
services with desired replicas, nodes, secrets; every change recorded in `log`."""

from __future__ import annotations

from pathlib import Path

from stackctl.docker.adapter import EngineUnreachable
from stackctl.docker.swarm import NodeState, ServiceState, SwarmError, TaskState


class FakeSwarm:
    """A scale takes effect at once, except for members listed in `broken` (their task
    never gets past starting). `deploy` makes the services of `deployed` (name → replicas)."""

    def __init__(self, replicas: dict[str, int], broken: frozenset[str] = frozenset(),
                 deployed: dict[str, int] | None = None):
        self.replicas = dict(replicas)
        self.broken = set(broken)
        self.deployed = dict(deployed or {})
        self.log: list[tuple] = []
        self.left: dict[str, list[str]] = {"services": [], "secrets": [], "networks": []}

    # `ping`: None → no engine answers; "inactive" → an engine that is no Swarm manager
    engine: str | None = "active"

    def ping(self) -> None:
        self.log.append(("ping",))
        if self.engine is None:
            raise EngineUnreachable("no Docker engine answers at the Swarm manager "
                                    "(tcp://10.0.0.9:2376): Cannot connect to the Docker "
                                    "daemon at tcp://10.0.0.9:2376. Is the docker daemon "
                                    "running?")
        if self.engine != "active":
            raise SwarmError(f"tcp://10.0.0.9:2376 is not a Swarm manager (swarm state: "
                             f"{self.engine}): `docker swarm init` makes it one, or set "
                             "deploy.manager to a manager's address")

    def services(self) -> dict[str, ServiceState]:
        out = {}
        for name, n in self.replicas.items():
            state = "starting" if name in self.broken else "running"
            out[name] = ServiceState(name, n, [TaskState(name, "node3", state, "running")
                                               for _ in range(n)])
        return out

    def scale(self, scales: dict[str, int]) -> None:
        self.log.append(("scale", dict(scales)))
        self.replicas.update(scales)

    def gateway_urls(self) -> list[str]:
        return ["http://10.0.0.1:4000", "http://10.0.0.2:4000"] if self.replicas.get(
            "litellm", 2) else []

    def nodes(self) -> list[NodeState]:
        return [NodeState(hostname="node3", address="10.0.0.3", role="worker",
                          availability="active", status="ready", labels={"gpu": "yes"})]

    def secrets(self, env_file: Path) -> list[str]:
        self.log.append(("secrets",))
        return []

    def deploy(self, stack_file: Path, variables: dict[str, str]) -> None:
        self.log.append(("deploy", stack_file.name))
        self.replicas.update(self.deployed)

    def remove(self) -> None:
        self.log.append(("remove",))
        self.replicas.clear()

    def remove_secrets(self) -> None:
        self.log.append(("remove_secrets",))

    def leftovers(self) -> dict[str, list[str]]:
        return {k: list(v) for k, v in self.left.items()}
