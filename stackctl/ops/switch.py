"""GPU-exclusive switching. `ensure_active` is the one entry point that changes a group.

The active member is read from Docker (container labels), never from a file, and the read,
the decision and the action all happen under the stack lock. See design.md beside this file.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, NoReturn

from pydantic import BaseModel, Field

from ..docker.adapter import Docker, DockerError
from ..docker.models import ContainerState
from ..hints import did_you_mean
from ..registry.load import Registry
from .envfile import compose_value
from .errors import PlanError
from .health import GateFailure, wait_healthy
from .lock import stack_lock
from .monitoring import SwitchReport, pushgateway_url

if TYPE_CHECKING:
    from .gateway import Gateway


@dataclass(frozen=True)
class Member:
    """What switching needs to know of one member of an exclusive GPU group."""

    name: str
    group: str
    profile: str
    stop_grace: float
    ready_url: str | None  # the container's readiness check seen from the host; None: no port
    ready_expect: str | None
    model: str | None  # a public model it serves: asked through the gateway after a switch


def members_of(reg: Registry) -> dict[str, Member]:
    """Every member of every exclusive GPU group, registry order (pure)."""
    from ..registry.catalog import exclusive_groups, models_of_provider, profile_of
    from ..render.litellm import served_backend
    from ..render.probes import host_check

    providers = reg.providers.providers
    members = {}
    for group, names in exclusive_groups(reg).items():
        for name in names:
            prov = providers[name]
            assert prov.container is not None  # a group member has a container
            url, expect = host_check(prov, served_backend(reg, name)) if prov.host_port \
                else (None, None)
            members[name] = Member(name, group, profile_of(name, prov),
                                   prov.container.stop_grace_period, url, expect,
                                   next(iter(models_of_provider(reg, name)), None))
    return members


class SwitchOptions(BaseModel):
    member: str = Field(description="target member: provider name or a unique part of it")
    timeout: float = Field(300, gt=0, description="seconds the target may take to be healthy")
    routable_timeout: float = Field(30, gt=0, description="seconds for the gateway to route to "
                                    "the target once it is healthy")
    dry_run: bool = Field(False, description="decide and describe; change nothing")
    lock_wait: float | None = Field(None, description="seconds to wait for a concurrent "
                                    "up/switch; None: fail at once")


class SwitchPlan(BaseModel):
    group: str = Field(description="the exclusive GPU group")
    target: str = Field(description="the member that will be the one running")
    stop: list[str] = Field(description="running members to stop, in order")
    noop: bool = Field(description="the target already is the only running member: nothing "
                       "to stop or start, but it must still be ready and routable")

    def describe(self) -> list[str]:
        check = [f"wait until {self.target} is healthy",
                 f"confirm through the gateway that {self.target}'s model answers"]
        if self.noop:
            # running is not ready: an interrupted switch leaves a member starting, or it died
            return [f"{self.target} is already the active member of GPU group {self.group!r}: "
                    "nothing to stop or start", *check]
        return [*(f"stop {m} (graceful)" for m in self.stop), f"start {self.target}", *check]


class SwitchResult(BaseModel):
    plan: SwitchPlan
    timings: dict[str, float] = Field(default_factory=dict,
                                      description="seconds: stop, start, ready, routable, total")


class SwitchFailed(Exception):
    """The target did not come up; `restored`: the previous member runs again (or there was
    none to restore)."""

    def __init__(self, message: str, restored: bool = True):
        super().__init__(message)
        self.restored = restored


def resolve_member(members_: dict[str, Member], name: str) -> tuple[str, str]:
    """(group, member) for a full or short member name such as 'dolphin'."""
    members = {m.name: m.group for m in members_.values()}
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


def plan_switch(members_: dict[str, Member], target: str,
                observed: list[ContainerState]) -> SwitchPlan:
    """(members, target, observed containers) → what to stop; pure."""
    group, target = resolve_member(members_, target)
    members = [m.name for m in members_.values() if m.group == group]
    running = [s.service for s in observed if s.running and s.service in members]
    others = [m for m in running if m != target]
    return SwitchPlan(group=group, target=target, stop=others,
                      noop=target in running and not others)


def host_ready(members: dict[str, Member]) -> Callable[[str], bool]:
    """A member's own readiness check, sent to its published port."""
    def ready(member: str) -> bool:
        from .probes import http_ok  # requests: first needed once the active member stops

        m = members[member]
        return m.ready_url is not None and http_ok(m.ready_url, m.ready_expect)
    return ready


