"""`up` and `down`: start profiles health-gated, stop them cleanly."""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel, Field

from ..registry.load import Registry
from ..render.compose import profiles as all_profiles
from ..docker.adapter import Docker
from .envfile import read_env
from .gateway import Gateway
from .health import Gate, GateFailure, wait_healthy
from .lock import stack_lock
from .plan import UpPlan, plan_up, services_of
from .probes import host_probe


class UpOptions(BaseModel):
    profiles: list[str] = Field(default_factory=list,
                                description="profiles to start; empty: stack.yaml default_profiles")
    timeout: float = Field(300, gt=0, description="seconds every service may take to be healthy")
    lock_wait: float | None = Field(None, description="seconds to wait for a concurrent "
                                    "up/switch; None: fail at once")


class UpResult(BaseModel):
    plan: UpPlan
    ready_after: dict[str, float]
    gateway_url: str


class GatewayCheckFailed(Exception):
    pass


def gateway_for(reg: Registry) -> Gateway:
    key = read_env(reg.env_file).get(reg.stack.gateway.master_key_env)
    return Gateway(f"http://127.0.0.1:{reg.stack.gateway.host_port}", key)


def bring_up(reg: Registry, docker: Docker, opts: UpOptions,
             on_change: Callable[[str, str, float], None] = lambda *a: None,
             probe: Callable[[str], bool] | None = None) -> UpResult:
    """Plan, start and health-gate under the stack lock, then check the gateway's models.

    `probe(service)` sees readiness from the host (default: the services' healthchecks sent
    to their published ports)."""
    with stack_lock(reg.stack.project, "up", opts.lock_wait):
        plan = plan_up(reg, opts.profiles, docker.containers())
        docker.up(plan.profiles, plan.services)
        gate: Gate = wait_healthy(plan.services, docker.containers, opts.timeout,
                                  logs=docker.logs, on_change=on_change,
                                  probe=host_probe(reg) if probe is None else probe)
    gw = gateway_for(reg)
    missing = gw.wait_models(plan.expected_models, timeout=min(opts.timeout, 30))
    if missing:
        raise GatewayCheckFailed("the gateway does not list " + ", ".join(missing)
                                 + " (is compose/litellm/config.yaml current? see `docker logs`"
                                 f" of the {reg.stack.project} gateway)")
    return UpResult(plan=plan, ready_after=gate.ready_after, gateway_url=gw.url)


def bring_down(reg: Registry, docker: Docker, profiles: list[str], volumes: bool) -> list[str]:
    """Stop and remove; with profiles only their provider services, else the whole project."""
    if profiles:
        core = set(services_of(reg, []))
        services = [s for s in services_of(reg, profiles) if s not in core]
        docker.remove_services(services, volumes=volumes)
        return services
    docker.down(all_profiles(reg), volumes=volumes)
    return [s.service for s in docker.containers()]


__all__ = ["UpOptions", "UpResult", "bring_up", "bring_down", "GateFailure", "GatewayCheckFailed"]
