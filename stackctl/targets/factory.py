"""`target_for(reg)`: the Target stack.yaml `deploy.target` names (targets/base.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from stackctl.docker import adapter
from stackctl.errors import PlanError
from stackctl.registry.load import Registry
from stackctl.registry.vocabulary import COMPOSE_FILE
from stackctl.targets.base import Target

if TYPE_CHECKING:
    from stackctl.docker.swarm import Swarm
    from stackctl.targets.kubernetes import Kubectl


def target_for(reg: Registry, docker: Callable[[], adapter.Docker] | None = None,
               swarm: Callable[[], Swarm] | None = None, kubectl: Kubectl | None = None
               ) -> Target:
    """The Target stack.yaml `deploy.target` names. `docker` makes the local engine's adapter
    (default: on the generated compose file), `swarm` the manager's client, `kubectl` runs
    kubectl: tests pass fakes."""
    # Each target's module is imported here, once chosen: a switch on the local engine does
    # not pay for the Swarm's and Kubernetes' renderers (~30 ms) before it stops a member.
    kind = reg.stack.deploy.target
    if kind == "swarm":
        from stackctl.targets.swarm import SwarmTarget

        return SwarmTarget(reg, swarm)
    if kind == "kubernetes":
        from stackctl.targets.kubernetes import KubernetesTarget
        from stackctl.targets.kubernetes import kubectl as real_kubectl

        return KubernetesTarget(reg, kubectl or real_kubectl)
    from stackctl.targets.compose import ComposeTarget

    return ComposeTarget(reg, docker or (lambda: local_docker(reg)))


def local_docker(reg: Registry) -> adapter.Docker:
    """The Docker adapter on the stack's generated compose file."""
    compose = reg.output_dir / COMPOSE_FILE
    if not compose.exists():
        raise PlanError(f"{compose} is missing: run `stackctl generate`")
    return adapter.Docker(compose, reg.stack.project, reg.env_file)