def confirm_routable(gw: Gateway, model: str, deployment_id: str, timeout: float,
                     streak: int = 1, clock: Callable[[], float] = time.monotonic,
                     sleep: Callable[[float], None] = time.sleep) -> bool:
    """True once `streak` requests for `model`, sent side by side, are all answered by
    `deployment_id` (not by a fallback). Each gateway worker keeps its own cooldowns, and
    each request lands on whichever worker accepts it: several at once, on their own
    connections, reach every worker, and cost the time of one."""
    deadline = clock() + timeout
    with ThreadPoolExecutor(max_workers=streak) as pool:
        while True:
            wait = [max(1.0, deadline - clock())] * streak
            answers = list(pool.map(lambda w: gw.answered_by(model, timeout=w), wait))
            if all(a == deployment_id for a in answers):
                return True
            if clock() >= deadline:
                return False
            sleep(0.1)


def ensure_active(reg: Registry, docker: Docker, opts: SwitchOptions,
                  say: Callable[[str], None] = lambda s: None,
                  routable: Callable[[str, str], bool] | None = None,
                  ready: Callable[[str], bool] | None = None) -> SwitchResult:
    """Make `opts.member` the one running member of its group; roll back if it fails.

    `routable(model, deployment_id)` confirms the gateway routes to the new member (default:
    a real request through the gateway); `ready(member)` sees readiness before Docker's next
    healthcheck does (default: the healthcheck's own request, sent to the host port).
    Tests inject their own.

    Switched-out members are stopped, not removed: starting a stopped container again is the
    fastest way back, and its logs stay readable.
    """
    members = members_of(reg)
    with stack_lock(reg.stack.project, "switch", opts.lock_wait):
        group, _ = resolve_member(members, opts.member)
        observed = docker.containers(group=group)
        plan = plan_switch(members, opts.member, observed)
        result = SwitchResult(plan=plan)
        if opts.dry_run:
            return result
        if routable is None:
            key = compose_value(reg.env_file, reg.stack.gateway.master_key_env)

            def routable(model: str, dep: str) -> bool:
                from .gateway import Gateway  # as http_ok: after the stop

                gw = Gateway(f"http://127.0.0.1:{reg.stack.gateway.host_port}", key)
                return confirm_routable(gw, model, dep, opts.routable_timeout,
                                        streak=3 * reg.stack.gateway.workers)
        probe = host_ready(members) if ready is None else ready
        # a target found running is checked, not switched: nothing to record
        report = SwitchReport(None if plan.noop else pushgateway_url(reg), plan.group,
                              [m for m, info in members.items() if info.group == plan.group])
        report.started()
        t0 = time.monotonic()

        def stop(member: str, states: list[ContainerState]) -> None:
            """Graceful: in-flight requests finish, then the process exits and frees the GPU."""
            grace = members[member].stop_grace
            for st in states:
                if st.service == member and st.running:
                    say(f"stopping {member}")
                    docker.stop(st.name, grace)

        def create(member: str) -> str:
            """The member's container, created (or recreated if stale) but not started."""
            try:
                name = docker.create_service([members[member].profile], member)
            except DockerError as exc:
                raise GateFailure(member, f"could not be created: {exc}") from None
            if name is None:
                raise GateFailure(member, "has no container after `docker compose create`")
            return name

        def start_and_gate(member: str, created: Future[str] | None = None) -> dict[str, float]:
            t = time.monotonic()
            kept = [s.name for s in observed if s.service == member]
            # the previous member on rollback: its kept container, exactly as it ran, even
            # when Compose could not create anything now (a broken .env or compose file)
            name = created.result() if created else kept[0] if kept else create(member)
            say(f"starting {member}")
            try:
                docker.start(name)
            except DockerError as exc:
                raise GateFailure(member, f"could not be started: {exc}",
                                  logs=docker.logs(name)) from None
            return {"start": time.monotonic() - t, **gate(member)}

        def gate(member: str) -> dict[str, float]:
            started = time.monotonic()
            # Docker's view every 0.5 s catches a crash; the host probe every 20 ms sees
            # readiness as soon as the server has it.
            wait_healthy([member], lambda: docker.containers(service=member), opts.timeout,
                         logs=docker.logs,
                         probe=probe, poll=0.5, probe_poll=0.02)
            healthy = time.monotonic()
            model = members[member].model
            if model and not routable(model, f"{model}@{member}"):
                raise GateFailure(member, f"is healthy but the gateway did not route {model!r} "
                                  f"to it within {opts.routable_timeout:g}s")
            return {"ready": healthy - started, "routable": time.monotonic() - healthy}

        # Creating (or recreating a stale) target container needs no GPU: it overlaps the stop.
        # Leaving the pool waits for it: no compose run is left behind the lock.
        with ThreadPoolExecutor(max_workers=1) as pool:
            created = None if plan.noop else pool.submit(create, plan.target)
            for member in plan.stop:
                stop(member, observed)
            result.timings["stop"] = time.monotonic() - t0
            try:
                result.timings.update({"start": 0.0, **gate(plan.target)} if plan.noop
                                      else start_and_gate(plan.target, created))
            except GateFailure as failure:
                try:
                    rollback(plan, failure, docker, say, stop, start_and_gate)
                except SwitchFailed as exc:
                    result.timings["total"] = time.monotonic() - t0
                    previous = plan.stop[0] if plan.stop and exc.restored else None
                    report.finished(previous, result.timings, success=False,
                                    rolled_back=bool(plan.stop))
                    raise
        result.timings["total"] = time.monotonic() - t0
        report.finished(plan.target, result.timings, success=True, rolled_back=False)
        if report.problem:
            say(f"switch record not pushed: {report.problem}")
        return result


