"""Health gating: wait until services are running-or-healthy, fail fast on exited/unhealthy."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from stackctl.docker.models import ContainerState, by_service

Clock = Callable[[], float]
Sleep = Callable[[float], None]


@dataclass
class GateFailure(Exception):
    service: str
    reason: str
    container: ContainerState | None = None
    logs: str = ""
    also: list[GateFailure] = field(default_factory=list)  # other services still waiting

    def __str__(self) -> str:
        text = f"{self.service} {self.reason}"
        if self.logs.strip():
            name = self.container.name if self.container else self.service
            tail = "\n".join("    " + line for line in self.logs.rstrip().splitlines())
            text += f"\n  last log lines of {name}:\n{tail}"
        return "\n".join([text] + [str(other) for other in self.also])


@dataclass
class Gate:
    """Per-service outcome: seconds to ready, for the report."""

    ready_after: dict[str, float] = field(default_factory=dict)


def verdict(service: str, state: ContainerState | None) -> str:
    """'ready', 'failed' or 'waiting' for one service: the pure core of the gate."""
    if state is None:
        return "waiting"
    if state.failed:
        return "failed"
    return "ready" if state.ready else "waiting"


def describe_failure(state: ContainerState) -> str:
    if state.health == "unhealthy":
        return f"is unhealthy (container {state.name}, state {state.state})"
    return f"exited with code {state.exit_code} (container {state.name})"


def wait_healthy(
    services: list[str],
    observe: Callable[[], list[ContainerState]],
    timeout: float,
    logs: Callable[[str], str] = lambda name: "",
    on_change: Callable[[str, str, float], None] = lambda svc, verdict, t: None,
    clock: Clock = time.monotonic,
    sleep: Sleep = time.sleep,
    poll: float = 0.25,
    probe: Callable[[str], bool] | None = None,
    probe_poll: float | None = None,
) -> Gate:
    """Block until every service is ready; raise GateFailure naming the first that failed.

    Looks at Docker's view (running + healthcheck) at once, then every `poll` seconds, like
    llama-swap's 250 ms. `probe(service)`, when given, may declare a running container ready
    before Docker's next healthcheck interval does; it is asked every `probe_poll` seconds
    (default `poll`), so a cheap probe can be asked more often than Docker, and no more often
    than every 1% of the time waited so far: a server that loads for a minute (and may log
    every request) is asked a few hundred times, not thousands.
    """
    start = clock()
    gate = Gate()
    last: dict[str, str] = {}
    pending = list(services)
    seen_at: float | None = None
    states: dict[str, ContainerState] = {}
    while True:
        now = clock() - start
        if seen_at is None or now - seen_at >= poll - 1e-9:
            states, seen_at = by_service(observe()), now
        for svc in list(pending):
            st = states.get(svc)
            v = verdict(svc, st)
            if v == "waiting" and probe is not None and st is not None and st.running \
                    and probe(svc):
                v = "ready"
            if v != last.get(svc):
                last[svc] = v
                on_change(svc, v, now)
            if v == "failed":
                assert st is not None
                raise GateFailure(svc, describe_failure(st), st, logs(st.name))
            if v == "ready":
                gate.ready_after[svc] = now
                pending.remove(svc)
        if not pending:
            return gate
        if now >= timeout:
            late = [_timed_out(svc, states.get(svc), timeout, logs) for svc in pending]
            late[0].also = late[1:]
            raise late[0]
        sleep(min(poll, max(probe_poll or poll, now / 100)) if probe is not None else poll)


def _timed_out(svc: str, st: ContainerState | None, timeout: float,
               logs: Callable[[str], str]) -> GateFailure:
    detail = f" (state {st.state}, health {st.health})" if st else " (no container)"
    return GateFailure(svc, f"not healthy after {timeout:g}s{detail}", st,
                       logs(st.name) if st else "")
