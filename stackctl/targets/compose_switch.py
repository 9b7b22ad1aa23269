"""Switching on the local Docker engine (`deploy.target: compose`): the Effects of a switch
through the one Docker adapter, the members' own vLLM API (sleep mode), their published
ports (readiness) and the gateway (routing state, routability).

The active member is read from Docker (container labels), never from a file, and the read,
the decision and the action all happen under the stack lock. See switching/design.md.

requests (through health.probes, gateway.client and switching.vllm) is imported where it is
first needed: a restart-mode switch pays for it only once the active member has stopped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

from stackctl.docker.adapter import Docker, DockerError
from stackctl.docker.models import ContainerState
from stackctl.health.gate import GateFailure, wait_healthy
from stackctl.monitoring import switch_counts
from stackctl.monitoring.client import SwitchReport, pushgateway_url
from stackctl.registry.catalog import group_settings
from stackctl.registry.load import Registry
from stackctl.store.envfile import compose_value
from stackctl.store.lock import stack_lock, state_dir
from stackctl.switching import journal, routing
from stackctl.switching.effects import COMPOSE_WORDS, Timings, confirm_routable
from stackctl.switching.loop import SwitchOptions, SwitchResult, ensure_active
from stackctl.switching.members import Member, group_members, members_of
from stackctl.switching.policy import GroupState, PutAwayPlan, SwitchPlan, observed_state
from stackctl.targets.compose_groups import SleepStates, inactive_members, sleep_states

ROUTING_SEEN = 0.06  # seconds until every gateway worker follows a new routing state


class Engine(Protocol):
    """A member's own sleep-mode API (vllm.VllmEngine); tests inject fakes."""

    def sleep(self, level: int) -> None: ...
    def wake(self, level: int) -> None: ...
    def drain(self, seconds: float) -> int: ...
    def in_flight(self) -> int: ...
    def warm_up(self, model: str) -> None: ...


def host_ready(members: dict[str, Member]) -> Callable[[str], bool]:
    """A member's own readiness check, sent to its published port."""
    def ready(member: str) -> bool:
        from stackctl.health.probes import http_ok  # requests: first needed once the active member stops

        m = members[member]
        return m.ready_url is not None and http_ok(m.ready_url, m.ready_expect)
    return ready