def rollback(plan: SwitchPlan, failure: GateFailure, docker: Docker,
             say: Callable[[str], None], stop: Callable[[str, list[ContainerState]], None],
             start_and_gate: Callable[[str], dict[str, float]]) -> NoReturn:
    """Stop the failed target, bring the previous member back, and say what happened."""
    logs = failure.logs or next((docker.logs(s.name) for s in docker.containers(plan.target)
                                 if s.service == plan.target), "")
    say(f"{plan.target} failed: {failure.reason}; rolling back")
    stop(plan.target, docker.containers(plan.target))
    previous = plan.stop[0] if plan.stop else None
    if plan.noop:
        raise SwitchFailed(f"{plan.target} (already running) {failure.reason}; it was the only "
                           f"member running, and is stopped now: GPU group {plan.group!r} is "
                           "empty" + _tail(logs), restored=True)
    if previous is None:
        raise SwitchFailed(f"{plan.target} {failure.reason}; no member was running before, so "
                           f"GPU group {plan.group!r} is empty" + _tail(logs), restored=True)
    try:
        start_and_gate(previous)
    except GateFailure as again:
        raise SwitchFailed(f"{plan.target} {failure.reason}; rollback to {previous} ALSO "
                           f"failed: {again.reason}. GPU group {plan.group!r} has no healthy "
                           "member" + _tail(logs), restored=False) from None
    raise SwitchFailed(f"{plan.target} {failure.reason}; rolled back: {previous} is healthy "
                       "and routable again" + _tail(logs))


def _tail(logs: str) -> str:
    if not logs.strip():
        return ""
    return "\n  last log lines of the target:\n" + "\n".join(
        "    " + line for line in logs.rstrip().splitlines()[-20:])
