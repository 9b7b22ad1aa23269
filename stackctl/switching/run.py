"""GPU-exclusive switching. `ensure_active` is the one entry point that changes a group.

The active member is read from Docker (container labels), never from a file, and the read,
the decision and the action all happen under the stack lock. See design.md beside this file.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, NoReturn, Protocol

from pydantic import BaseModel, Field

from stackctl.docker.adapter import Docker, DockerError
from stackctl.docker.models import ContainerState
from stackctl.errors import PlanError
from stackctl.health.gate import GateFailure, wait_healthy
from stackctl.hints import did_you_mean
from stackctl.monitoring.client import SwitchReport, pushgateway_url
from stackctl.registry.load import Registry
from stackctl.store.envfile import compose_value
from stackctl.store.lock import stack_lock

if TYPE_CHECKING:
    from stackctl.gateway.client import Gateway


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
    url: str | None = None  # http://127.0.0.1:<host port>: its own API (sleep mode, warm-up)
    backend: str | None = None  # the model name the engine itself serves


def members_of(reg: Registry) -> dict[str, Member]:
    """Every member of every exclusive GPU group, registry order (pure)."""
    from stackctl.registry.catalog import exclusive_groups, models_of_provider, profile_of
    from stackctl.render.litellm import served_backend
    from stackctl.render.probes import host_check

    providers = reg.providers.providers
    members = {}
    for group, names in exclusive_groups(reg).items():
        for name in names:
            prov = providers[name]
            assert prov.container is not None  # a group member has a container
            backend = served_backend(reg, name)
            url, expect = host_check(prov, backend) if prov.host_port else (None, None)
            members[name] = Member(name, group, profile_of(name, prov),
                                   prov.container.stop_grace_period, url, expect,
                                   next(iter(models_of_provider(reg, name)), None),
                                   f"http://127.0.0.1:{prov.host_port}" if prov.host_port
                                   else None, backend)
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
    target: str = Field(description="the member that will be the one running (awake)")
    stop: list[str] = Field(description="running members to stop, in order")
    noop: bool = Field(description="the target already is the only running (awake) member: "
                       "nothing to stop or start, but it must still be ready and routable")
    mode: Literal["restart", "sleep"] = Field("restart", description="how the group switches")
    level: int = Field(1, description="sleep mode: the level members sleep at")
    sleep: list[str] = Field(default_factory=list, description="sleep mode: awake members to "
                             "drain and put to sleep")
    wake: bool = Field(False, description="sleep mode: the target sleeps and is woken (else "
                       "its container is started)")

    def describe(self) -> list[str]:
        check = [f"wait until {self.target} is healthy",
                 f"confirm through the gateway that {self.target}'s model answers"]
        if self.noop:
            # running is not ready: an interrupted switch leaves a member starting, or it died
            return [f"{self.target} is already the active member of GPU group {self.group!r}: "
                    "nothing to stop or start", *check]
        steps = [f"stop {m} (graceful)" for m in self.stop]
        if self.mode == "restart":
            return [*steps, f"start {self.target}", *check]
        steps += [f"let {m}'s requests finish, then put it to sleep (level {self.level})"
                  for m in self.sleep]
        steps.append(f"wake {self.target}" if self.wake else f"start {self.target}")
        return [*steps, f"warm {self.target} up with a one-token request", *check]


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


def scaled_switch(target: str, previous: list[str], group: str,
                  move: Callable[[str, list[str]], None], scale_down: Callable[[str], None],
                  errors: type[Exception], say: Callable[[str], None]) -> None:
    """A switch by scaling (a Swarm, Kubernetes): `move(to, away)` scales `away` down and
    `to` up, gated; on `errors` the previous member is moved back. Raises SwitchFailed."""
    try:
        move(target, previous)
    except errors as failure:
        say(f"{target} failed: {failure}; rolling back")
        if not previous:
            scale_down(target)
            raise SwitchFailed(f"{target} {failure}; no member ran before, so GPU group "
                               f"{group!r} has no active member", restored=True) from None
        try:
            move(previous[0], [target])
        except errors as again:
            raise SwitchFailed(f"{target} {failure}; rollback to {previous[0]} ALSO failed: "
                               f"{again}", restored=False) from None
        raise SwitchFailed(f"{target} {failure}; rolled back: {previous[0]} runs again and "
                           "is ready", restored=True) from None


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


def plan_switch(members_: dict[str, Member], target: str, observed: list[ContainerState],
                asleep: dict[str, bool | None] | None = None, level: int = 1) -> SwitchPlan:
    """(members, target, observed containers[, sleep states]) → what to do; pure.

    `asleep` (sleep-mode groups): running member → is it sleeping, None when its engine
    cannot say. An awake member is put to sleep, one that cannot say is stopped (it may be
    loading, or hold the GPU), a sleeping one is left alone or woken if it is the target."""
    group, target = resolve_member(members_, target)
    members = [m.name for m in members_.values() if m.group == group]
    running = [s.service for s in observed if s.running and s.service in members]
    others = [m for m in running if m != target]
    if asleep is None:
        return SwitchPlan(group=group, target=target, stop=others,
                          noop=target in running and not others)
    awake = [m for m in others if asleep.get(m) is False]
    unknown = [m for m in others if asleep.get(m) is None]
    wake = target in running and asleep.get(target) is True
    return SwitchPlan(group=group, target=target, stop=unknown, sleep=awake, wake=wake,
                      mode="sleep", level=level,
                      noop=target in running and asleep.get(target) is False
                      and not awake and not unknown)


def sleep_states(members: dict[str, Member], observed: list[ContainerState]
                 ) -> dict[str, bool | None]:
    """Running member → is its engine sleeping (None: it cannot say), asked side by side."""
    from stackctl.switching.vllm import EngineError, VllmEngine

    def ask(name: str) -> bool | None:
        url = members[name].url
        try:
            return VllmEngine(name, url).is_sleeping() if url else None
        except EngineError:
            return None

    names = [s.service for s in observed if s.running and s.service in members]
    if not names:
        return {}
    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        return dict(zip(names, pool.map(ask, names), strict=True))


def host_ready(members: dict[str, Member]) -> Callable[[str], bool]:
    """A member's own readiness check, sent to its published port."""
    def ready(member: str) -> bool:
        from stackctl.health.probes import http_ok  # requests: first needed once the active member stops

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


