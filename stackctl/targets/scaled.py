"""Switching by scaling, for the targets whose members are replicated services (a Swarm's
services, Kubernetes Deployments): a member runs with 1 replica and is stopped with 0.

`ScaledEffects` is the switching Effects of those targets: stopping is scaling to 0 and
waiting until the member's tasks or pods are gone (the GPU is free), starting is scaling to
1, the gate is the orchestrator's own readiness (a Swarm task with a healthcheck runs only
once healthy; a Deployment's rollout waits for its readiness probe). A member cannot sleep
there: a sleep-mode group switches by restart. The routing state file and the switch record
are the local stack's; the scaled targets keep neither. The run loop and its rollback are
the one every target uses (switching/loop.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from stackctl.health.gate import GateFailure
from stackctl.registry.load import Registry
from stackctl.switching.effects import SCALED_WORDS, Timings
from stackctl.switching.loop import SwitchOptions, SwitchResult
from stackctl.switching.members import group_members, members_of
from stackctl.switching.policy import GroupState, MemberState, SwitchPlan
from stackctl.targets.base import Report, Ui


class ScaledEffects:
    """What a target adds: `replicas(members)`, `scale(member, n)`, `wait_gone(member)`,
    `wait_ready(member)` (each raising the target's PlanError), `routable(model, dep)` and
    `unroutable(model)` (the reason when it is not)."""

    words = SCALED_WORDS
    failures: tuple[type[Exception], ...] = ()  # the target's errors: a step that failed

    def __init__(self, reg: Registry, opts: SwitchOptions,
                 say: Callable[[str], None] = lambda s: None):
        self.reg, self.opts, self._say = reg, opts, say
        self.members = members_of(reg)
        self._started: dict[str, float] = {}

    # -- what a target adds -------------------------------------------------------------------
    def replicas(self, members: list[str]) -> dict[str, int]:
        raise NotImplementedError

    def scale(self, member: str, n: int) -> None:
        raise NotImplementedError

    def wait_gone(self, member: str) -> None:
        raise NotImplementedError

    def wait_ready(self, member: str) -> None:
        raise NotImplementedError

    def routable(self, model: str, deployment: str) -> bool:
        raise NotImplementedError

    def unroutable(self, model: str) -> str:
        raise NotImplementedError

    # -- the Effects --------------------------------------------------------------------------
    def say(self, text: str) -> None:
        self._say(text)

    def lock(self, wait: float | None) -> AbstractContextManager[object]:
        return nullcontext()  # the orchestrator holds the state; no local lock guards it

    def hold(self, group: str, target: str) -> None:
        pass

    def unhold(self) -> None:
        pass

    def route(self, active: str | None, held: str | None = None,
              keep: frozenset[str] = frozenset()) -> None:
        pass

    def observe(self, group: str) -> GroupState:
        names = group_members(self.members, group)
        replicas = self.replicas(names)
        states: dict[str, MemberState] = {m: "running" for m in names if replicas.get(m)}
        states.update({m: "stopped" for m in names if m not in states})
        return GroupState(group, states)

    def _step(self, member: str, fn: Callable[..., None], *args: Any) -> None:
        try:
            fn(*args)
        except self.failures as exc:
            raise GateFailure(member, str(exc)) from None

    def create(self, member: str) -> None:
        return None  # the orchestrator creates what scaling up asks for

    def stop(self, member: str) -> Timings:
        self.say(f"scaling {member} to 0")
        self._step(member, self.scale, member, 0)
        self._step(member, self.wait_gone, member)  # its tasks or pods gone: the GPU is free
        return {}

    def retire(self, member: str) -> None:
        self.stop(member)

    def sleep(self, member: str) -> Timings:
        return self.stop(member)  # never planned: a scaled member does not sleep

    def start(self, member: str, created: object = None) -> Timings:
        self._started[member] = time.monotonic()
        self.say(f"scaling {member} to 1")
        self._step(member, self.scale, member, 1)
        return {}

    def gate(self, member: str) -> Timings:
        t = self._started.get(member, time.monotonic())
        self._step(member, self.wait_ready, member)
        return {"ready": time.monotonic() - t}

    def wake(self, member: str) -> Timings:
        return {**self.start(member), **self.gate(member)}  # never planned, as sleep

    def warm_up(self, member: str) -> Timings:
        return {}

    def confirm(self, member: str) -> None:
        model = self.members[member].model
        if model and not self.routable(model, f"{model}@{member}"):
            raise GateFailure(member, self.unroutable(model))

    def is_running(self, member: str) -> bool:
        return bool(self.replicas([member]).get(member))

    def logs(self, member: str) -> str:
        return ""

    def report_started(self, plan: SwitchPlan) -> None:
        pass

    def report_finished(self, plan: SwitchPlan, active: str | None, timings: Timings,
                        success: bool, rolled_back: bool) -> None:
        pass


class ScaledSwitchOutcome(Report):
    """A switch done by scaling: its timings."""

    def __init__(self, kind: str, where: str, member: str, result: SwitchResult):
        self.kind, self.where, self.member, self.result = kind, where, member, result

    def document(self) -> dict[str, Any]:
        return {"ok": True, "target": self.kind, "member": self.member,
                "timings": self.result.timings}

    def show(self, ui: Ui) -> None:
        t = self.result.timings
        ui.result(f"switched to {self.member} {self.where} in {t['total']:.1f}s "
                  f"(stop {t['stop']:.1f}s, ready {t['ready']:.1f}s, "
                  f"routable {t['routable']:.1f}s)")
