"""The Effects a switch needs, as one interface: the run loop (loop.py) calls it, each target
implements it (targets/compose_switch.py: the Docker adapter and the engines' own API;
targets/swarm.py: the Swarm manager; targets/kubernetes.py: kubectl), and unit tests pass a
fake that records calls (tests/fakes/effects.py).

Every method that changes something names the member it acts on. One that fails in a way the
switch must roll back raises `GateFailure(member, reason)`; anything else (the engine went
away, Ctrl-C) propagates, and the loop diverts the group's models to their fallbacks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from stackctl.switching.members import Member
from stackctl.switching.policy import GroupState, PutAwayPlan, SwitchPlan

if TYPE_CHECKING:
    from stackctl.gateway.client import Gateway

Timings = dict[str, float]


@dataclass(frozen=True)
class Words:
    """How a target words a failed switch: what each confirms differs (a container healthy
    and routed to, or an orchestrator's replica running). Format fields: target, reason,
    previous, what (what failed again), again, group, tail (the target's last log lines)."""

    restored: str
    none_before: str
    noop: str
    also_failed: str


COMPOSE_WORDS = Words(
    restored="{target} {reason}; rolled back: {previous} is healthy and routable again{tail}",
    none_before="{target} {reason}; no member was running before, so GPU group {group!r} has "
                "no active member{tail}",
    noop="{target} (already running) {reason}; it was the only member running, and is "
         "stopped now: GPU group {group!r} has no active member{tail}",
    also_failed="{target} {reason}; {what} ALSO failed: {again}. GPU group {group!r} has no "
                "healthy member{tail}")

SCALED_WORDS = Words(
    restored="{target} {reason}; rolled back: {previous} runs again and is ready",
    none_before="{target} {reason}; no member ran before, so GPU group {group!r} has no "
                "active member",
    noop="{target} {reason}; no member ran before, so GPU group {group!r} has no active "
         "member",
    also_failed="{target} {reason}; {what} ALSO failed: {again}")


class Effects(Protocol):
    """What the run loop asks of a target. Methods return the timings they measured."""

    members: dict[str, Member]
    words: Words

    def say(self, text: str) -> None:
        """A progress line for the user."""

    def lock(self, wait: float | None) -> AbstractContextManager[object]:
        """Held across read → decide → act (Busy when another up/switch holds it)."""

    def hold(self, group: str, target: str) -> None:
        """Before the group is looked at: hold `target`'s requests, divert the others'."""

    def unhold(self) -> None:
        """The group could not be looked at: the routing state as it was before `hold`."""

    def observe(self, group: str) -> GroupState: ...
    def create(self, member: str) -> object: ...  # prepare; its result goes to `start`
    def stop(self, member: str) -> Timings: ...
    def sleep(self, member: str) -> Timings: ...
    def start(self, member: str, created: object = None) -> Timings: ...
    def wake(self, member: str) -> Timings: ...
    def warm_up(self, member: str) -> Timings: ...
    def gate(self, member: str) -> Timings: ...
    def route(self, active: str | None, held: str | None = None,
              keep: frozenset[str] = frozenset()) -> None:
        """Divert every member of the group but `active` and `keep`; hold `held`'s."""
    def confirm(self, member: str) -> None: ...
    def retire(self, member: str) -> None: ...

    def is_running(self, member: str) -> bool:
        """Its process runs now (asleep or not)."""

    def logs(self, member: str) -> str:
        """Its last log lines ("" when there are none to show)."""

    # a put-away (unload) is recorded like a switch: its `target` and `previous` are the member
    def report_started(self, plan: SwitchPlan | PutAwayPlan) -> None: ...
    def report_finished(self, plan: SwitchPlan | PutAwayPlan, active: str | None,
                        timings: Timings, success: bool, rolled_back: bool) -> None: ...


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
