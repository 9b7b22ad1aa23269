"""A fake of the switching Effects (stackctl/switching/effects.py): it records every call, in
order, in `calls`, answers `observe` with a scripted GroupState, and fails the calls listed in
`fail` with a GateFailure (as a real target does when a member does not come up).

    effects = FakeEffects(GroupState("gpu0", {"a": "running", "b": "stopped"}),
                          fail={("gate", "b"): "not healthy after 1s"})
    ensure_active(effects, SwitchOptions(member="b"))   # raises SwitchFailed
    effects.calls  # [("lock", None), ("hold", "gpu0", "b"), ("observe", "gpu0"), ...]
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from stackctl.health.gate import GateFailure
from stackctl.switching.effects import COMPOSE_WORDS, Timings, Words
from stackctl.switching.members import Member
from stackctl.switching.policy import GroupState, PutAwayPlan, SwitchPlan


def members_for(state: GroupState) -> dict[str, Member]:
    """Member facts for every member of `state`: each serves the model "<name>-model"."""
    return {m: Member(m, state.group, m, 1.0, None, None, f"{m}-model")
            for m in state.members}


class FakeEffects:
    def __init__(self, state: GroupState, words: Words = COMPOSE_WORDS,
                 fail: dict[tuple[str, str | None], str] | None = None,
                 logs: str = "", broken: BaseException | None = None,
                 broken_at: tuple[str, str | None] | None = None):
        self.state = state
        self.members = members_for(state)
        self.words = words
        self.fail = dict(fail or {})  # (verb, member) → reason: that call raises GateFailure
        self.broken, self.broken_at = broken, broken_at  # that call raises `broken` instead
        self.log_text = logs
        self.calls: list[tuple] = []
        self.said: list[str] = []
        self.running = set(state.running)

    def _do(self, verb: str, member: str | None, *rest: object) -> None:
        self.calls.append((verb, member, *rest))
        if self.broken is not None and (verb, member) == self.broken_at:
            raise self.broken
        if (verb, member) in self.fail:
            raise GateFailure(member or "-", self.fail[(verb, member)])

    def verbs(self) -> list[tuple]:
        """The calls that act on the group (not the lock, routing or the record)."""
        acting = ("create", "stop", "sleep", "start", "wake", "warm_up", "gate", "confirm",
                  "retire")
        return [c[:2] for c in self.calls if c[0] in acting]

    def routes(self) -> list[tuple]:
        return [c[1:] for c in self.calls if c[0] == "route"]

    # -- the Effects --------------------------------------------------------------------------
    def say(self, text: str) -> None:
        self.said.append(text)

    @contextmanager
    def lock(self, wait: float | None) -> Iterator[None]:
        self.calls.append(("lock", wait))
        try:
            yield
        finally:
            self.calls.append(("unlock", None))

    def hold(self, group: str, target: str) -> None:
        self.calls.append(("hold", group, target))

    def unhold(self) -> None:
        self.calls.append(("unhold", None))

    def observe(self, group: str) -> GroupState:
        self._do("observe", group)
        return self.state

    def create(self, member: str) -> str:
        self._do("create", member)
        return f"container-of-{member}"

    def stop(self, member: str) -> Timings:
        self._do("stop", member)
        self.running.discard(member)
        return {}

    def sleep(self, member: str) -> Timings:
        self._do("sleep", member)
        return {"drain": 0.0, "sleep": 0.0}

    def start(self, member: str, created: object = None) -> Timings:
        self._do("start", member, created)
        self.running.add(member)
        return {"start": 0.0}

    def wake(self, member: str) -> Timings:
        self._do("wake", member)
        return {"wake": 0.0, "warm": 0.0, "start": 0.0, "ready": 0.0}

    def warm_up(self, member: str) -> Timings:
        self._do("warm_up", member)
        return {"warm": 0.0}

    def gate(self, member: str) -> Timings:
        self._do("gate", member)
        return {"ready": 0.0}

    def route(self, active: str | None, held: str | None = None,
              keep: frozenset[str] = frozenset()) -> None:
        self.calls.append(("route", active, held, *([keep] if keep else [])))

    def confirm(self, member: str) -> None:
        self._do("confirm", member)

    def retire(self, member: str) -> None:
        self._do("retire", member)
        self.running.discard(member)

    def is_running(self, member: str) -> bool:
        return member in self.running

    def logs(self, member: str) -> str:
        return self.log_text

    def report_started(self, plan: SwitchPlan | PutAwayPlan) -> None:
        self.calls.append(("report_started", plan.target))

    def report_finished(self, plan: SwitchPlan | PutAwayPlan, active: str | None, timings: Timings,
                        success: bool, rolled_back: bool) -> None:
        self.calls.append(("report_finished", active, success, rolled_back))