ROUTING_SEEN = 0.06  # seconds until every gateway worker follows a new routing state


class Engine(Protocol):
    """A member's own sleep-mode API (vllm.VllmEngine); tests inject fakes."""

    def sleep(self, level: int) -> None: ...
    def wake(self, level: int) -> None: ...
    def drain(self, seconds: float) -> int: ...
    def in_flight(self) -> int: ...
    def warm_up(self, model: str) -> None: ...


def ensure_active(reg: Registry, docker: Docker, opts: SwitchOptions,
                  say: Callable[[str], None] = lambda s: None,
                  routable: Callable[[str, str], bool] | None = None,
                  ready: Callable[[str], bool] | None = None,
                  engine: Callable[[Member], Engine] | None = None,
                  route: Callable[[dict], None] | None = None,
                  asleep: Callable[[list[ContainerState]], dict[str, bool | None]] | None = None,
                  ) -> SwitchResult:
    """Make `opts.member` the one running (awake) member of its group; roll back if it fails.

    `routable(model, deployment_id)` confirms the gateway routes to the new member (default:
    a real request through the gateway); `ready(member)` sees readiness before Docker's next
    healthcheck does (default: the healthcheck's own request, sent to the host port);
    `engine(member)` is a member's sleep-mode API, `asleep(observed)` the sleep state of the
    running members (default: their own /is_sleeping), `route(state)` hands the gateway's
    routing callback its state (default: routing.write_routing). Tests inject their own.

    Switched-out members are stopped (restart mode) or put to sleep (sleep mode), not
    removed: starting a stopped container again is the fastest way back after a sleep, and
    its logs stay readable.
    """
    from stackctl.registry.catalog import group_settings
    from stackctl.switching.routing import read_routing, restore_routing, routing_state, write_routing

    members = members_of(reg)
    with stack_lock(reg.stack.project, "switch", opts.lock_wait):
        group, target = resolve_member(members, opts.member)
        settings = group_settings(reg, group)
        read_states = asleep or (lambda obs: sleep_states(members, obs))
        group_members = [m for m, info in members.items() if info.group == group]
        write = route or (lambda state: write_routing(reg, state))
        # the other groups' inactive members stay diverted while this one changes
        elsewhere = inactive_members(reg, members, docker.containers(), read_states,
                                     skip=group) \
            if not opts.dry_run and any(i.group != group for i in members.values()) else set()

        def routes(active: str | None, held: str | None = None) -> None:
            """Divert every member of the group but `active`; hold `held`'s requests."""
            inactive = elsewhere | {m for m in group_members if m not in (active, held)}
            try:
                write(routing_state(reg, inactive,
                                    {held: settings.hold} if held else None))
            except OSError as exc:
                say(f"could not update the gateway's routing state: {exc}")

        # First of all: from here on the gateway holds the target's requests and sends the
        # others' to their fallbacks, while the group is looked at (the workers need a
        # moment to follow; this is it).
        routed_at = time.monotonic()
        before = None if opts.dry_run or route else read_routing(reg)
        if not opts.dry_run:
            routes(None, held=target)
        try:
            observed = docker.containers(group=group)
            states = read_states(observed) if settings.switch == "sleep" else None
            plan = plan_switch(members, target, observed, states, settings.sleep_level)
        except BaseException:  # nothing changed but the routing: as it was
            if before is not None:
                restore_routing(reg, before)
            raise
        result = SwitchResult(plan=plan)
        if opts.dry_run:
            return result
        if routable is None:
            key = compose_value(reg.env_file, reg.stack.gateway.master_key_env)

            def routable(model: str, dep: str) -> bool:
                from stackctl.gateway.client import Gateway  # as http_ok: after the stop

                gw = Gateway(f"http://127.0.0.1:{reg.stack.gateway.host_port}", key)
                return confirm_routable(gw, model, dep, opts.routable_timeout,
                                        streak=3 * reg.stack.gateway.workers)
        if engine is None:
            from stackctl.switching.vllm import VllmEngine

            def engine(m: Member) -> Engine:
                assert m.url is not None  # validate: a member's base_url has its port
                return VllmEngine(m.name, m.url)

        probe = host_ready(members) if ready is None else ready
        # a target found running is checked, not switched: nothing to record
        report = SwitchReport(None if plan.noop else pushgateway_url(reg), plan.group,
                              group_members)
        report.started()
        t0 = time.monotonic()
        run = _Run(members, docker, observed, opts, say, probe, routable, engine,
                   settings.sleep_level, settings.drain, routed_at + ROUTING_SEEN)
        previous = (plan.sleep or plan.stop or [None])[0]
        try:
            result.timings.update(run.switch(plan))
            routes(plan.target)  # held requests go to the target now
            run.confirm(plan.target, result.timings)
        except GateFailure as failure:
            try:
                run.rollback(plan, failure, previous, routes)
            except SwitchFailed as exc:
                result.timings["total"] = time.monotonic() - t0
                report.finished(previous if exc.restored else None, result.timings,
                                success=False, rolled_back=bool(previous))
                raise
        except BaseException:
            # the engine went away, or Ctrl-C, half-way: which member can answer is not
            # known; the fallbacks answer for the whole group until `switch` or `up` repairs
            routes(None)
            raise
        result.timings["total"] = time.monotonic() - t0
        report.finished(plan.target, result.timings, success=True, rolled_back=False)
        if report.problem:
            say(f"switch record not pushed: {report.problem}")
        return result


