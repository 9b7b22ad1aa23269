"""Health gating: wait until services are running-or-healthy, fail fast on exited/unhealthy."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .state import ContainerState, by_service

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
) -> Gate:
    """Block until every service is ready; raise GateFailure naming the first that failed.

    Polls Docker's view (running + healthcheck); the first look comes after `poll` seconds,
    then every `poll` seconds, like llama-swap's 250 ms start. `probe(service)`, when given,
    may declare a running container ready before Docker's next healthcheck interval does.
    """
    start = clock()
    gate = Gate()
    last: dict[str, str] = {}
    pending = list(services)
    while True:
        states = by_service(observe())
        now = clock() - start
        for svc in list(pending):
            v = verdict(svc, states.get(svc))
            if v == "waiting" and probe is not None and states.get(svc) is not None \
                    and states[svc].running and probe(svc):
                v = "ready"
            if v != last.get(svc):
                last[svc] = v
                on_change(svc, v, now)
            if v == "failed":
                st = states[svc]
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
        sleep(poll)


def _timed_out(svc: str, st: ContainerState | None, timeout: float,
               logs: Callable[[str], str]) -> GateFailure:
    detail = f" (state {st.state}, health {st.health})" if st else " (no container)"
    return GateFailure(svc, f"not healthy after {timeout:g}s{detail}", st,
                       logs(st.name) if st else "")
