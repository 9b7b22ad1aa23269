"""GPU-exclusive switching. `ensure_active` is the one entry point that changes a group.

The active member is read from Docker (container labels), never from a file, and the read,
the decision and the action all happen under the stack lock. Everything here works from a
`SwitchIndex` (plain data) rather than the registry, so a switch starts without importing
pydantic or a YAML parser.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NoReturn

from ..hints import did_you_mean
from ..docker.adapter import Docker, DockerError
from .envfile import read_env
from .errors import PlanError
from .gateway import Gateway
from .health import GateFailure, wait_healthy
from .lock import stack_lock
from .probes import http_ok
from ..docker.models import ContainerState
from .switch_index import SwitchIndex


@dataclass(frozen=True)
class SwitchOptions:
    member: str  # target member: provider name or unique part of it
    timeout: float = 300  # seconds the target may take to be healthy
    routable_timeout: float = 30  # seconds for the gateway to route to it once healthy
    dry_run: bool = False  # print the plan, change nothing
    lock_wait: float | None = None  # seconds to wait for a concurrent up/switch; None: fail


@dataclass(frozen=True)
class SwitchPlan:
    group: str
    target: str
    stop: list[str]  # running members to stop, in order
    noop: bool

    def describe(self) -> list[str]:
        if self.noop:
            return [f"{self.target} is already the active member of GPU group {self.group!r}: "
                    "nothing to do"]
        steps = [f"stop {m} (graceful)" for m in self.stop]
        steps += [f"start {self.target}", f"wait until {self.target} is healthy",
                  f"confirm through the gateway that {self.target}'s model answers"]
        return steps


@dataclass
class SwitchResult:
    plan: SwitchPlan
    timings: dict[str, float] = field(default_factory=dict)  # s: stop, start, ready, routable, total


class Background(threading.Thread):
    """`fn()` in a thread; `result()` waits and returns its value or raises its error.
    (concurrent.futures would do, but its import alone costs ~15 ms of every switch.)"""

    def __init__(self, fn: Callable[[], str]):
        super().__init__(daemon=True)
        self._fn, self._value, self._error = fn, "", None
        self.start()

    def run(self) -> None:
        try:
            self._value = self._fn()
        except BaseException as exc:  # handed to the caller of result()
            self._error = exc

    def result(self) -> str:
        self.join()
        if self._error is not None:
            raise self._error
        return self._value


class SwitchFailed(Exception):
    """The target did not come up; the previous member was restored (or not: see message)."""


def resolve_member(index: SwitchIndex, name: str) -> tuple[str, str]:
    """(group, member) for a full or short member name such as 'dolphin'."""
    members = {m.name: m.group for m in index.members.values()}
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


def plan_switch(index: SwitchIndex, target: str, observed: list[ContainerState]) -> SwitchPlan:
    group, target = resolve_member(index, target)
    members = index.groups()[group]
    running = [s.service for s in observed if s.running and s.service in members]
    others = [m for m in running if m != target]
    return SwitchPlan(group=group, target=target, stop=others,
                      noop=target in running and not others)


def host_ready(index: SwitchIndex) -> Callable[[str], bool]:
    """A member's own readiness check, sent to its published port."""
    def ready(member: str) -> bool:
        m = index.members[member]
        return m.ready_url is not None and http_ok(m.ready_url, m.ready_expect)
    return ready


def confirm_routable(gw: Gateway, model: str, deployment_id: str, timeout: float,
                     clock: Callable[[], float] = time.monotonic,
                     sleep: Callable[[float], None] = time.sleep) -> bool:
    """True once a request for `model` is answered by `deployment_id` (not by a fallback)."""
    deadline = clock() + timeout
    while gw.answered_by(model, timeout=max(1.0, deadline - clock())) != deployment_id:
        if clock() >= deadline:
            return False
        sleep(0.1)
    return True


def ensure_active(index: SwitchIndex, docker: Docker, opts: SwitchOptions,
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
    members = index.members
    with stack_lock(index.project, "switch", opts.lock_wait):
        observed = docker.containers()
        plan = plan_switch(index, opts.member, observed)
        result = SwitchResult(plan=plan)
        if plan.noop or opts.dry_run:
            return result
        if routable is None:
            gw = Gateway(f"http://127.0.0.1:{index.gateway_port}",
                         read_env(index.env_file).get(index.master_key_env))

            def routable(model: str, dep: str) -> bool:
                return confirm_routable(gw, model, dep, opts.routable_timeout)
        probe = host_ready(index) if ready is None else ready
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

        def start_and_gate(member: str, created: Background | None = None) -> dict[str, float]:
            t = time.monotonic()
            name = created.result() if created else create(member)
            say(f"starting {member}")
            try:
                docker.start(name)
            except DockerError as exc:
                raise GateFailure(member, f"could not be started: {exc}",
                                  logs=docker.logs(name)) from None
            started = time.monotonic()
            # Docker's view every 0.5 s catches a crash; the host probe every 20 ms sees
            # readiness as soon as the server has it.
            wait_healthy([member], docker.containers, opts.timeout, logs=docker.logs,
                         probe=probe, poll=0.5, probe_poll=0.02)
            healthy = time.monotonic()
            model = members[member].model
            if model and not routable(model, f"{model}@{member}"):
                raise GateFailure(member, f"is healthy but the gateway did not route {model!r} "
                                  f"to it within {opts.routable_timeout:g}s")
            return {"start": started - t, "ready": healthy - started,
                    "routable": time.monotonic() - healthy}

        # Creating (or recreating a stale) target container needs no GPU: it overlaps the stop.
        created = Background(lambda: create(plan.target))
        try:
            for member in plan.stop:
                stop(member, observed)
            result.timings["stop"] = time.monotonic() - t0
            try:
                result.timings.update(start_and_gate(plan.target, created))
            except GateFailure as failure:
                rollback(plan, failure, docker, say, stop, start_and_gate)
        finally:
            created.join()  # never leave a compose run behind the lock
        result.timings["total"] = time.monotonic() - t0
        return result


def rollback(plan: SwitchPlan, failure: GateFailure, docker: Docker,
             say: Callable[[str], None], stop: Callable[[str, list[ContainerState]], None],
             start_and_gate: Callable[[str], dict[str, float]]) -> NoReturn:
    """Stop the failed target, bring the previous member back, and say what happened."""
    logs = failure.logs or next((docker.logs(s.name) for s in docker.containers()
                                 if s.service == plan.target), "")
    say(f"{plan.target} failed: {failure.reason}; rolling back")
    stop(plan.target, docker.containers())
    previous = plan.stop[0] if plan.stop else None
    if previous is None:
        raise SwitchFailed(f"{plan.target} {failure.reason}; no member was running before, so "
                           f"GPU group {plan.group!r} is empty" + _tail(logs))
    try:
        start_and_gate(previous)
    except GateFailure as again:
        raise SwitchFailed(f"{plan.target} {failure.reason}; rollback to {previous} ALSO "
                           f"failed: {again.reason}. GPU group {plan.group!r} has no healthy "
                           "member" + _tail(logs)) from None
    raise SwitchFailed(f"{plan.target} {failure.reason}; rolled back: {previous} is healthy "
                       "and routable again" + _tail(logs))


def _tail(logs: str) -> str:
    if not logs.strip():
        return ""
    return "\n  last log lines of the target:\n" + "\n".join(
        "    " + line for line in logs.rstrip().splitlines()[-20:])
