"""GPU-exclusive switching. `ensure_active` is the one entry point that changes a group.

The active member is read from Docker (container labels), never from a file, and the read,
the decision and the action all happen under the stack lock.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from pydantic import BaseModel, Field

from ..registry.catalog import exclusive_groups, models_of_provider, profile_of
from ..registry.load import Registry
from ..registry.problems import did_you_mean
from .docker import Docker
from .gateway import Gateway
from .health import GateFailure, wait_healthy
from .lock import stack_lock
from .plan import PlanError
from .probes import host_probe
from .state import ContainerState
from .up import gateway_for


class SwitchOptions(BaseModel):
    member: str = Field(description="target member: provider name or unique part of it")
    timeout: float = Field(300, gt=0, description="seconds the target may take to be healthy")
    routable_timeout: float = Field(30, gt=0, description="seconds for the gateway to route "
                                    "the target's model to it once healthy")
    dry_run: bool = Field(False, description="print the plan, change nothing")
    lock_wait: float | None = Field(None, description="seconds to wait for a concurrent "
                                    "up/switch; None: fail at once")


class SwitchPlan(BaseModel):
    group: str
    target: str
    stop: list[str] = Field(description="running members to stop, in order")
    noop: bool

    def describe(self) -> list[str]:
        if self.noop:
            return [f"{self.target} is already the active member of GPU group {self.group!r}: "
                    "nothing to do"]
        steps = [f"stop {m} (graceful)" for m in self.stop]
        steps += [f"start {self.target}", f"wait until {self.target} is healthy",
                  f"confirm through the gateway that {self.target}'s model answers"]
        return steps


class SwitchResult(BaseModel):
    plan: SwitchPlan
    timings: dict[str, float] = Field(default_factory=dict,
                                      description="seconds: stop, start, ready, routable, total")


class SwitchFailed(Exception):
    """The target did not come up; the previous member was restored (or not: see message)."""


def resolve_member(reg: Registry, name: str) -> tuple[str, str]:
    """(group, member) for a full or short member name such as 'dolphin'."""
    groups = exclusive_groups(reg)
    members = {m: g for g, ms in groups.items() for m in ms}
    if not members:
        raise PlanError("no exclusive GPU group is defined in the registry")
    if name in members:
        return members[name], name
    hits = [m for m in members if name.lower() in m.lower()]
    if len(hits) == 1:
        return members[hits[0]], hits[0]
    if hits:
        raise PlanError(f"{name!r} is ambiguous: it matches {', '.join(hits)}")
    hint = did_you_mean(name, members) or f"members: {', '.join(members)}"
    raise PlanError(f"{name!r} is not a member of an exclusive GPU group; {hint}")


def plan_switch(reg: Registry, target: str, observed: list[ContainerState]) -> SwitchPlan:
    group, target = resolve_member(reg, target)
    members = exclusive_groups(reg)[group]
    running = [s.service for s in observed if s.running and s.service in members]
    others = [m for m in running if m != target]
    return SwitchPlan(group=group, target=target, stop=others,
                      noop=target in running and not others)


def confirm_routable(gw: Gateway, model: str, deployment_id: str, timeout: float,
                     clock: Callable[[], float] = time.monotonic,
                     sleep: Callable[[float], None] = time.sleep) -> bool:
    """True once a request for `model` is answered by `deployment_id` (not by a fallback)."""
    import requests

    deadline = clock() + timeout
    while True:
        try:
            r = requests.post(f"{gw.url}/v1/chat/completions", headers=gw._headers(), timeout=30,
                              json={"model": model, "max_tokens": 1, "cache": {"no-cache": True},
                                    "messages": [{"role": "user", "content": "ping"}]})
            if r.ok and r.headers.get("x-litellm-model-id") == deployment_id:
                return True
        except requests.RequestException:
            pass
        if clock() >= deadline:
            return False
        sleep(0.5)


def ensure_active(reg: Registry, docker: Docker, opts: SwitchOptions,
                  say: Callable[[str], None] = lambda s: None,
                  routable: Callable[[str, str], bool] | None = None,
                  ready: Callable[[str], bool] | None = None) -> SwitchResult:
    """Make `opts.member` the one running member of its group; roll back if it fails.

    `routable(model, deployment_id)` confirms the gateway routes to the new member (default:
    a real request through the gateway); `ready(member)` sees readiness before Docker's next
    healthcheck does (default: the healthcheck's own request, sent to the host port).
    Tests inject their own.
    """
    providers = reg.providers.providers
    with stack_lock(reg.stack.project, "switch", opts.lock_wait):
        observed = docker.containers()
        plan = plan_switch(reg, opts.member, observed)
        result = SwitchResult(plan=plan)
        if plan.noop or opts.dry_run:
            return result
        if routable is None:
            gw = gateway_for(reg)

            def routable(model: str, dep: str) -> bool:
                return confirm_routable(gw, model, dep, opts.routable_timeout)
        t0 = time.monotonic()

        def stop(member: str) -> None:
            """Graceful stop (in-flight requests finish), then remove: the member is absent."""
            grace = providers[member].container.stop_grace_period  # type: ignore[union-attr]
            for st in docker.containers():
                if st.service == member:
                    say(f"stopping {member}")
                    docker.stop(st.name, grace)
                    docker.remove(st.name)

        def start_and_gate(member: str) -> dict[str, float]:
            t = time.monotonic()
            say(f"starting {member}")
            docker.start_service([profile_of(member, providers[member])], member)
            started = time.monotonic()
            wait_healthy([member], docker.containers, opts.timeout, logs=docker.logs,
                         probe=host_probe(reg) if ready is None else ready)
            healthy = time.monotonic()
            model = next(iter(models_of_provider(reg, member)), None)
            if model and not routable(model, f"{model}@{member}"):
                raise GateFailure(member, f"is healthy but the gateway did not route {model!r} "
                                  f"to it within {opts.routable_timeout:g}s")
            return {"start": started - t, "ready": healthy - started,
                    "routable": time.monotonic() - healthy}

        for member in plan.stop:
            stop(member)
        stopped = time.monotonic()
        result.timings["stop"] = stopped - t0
        try:
            result.timings.update(start_and_gate(plan.target))
        except GateFailure as failure:
            previous = plan.stop[0] if plan.stop else None
            target_name = next((s.name for s in docker.containers()
                                if s.service == plan.target), plan.target)
            logs = failure.logs or docker.logs(target_name)
            say(f"{plan.target} failed: {failure.reason}; rolling back")
            stop(plan.target)
            if previous is None:
                raise SwitchFailed(f"{plan.target} {failure.reason}; no member was running "
                                   f"before, so GPU group {plan.group!r} is empty"
                                   + _tail(logs)) from None
            try:
                start_and_gate(previous)
            except GateFailure as again:
                raise SwitchFailed(f"{plan.target} {failure.reason}; rollback to {previous} "
                                   f"ALSO failed: {again.reason}. GPU group {plan.group!r} has "
                                   "no healthy member" + _tail(logs)) from None
            raise SwitchFailed(f"{plan.target} {failure.reason}; rolled back: {previous} is "
                               "healthy and routable again" + _tail(logs)) from None
        result.timings["total"] = time.monotonic() - t0
        return result


def _tail(logs: str) -> str:
    if not logs.strip():
        return ""
    return "\n  last log lines of the target:\n" + "\n".join(
        "    " + line for line in logs.rstrip().splitlines()[-20:])