def inactive_members(reg: Registry, members: dict[str, Member], observed: list[ContainerState],
                     read_states: Callable[[list[ContainerState]], dict[str, bool | None]],
                     skip: str | None = None) -> set[str]:
    """Members that cannot answer now: not running, or asleep (sleep-mode groups)."""
    from stackctl.registry.catalog import group_settings

    running = {s.service for s in observed if s.running}
    out = {m for m, info in members.items() if info.group != skip and m not in running}
    sleepers = [s for s in observed if s.running and s.service in members
                and members[s.service].group != skip
                and group_settings(reg, members[s.service].group).switch == "sleep"]
    if sleepers:
        out |= {m for m, asleep in read_states(sleepers).items() if asleep is not False}
    return out


@dataclass
class _Run:
    """The effects of one switch, in the order a plan needs them."""

    members: dict[str, Member]
    docker: Docker
    observed: list[ContainerState]
    opts: SwitchOptions
    say: Callable[[str], None]
    probe: Callable[[str], bool]
    routable: Callable[[str, str], bool]
    engine: Callable[[Member], Engine]
    level: int
    drain: float | None
    routed: float  # monotonic time from which no gateway worker sends new requests out

    def switch(self, plan: SwitchPlan) -> dict[str, float]:
        t0 = time.monotonic()
        timings: dict[str, float] = {}
        # Creating (or recreating a stale) target container needs no GPU: it overlaps the
        # stop. Leaving the pool waits for it: no compose run is left behind the lock.
        with ThreadPoolExecutor(max_workers=1) as pool:
            created = None if plan.noop or plan.wake or plan.target in self.running() \
                else pool.submit(self.create, plan.target)
            for member in plan.stop:
                self.stop(member)
            for member in plan.sleep:
                timings.update(self.put_to_sleep(member))
            timings["stop"] = time.monotonic() - t0
            if plan.noop:
                timings.update(start=0.0, **self.gate(plan.target))
            elif plan.wake:
                timings.update(self.wake(plan.target))
            else:
                timings.update(self.start_and_gate(plan.target, created, plan.mode == "sleep"))
        return timings

    def running(self) -> set[str]:
        return {s.service for s in self.observed if s.running}

    def is_running(self, member: str) -> bool:
        return any(s.running for s in self.docker.containers(service=member))

    def stop(self, member: str, any_state: bool = False) -> None:
        """Graceful: in-flight requests finish, then the process exits and frees the GPU.
        `any_state`: also one that died, so that its restart policy does not start it again
        beside the member that now holds the GPU."""
        for st in self.docker.containers(service=member):
            if st.service == member and (st.running or any_state and st.state != "exited"):
                self.say(f"stopping {member}")
                self.docker.stop(st.name, self.members[member].stop_grace)

    def put_to_sleep(self, member: str) -> dict[str, float]:
        """Its requests finish (bounded), then it sleeps; one that will not sleep is stopped,
        which frees the GPU too."""
        from stackctl.switching.vllm import EngineError

        eng = self.engine(self.members[member])
        t = time.monotonic()
        grace = self.members[member].stop_grace if self.drain is None else self.drain
        # the gateway's workers look at the routing state at most every 50 ms: after that,
        # no new request is sent to this member
        time.sleep(max(0.0, self.routed - time.monotonic()))
        try:
            for _ in range(3):
                self.say(f"letting {member}'s requests finish (at most {grace:g}s)")
                if left := eng.drain(grace):
                    self.say(f"{member} still has {left} request(s) after {grace:g}s")
                drained = time.monotonic()
                self.say(f"putting {member} to sleep (level {self.level})")
                eng.sleep(self.level)
                # A request already on its way when the state changed can reach the engine
                # after the drain: a sleeping engine queues it until it wakes, which may be
                # never. Woken again, it serves it, and sleeps once more.
                if not (stuck := eng.in_flight()):
                    break
                self.say(f"{stuck} request(s) reached {member} as it fell asleep: waking it "
                         "to answer them")
                eng.wake(self.level)
        except EngineError as exc:
            self.say(f"{exc}; stopping {member} instead")
            self.stop(member)
            return {"drain": time.monotonic() - t}
        return {"drain": drained - t, "sleep": time.monotonic() - drained}

    def create(self, member: str) -> str:
        """The member's container, created (or recreated if stale) but not started."""
        try:
            name = self.docker.create_service([self.members[member].profile], member)
        except DockerError as exc:
            raise GateFailure(member, f"could not be created: {exc}") from None
        if name is None:
            raise GateFailure(member, "has no container after `docker compose create`")
        return name

    def start_and_gate(self, member: str, created: Future[str] | None = None,
                       warm: bool = False) -> dict[str, float]:
        t = time.monotonic()
        kept = [s.name for s in self.observed if s.service == member]
        # the previous member on rollback: its kept container, exactly as it ran, even
        # when Compose could not create anything now (a broken .env or compose file)
        name = created.result() if created else kept[0] if kept else self.create(member)
        self.say(f"starting {member}")
        try:
            self.docker.start(name)
        except DockerError as exc:
            raise GateFailure(member, f"could not be started: {exc}",
                              logs=self.docker.logs(name)) from None
        timings = {"start": time.monotonic() - t, **self.gate(member)}
        if warm:
            timings["warm"] = self.warm_up(member)
        return timings

    def wake(self, member: str) -> dict[str, float]:
        from stackctl.switching.vllm import EngineError

        t = time.monotonic()
        self.say(f"waking {member}")
        try:
            self.engine(self.members[member]).wake(self.level)
        except EngineError as exc:
            raise GateFailure(member, f"did not wake: {exc}") from None
        woke = time.monotonic()
        warm = self.warm_up(member)
        # a completion answered is readiness enough: its process never stopped, and Docker's
        # healthcheck (/health) said yes all along, asleep or not
        return {"wake": woke - t, "warm": warm, "start": time.monotonic() - t, "ready": 0.0}

    def warm_up(self, member: str) -> float:
        from stackctl.switching.vllm import EngineError

        m, t = self.members[member], time.monotonic()
        if m.backend is None:
            return 0.0
        try:
            self.engine(m).warm_up(m.backend)
        except EngineError as exc:
            raise GateFailure(member, f"did not answer its warm-up request: {exc}") from None
        return time.monotonic() - t

    def gate(self, member: str) -> dict[str, float]:
        started = time.monotonic()
        # Docker's view every 0.5 s catches a crash; the host probe every 20 ms sees
        # readiness as soon as the server has it.
        wait_healthy([member], lambda: self.docker.containers(service=member),
                     self.opts.timeout, logs=self.docker.logs,
                     probe=self.probe, poll=0.5, probe_poll=0.02)
        return {"ready": time.monotonic() - started}

    def confirm(self, member: str, timings: dict[str, float]) -> None:
        t = time.monotonic()
        model = self.members[member].model
        if model and not self.routable(model, f"{model}@{member}"):
            raise GateFailure(member, f"is healthy but the gateway did not route {model!r} "
                              f"to it within {self.opts.routable_timeout:g}s")
        timings["routable"] = time.monotonic() - t

    def rollback(self, plan: SwitchPlan, failure: GateFailure, previous: str | None,
                 routes: Callable[..., None]) -> NoReturn:
        """Retire the failed target, bring the previous member back, say what happened."""
        logs = failure.logs or next((self.docker.logs(s.name)
                                     for s in self.docker.containers(service=plan.target)
                                     if s.service == plan.target), "")
        self.say(f"{plan.target} failed: {failure.reason}; rolling back")
        routes(None, held=previous)
        # Stopped, also in sleep mode: an engine that failed to wake or to answer is in no
        # known state (vLLM's may be dying); stopped, it frees the GPU, and its restart
        # policy cannot start it again beside the member that gets the GPU back.
        self.stop(plan.target, any_state=True)
        if plan.noop:
            routes(None)
            raise SwitchFailed(f"{plan.target} (already running) {failure.reason}; it was the "
                               "only member running, and is stopped now: GPU group "
                               f"{plan.group!r} has no active member" + _tail(logs),
                               restored=True)
        if previous is None:
            routes(None)
            raise SwitchFailed(f"{plan.target} {failure.reason}; no member was running before, "
                               f"so GPU group {plan.group!r} has no active member" + _tail(logs),
                               restored=True)
        try:
            # one that would not sleep was stopped instead: it starts again
            if previous in plan.sleep and self.is_running(previous):
                self.wake(previous)
            else:
                self.start_and_gate(previous, warm=plan.mode == "sleep")
            routes(previous)
            self.confirm(previous, {})
        except GateFailure as again:
            raise SwitchFailed(f"{plan.target} {failure.reason}; rollback to {previous} ALSO "
                               f"failed: {again.reason}. GPU group {plan.group!r} has no "
                               "healthy member" + _tail(logs), restored=False) from None
        raise SwitchFailed(f"{plan.target} {failure.reason}; rolled back: {previous} is "
                           "healthy and routable again" + _tail(logs))


def _tail(logs: str) -> str:
    if not logs.strip():
        return ""
    return "\n  last log lines of the target:\n" + "\n".join(
        "    " + line for line in logs.rstrip().splitlines()[-20:])