class ComposeEffects:
    """The Effects of a switch on the local engine.

    `routable(model, deployment_id)` confirms the gateway routes to a member (default: real
    requests through the gateway); `ready(member)` sees readiness before Docker's next
    healthcheck does (default: the healthcheck's own request, sent to the host port);
    `engine(member)` is a member's sleep-mode API, `asleep(observed)` the sleep state of the
    running members (default: their own /is_sleeping), `route(state)` hands the gateway's
    routing callback its state (default: routing.write_routing). Tests inject their own.

    Switched-out members are stopped (restart mode) or put to sleep (sleep mode), not
    removed: starting a stopped container again is the fastest way back, and its logs stay
    readable.
    """

    words = COMPOSE_WORDS

    def __init__(self, reg: Registry, docker: Docker, opts: SwitchOptions,
                 say: Callable[[str], None] = lambda s: None,
                 routable: Callable[[str, str], bool] | None = None,
                 ready: Callable[[str], bool] | None = None,
                 engine: Callable[[Member], Engine] | None = None,
                 route: Callable[[dict], None] | None = None,
                 asleep: SleepStates | None = None):
        self.reg, self.docker, self.opts, self._say = reg, docker, opts, say
        self.members = members_of(reg)
        self._routable, self._engine, self._route = routable, engine, route
        self.probe = host_ready(self.members) if ready is None else ready
        self.read_states = asleep or (lambda obs: sleep_states(self.members, obs))
        self.group: str | None = None
        self.level: int = 1  # the group's sleep level and drain seconds (observe sets them)
        self.drain: float | None = None
        self.observed: list[ContainerState] = []
        self.stopped: set[str] = set()  # members this switch stopped (their containers kept)
        self.elsewhere: set[str] = set()  # other groups' members that cannot answer
        self.elsewhere_read = False
        self.before: str | None = None  # the routing state before `hold`, to put back
        self.routed = 0.0  # monotonic time from which no gateway worker sends new requests out
        self.report: SwitchReport | None = None

    def say(self, text: str) -> None:
        self._say(text)

    @contextmanager
    def lock(self, wait: float | None) -> Iterator[None]:
        with stack_lock(self.reg.stack.project, "switch", wait):
            yield

    # -- routing ------------------------------------------------------------------------------
    def hold(self, group: str, target: str) -> None:
        """First of all: from here on the gateway holds the target's requests and sends the
        others' to their fallbacks, while the group is looked at (the workers need a moment
        to follow; this is it)."""
        self.group = group
        # the other groups' inactive members stay diverted while this one changes
        self._read_elsewhere(group)
        routed_at = time.monotonic()
        self.routed = routed_at + ROUTING_SEEN
        self.before = None if self._route else routing.read_routing(self.reg)
        self.route(None, held=target)

    def _read_elsewhere(self, group: str) -> None:
        # the other groups' inactive members stay diverted while this one changes
        if self.elsewhere_read:
            return
        self.elsewhere_read = True
        if any(i.group != group for i in self.members.values()):
            self.elsewhere = inactive_members(self.reg, self.members, self.docker.containers(),
                                              self.read_states, skip=group)

    def unhold(self) -> None:
        if self.before is not None:
            routing.restore_routing(self.reg, self.before)

    def route(self, active: str | None, held: str | None = None,
              keep: frozenset[str] = frozenset()) -> None:
        """Divert every member of the group but `active` and `keep` (co-residents left
        serving); hold `held`'s requests."""
        assert self.group is not None
        inactive = self.elsewhere | {m for m in group_members(self.members, self.group)
                                     if m not in (active, held) and m not in keep}
        self.routed = max(self.routed, time.monotonic() + ROUTING_SEEN)
        hold = {held: group_settings(self.reg, self.group).hold} if held else None
        try:
            state = routing.routing_state(self.reg, inactive, hold)
            if self._route:
                self._route(state)
            else:
                routing.write_routing(self.reg, state)
        except OSError as exc:
            self.say(f"could not update the gateway's routing state: {exc}")

    # -- reading ------------------------------------------------------------------------------
    def observe(self, group: str) -> GroupState:
        self.group = group
        self._read_elsewhere(group)  # an unload routes without `hold`
        settings = group_settings(self.reg, group)
        self.level, self.drain = settings.sleep_level, settings.drain
        self.observed = self.docker.containers(group=group)
        states = self.read_states(self.observed) if settings.switch == "sleep" else None
        return observed_state(group, group_members(self.members, group), self.observed,
                              states, settings.sleep_level)

    def is_running(self, member: str) -> bool:
        return any(s.running for s in self.docker.containers(service=member))

    def logs(self, member: str) -> str:
        return next((self.docker.logs(s.name) for s in self.docker.containers(service=member)
                     if s.service == member), "")

    # -- acting -------------------------------------------------------------------------------
    def create(self, member: str) -> str:
        """The member's container, created (or recreated if stale) but not started."""
        try:
            name = self.docker.create_service([self.members[member].profile], member)
        except DockerError as exc:
            raise GateFailure(member, f"could not be created: {exc}") from None
        if name is None:
            raise GateFailure(member, "has no container after `docker compose create`")
        return name

    def _stop(self, member: str, any_state: bool) -> None:
        for st in self.docker.containers(service=member):
            if st.service == member and (st.running or any_state and st.state != "exited"):
                self.say(f"stopping {member}")
                self.docker.stop(st.name, self.members[member].stop_grace)
                self.stopped.add(member)

    def stop(self, member: str) -> Timings:
        """Graceful: in-flight requests finish, then the process exits and frees the GPU."""
        self._stop(member, any_state=False)
        return {}

    def retire(self, member: str) -> None:
        """Also one that died, so that its restart policy does not start it again beside
        the member that now holds the GPU. Stopped, also in sleep mode: an engine that failed
        to wake or to answer is in no known state (vLLM's may be dying)."""
        self._stop(member, any_state=True)

    def sleep(self, member: str) -> Timings:
        """Its requests finish (bounded), then it sleeps; one that will not sleep is stopped,
        which frees the GPU too."""
        from stackctl.switching.vllm import EngineError

        eng = self.engine(member)
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

    def start(self, member: str, created: object = None) -> Timings:
        t = time.monotonic()
        kept = [s for s in self.observed if s.service == member]
        if created is None and kept and kept[0].running and member not in self.stopped:
            return {"start": 0.0}  # it runs as observed: the gate tells whether it is ready
        # the previous member on rollback: its kept container, exactly as it ran, even
        # when Compose could not create anything now (a broken .env or compose file)
        name = str(created) if created else kept[0].name if kept else self.create(member)
        self.say(f"starting {member}")
        try:
            self.docker.start(name)
        except DockerError as exc:
            raise GateFailure(member, f"could not be started: {exc}",
                              logs=self.docker.logs(name)) from None
        self.stopped.discard(member)
        return {"start": time.monotonic() - t}

    def wake(self, member: str) -> Timings:
        from stackctl.switching.vllm import EngineError

        t = time.monotonic()
        self.say(f"waking {member}")
        try:
            self.engine(member).wake(self.level)
        except EngineError as exc:
            raise GateFailure(member, f"did not wake: {exc}") from None
        woke = time.monotonic()
        warm = self.warm_up(member)["warm"]
        # a completion answered is readiness enough: its process never stopped, and Docker's
        # healthcheck (/health) said yes all along, asleep or not
        return {"wake": woke - t, "warm": warm, "start": time.monotonic() - t, "ready": 0.0}

    def warm_up(self, member: str) -> Timings:
        from stackctl.switching.vllm import EngineError

        m, t = self.members[member], time.monotonic()
        if m.backend is None:
            return {"warm": 0.0}
        try:
            self.engine(member).warm_up(m.backend)
        except EngineError as exc:
            raise GateFailure(member, f"did not answer its warm-up request: {exc}") from None
        return {"warm": time.monotonic() - t}

    def gate(self, member: str) -> Timings:
        started = time.monotonic()
        # Docker's view every 0.5 s catches a crash; the host probe every 20 ms sees
        # readiness as soon as the server has it.
        wait_healthy([member], lambda: self.docker.containers(service=member),
                     self.opts.timeout, logs=self.docker.logs,
                     probe=self.probe, poll=0.5, probe_poll=0.02)
        return {"ready": time.monotonic() - started}

    def confirm(self, member: str) -> None:
        model = self.members[member].model
        if model and not self.routable(model, f"{model}@{member}"):
            raise GateFailure(member, f"is healthy but the gateway did not route {model!r} "
                              f"to it within {self.opts.routable_timeout:g}s")

    def routable(self, model: str, deployment: str) -> bool:
        if self._routable is not None:
            return self._routable(model, deployment)
        from stackctl.gateway.client import Gateway  # as http_ok: after the stop

        reg = self.reg
        key = compose_value(reg.env_file, reg.stack.gateway.master_key_env)
        gw = Gateway(f"http://127.0.0.1:{reg.stack.gateway.host_port}", key)
        return confirm_routable(gw, model, deployment, self.opts.routable_timeout,
                                streak=3 * reg.stack.gateway.workers)

    def engine(self, member: str) -> Engine:
        m = self.members[member]
        if self._engine is not None:
            return self._engine(m)
        from stackctl.switching.vllm import VllmEngine

        assert m.url is not None  # validate: a member's base_url has its port
        return VllmEngine(m.name, m.url)

    # -- the switch's record ------------------------------------------------------------------
    def report_started(self, plan: SwitchPlan | PutAwayPlan) -> None:
        # a target found running is checked, not switched: nothing to record
        self.report = SwitchReport(None if plan.noop else pushgateway_url(self.reg),
                                   plan.group, group_members(self.members, plan.group))
        self.report.started()

    def report_finished(self, plan: SwitchPlan | PutAwayPlan, active: str | None,
                        timings: Timings, success: bool, rolled_back: bool) -> None:
        assert self.report is not None
        counted = None
        if not plan.noop:  # a check of the running member is no switch
            # under the lock, like the journal: one writer at a time
            counted, problem = switch_counts.count(
                switch_counts.counts_path(state_dir(), self.reg.stack.project), plan.group,
                self.opts.cause, timings.get("total", 0.0), rolled_back)
            if problem:
                self.say(problem)
        # the co-residents a load kept stay active beside it (a memory budget)
        loaded = [m for m in [active, *plan.keep] if m] if success else None
        self.report.finished(active, timings, success=success, rolled_back=rolled_back,
                             counts=counted, loaded=loaded)
        if not plan.noop:
            problem = journal.append(
                journal.journal_path(state_dir(), self.reg.stack.project),
                journal.SwitchRecord(at=journal.now(), group=plan.group, previous=plan.previous,
                                     target=plan.target, active=active, success=success,
                                     rolled_back=rolled_back,
                                     seconds=round(timings.get("total", 0.0), 2),
                                     reason=self.opts.reason))
            if problem:
                self.say(problem)
        # refused: nothing listens, so it does not run (no engine round trip to see that)
        if success and self.report.problem and not self.report.refused \
                and self._pushgateway_runs():
            self.say(f"switch record not pushed: {self.report.problem}")

    def _pushgateway_runs(self) -> bool:
        """A record not pushed matters only when the Pushgateway runs: without the
        monitoring profile nothing listens, and every switch would warn about it."""
        try:
            return any(s.running for s in self.docker.containers(service="pushgateway"))
        except DockerError:
            return False


def switch_compose(reg: Registry, docker: Docker, opts: SwitchOptions,
                   say: Callable[[str], None] = lambda s: None,
                   routable: Callable[[str, str], bool] | None = None,
                   ready: Callable[[str], bool] | None = None,
                   engine: Callable[[Member], Engine] | None = None,
                   route: Callable[[dict], None] | None = None,
                   asleep: SleepStates | None = None) -> SwitchResult:
    """`switch` on the local engine: the run loop with ComposeEffects (see there for the
    injectable parts)."""
    return ensure_active(ComposeEffects(reg, docker, opts, say, routable, ready, engine, route,
                                        asleep), opts)
