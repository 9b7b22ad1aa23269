"""The one run loop of a switch, for every target: read, decide and act under the target's
lock; perform the plan through its Effects; roll back the same way whatever the target.

`ensure_active(effects, opts)` is the one entry point that changes a GPU group. See
design.md beside this file.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext
from typing import Literal, NoReturn

from pydantic import BaseModel, Field

from stackctl.health.gate import GateFailure
from stackctl.switching.effects import Effects, Timings
from stackctl.switching.members import resolve_member
from stackctl.switching.policy import (
    Action,
    Activate,
    GroupState,
    PutAwayPlan,
    SwitchPlan,
    decide,
    put_away,
    rollback_actions,
)

# (the group as observed, the target) → the plan: `switch`'s decide by default; `load`
# passes the scheduler's, which keeps co-residents that fit (scheduler.load_plan)
Chooser = Callable[[GroupState, str], SwitchPlan]
Cause = Literal["manual", "demand", "idle"]


class SwitchOptions(BaseModel):
    member: str = Field(description="target member: provider name or a unique part of it")
    timeout: float = Field(300, gt=0, description="seconds the target may take to be healthy")
    routable_timeout: float = Field(30, gt=0, description="seconds for the gateway to route to "
                                    "the target once it is healthy")
    dry_run: bool = Field(False, description="decide and describe; change nothing")
    lock_wait: float | None = Field(None, description="seconds to wait for a concurrent "
                                    "up/switch; None: fail at once")
    reason: str = Field("stackctl switch", description="what asked for the switch: kept in "
                        "the switch journal (journal.py) that `stackctl top` shows")
    cause: Cause = Field("manual", description="why, as the switch counter's `reason` label: "
                         "manual (a command), demand (requests for it), idle (put away)")


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


def ensure_active(effects: Effects, opts: SwitchOptions,
                  choose: Chooser | None = None) -> SwitchResult:
    """Make `opts.member` the one running (awake) member of its group; roll back if it fails.

    Under the target's lock: hold the target's requests (the gateway follows while the group
    is looked at), observe the group, decide (policy.decide), act. A dry run decides only,
    without the lock: it changes nothing, so it neither waits for nor blocks an operation."""
    with nullcontext() if opts.dry_run else effects.lock(opts.lock_wait):
        group, target = resolve_member(effects.members, opts.member)
        if not opts.dry_run:
            effects.hold(group, target)
        try:
            state = effects.observe(group)
            plan = choose(state, target) if choose else decide(state, Activate(target))
        except BaseException:  # nothing changed but the routing: as it was
            effects.unhold()
            raise
        result = SwitchResult(plan=plan)
        if opts.dry_run:
            return result
        # a target found running is checked, not switched: nothing to record
        effects.report_started(plan)
        t0 = time.monotonic()
        previous = plan.previous
        try:
            perform(plan.actions, effects, result.timings, t0)
        except GateFailure as failure:
            try:
                roll_back(plan, failure, effects)
            except SwitchFailed as exc:
                result.timings["total"] = time.monotonic() - t0
                effects.report_finished(plan, previous if exc.restored else None,
                                        result.timings, success=False,
                                        rolled_back=bool(previous))
                raise
        except BaseException:
            # the engine went away, or Ctrl-C, half-way: which member can answer is not
            # known; the fallbacks answer for the whole group until `switch` or `up` repairs
            effects.route(None)
            raise
        result.timings["total"] = time.monotonic() - t0
        effects.report_finished(plan, plan.target, result.timings, success=True,
                                rolled_back=False)
        return result


def perform(actions: list[Action], effects: Effects, timings: Timings,
            t0: float | None = None) -> None:
    """Do `actions` in order, merging the timings each effect measured. A `prepare` runs in
    a worker thread beside the actions after it (creating needs no GPU) until the `start`
    that needs it; leaving waits for it, so nothing is left running behind the lock. With
    `t0`, "stop" is the time until the first action after the stops and sleeps, "routable"
    the time `confirm` took."""
    created: dict[str, Future[object]] = {}
    with ThreadPoolExecutor(max_workers=1) as pool:
        for action in actions:
            verb, member = action.verb, action.member
            if t0 is not None and verb not in ("prepare", "stop", "sleep") \
                    and "stop" not in timings:
                timings["stop"] = time.monotonic() - t0
            if verb == "prepare":
                assert member is not None
                created[member] = pool.submit(effects.create, member)
            elif verb == "route":
                effects.route(member, action.held, action.keep)
            elif verb == "confirm":
                assert member is not None
                t = time.monotonic()
                effects.confirm(member)
                if t0 is not None:
                    timings["routable"] = time.monotonic() - t
            elif verb == "retire":
                assert member is not None
                effects.retire(member)
            elif verb == "start":
                assert member is not None
                pending = created.pop(member, None)
                timings.update(effects.start(member, pending.result() if pending else None))
            else:
                assert member is not None
                timings.update(getattr(effects, verb)(member))


def roll_back(plan: SwitchPlan, failure: GateFailure, effects: Effects) -> NoReturn:
    """Retire the failed target, bring the previous member back, say what happened: raises
    SwitchFailed (`restored`: the group has a healthy member again, or had none before)."""
    previous, target, words = plan.previous, plan.target, effects.words
    logs = failure.logs or effects.logs(target)
    effects.say(f"{target} failed: {failure.reason}; rolling back")
    # one that would not sleep was stopped instead: it starts again
    runs = previous is not None and previous in plan.sleep and effects.is_running(previous)
    facts = {"target": target, "reason": failure.reason, "previous": previous,
             "group": plan.group, "tail": _tail(logs)}
    try:
        perform(rollback_actions(plan, runs), effects, {})
    except GateFailure as again:
        what = f"rollback to {previous}" if previous else f"stopping {target}"
        raise SwitchFailed(words.also_failed.format(**facts, what=what, again=again.reason),
                           restored=False) from None
    if plan.noop:
        raise SwitchFailed(words.noop.format(**facts))
    if previous is None:
        raise SwitchFailed(words.none_before.format(**facts))
    raise SwitchFailed(words.restored.format(**facts))


def _tail(logs: str) -> str:
    if not logs.strip():
        return ""
    return "\n  last log lines of the target:\n" + "\n".join(
        "    " + line for line in logs.rstrip().splitlines()[-20:])


class PutAwayResult(BaseModel):
    plan: PutAwayPlan
    timings: dict[str, float] = Field(default_factory=dict, description="seconds: drain, "
                                      "sleep, total")


def put_away_member(effects: Effects, opts: SwitchOptions) -> PutAwayResult:
    """Unload `opts.member` (policy.put_away): its model goes to its fallback, then it sleeps
    or stops; the group's other members are left as they are. The second way a group
    changes, under the same lock and through the same Effects as `ensure_active`; nothing
    to roll back (a member that will not sleep is stopped: Effects.sleep)."""
    with nullcontext() if opts.dry_run else effects.lock(opts.lock_wait):
        group, member = resolve_member(effects.members, opts.member)
        plan = put_away(effects.observe(group), member)
        result = PutAwayResult(plan=plan)
        if opts.dry_run or plan.noop:
            return result
        effects.report_started(plan)
        t0 = time.monotonic()
        try:
            perform(plan.actions, effects, result.timings)
        except BaseException:
            result.timings["total"] = time.monotonic() - t0
            effects.report_finished(plan, None, result.timings, success=False,
                                    rolled_back=False)
            raise
        result.timings["total"] = time.monotonic() - t0
        effects.report_finished(plan, None, result.timings, success=True, rolled_back=False)
        return result
