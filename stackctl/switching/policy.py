"""The switching policy: (group state, demand) → a plan of actions. Pure, tested as data.

Nothing here asks Docker, a cluster or an engine: the state comes in observed, the plan goes
out as data, and the run loop (loop.py) performs it through a target's Effects. See
design.md beside this file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, Field, PrivateAttr

from stackctl.docker.models import ContainerState
from stackctl.switching.members import Member, group_members, resolve_member

# stopped: no process (no container, exited, scaled to 0); running: its process runs (a
# restart-mode group: nobody asks whether it sleeps); awake / asleep: a running member of a
# sleep-mode group, as its engine says; unknown: running, but its engine cannot say (loading,
# or dying: it may hold the GPU)
MemberState = Literal["stopped", "running", "awake", "asleep", "unknown"]
Mode = Literal["restart", "sleep"]

# prepare: get the member's process ready to start without the GPU (a container created),
#   overlapping what comes before it; stop: graceful, its requests finish; sleep: drain its
#   requests, then sleep (one that will not sleep is stopped); start: make it run (idempotent);
#   wake: wake it and warm it up (readiness enough: its process never stopped); warm_up: one
#   token straight to it; gate: wait until it is healthy; route: the gateway's routing state
#   (`member` active, `held`'s requests held); confirm: the gateway routes its model to it;
#   retire: stopped whatever its state, so that nothing starts it again beside another member
Verb = Literal["prepare", "stop", "sleep", "start", "wake", "warm_up", "gate", "route",
               "confirm", "retire"]


@dataclass(frozen=True)
class Action:
    verb: Verb
    member: str | None = None  # route: the active member (None: none is)
    held: str | None = None  # route: the member whose requests are held
    # route: co-resident members left serving (a memory budget): not diverted
    keep: frozenset[str] = frozenset()


@dataclass(frozen=True)
class GroupState:
    """One exclusive GPU group as observed: every member's state, in the order observed
    (running members first, as the engine lists them, then the others)."""

    group: str
    members: dict[str, MemberState] = field(default_factory=dict)
    mode: Mode = "restart"
    level: int = 1  # sleep mode: the level members sleep at

    @property
    def running(self) -> list[str]:
        return [m for m, s in self.members.items() if s != "stopped"]


@dataclass(frozen=True)
class Activate:
    """The demand: `member` becomes the one running (awake) member of its group — beside
    `keep`, members left as they are (co-resident within a memory budget: the on-demand
    scheduler's, scheduler.py; `switch` keeps none)."""

    member: str
    keep: frozenset[str] = frozenset()


class SwitchPlan(BaseModel):
    group: str = Field(description="the exclusive GPU group")
    target: str = Field(description="the member that will be the one running (awake)")
    stop: list[str] = Field(description="running members to stop, in order")
    noop: bool = Field(description="the target already is the only running (awake) member: "
                       "nothing to stop or start, but it must still be ready and routable")
    mode: Mode = Field("restart", description="how the group switches")
    level: int = Field(1, description="sleep mode: the level members sleep at")
    sleep: list[str] = Field(default_factory=list, description="sleep mode: awake members to "
                             "drain and put to sleep")
    wake: bool = Field(False, description="sleep mode: the target sleeps and is woken (else "
                       "its container is started)")
    keep: list[str] = Field(default_factory=list, description="loaded members left as they "
                            "are beside the target (they fit its group's memory budget)")
    # what the run loop does, in order (decide's; not part of the plan's JSON)
    _actions: list[Action] = PrivateAttr(default_factory=list)

    @property
    def actions(self) -> list[Action]:
        return self._actions

    @property
    def previous(self) -> str | None:
        """The member a rollback brings back: the (first) one switched out."""
        return (self.sleep or self.stop or [None])[0]

    def describe(self) -> list[str]:
        check = [f"wait until {self.target} is healthy",
                 f"confirm through the gateway that {self.target}'s model answers"]
        if self.noop:
            # running is not ready: an interrupted switch leaves a member starting, or it died
            return [f"{self.target} is already the active member of GPU group {self.group!r}: "
                    "nothing to stop or start", *check]
        steps = [f"stop {m} (graceful)" for m in self.stop]
        steps += [f"keep {m} serving beside {self.target}" for m in self.keep]
        if self.mode == "restart":
            return [*steps, f"start {self.target}", *check]
        steps += [f"let {m}'s requests finish, then put it to sleep (level {self.level})"
                  for m in self.sleep]
        steps.append(f"wake {self.target}" if self.wake else f"start {self.target}")
        return [*steps, f"warm {self.target} up with a one-token request", *check]


def decide(state: GroupState, demand: Activate) -> SwitchPlan:
    """(group state, demand) → the plan; pure.

    Restart mode: every other running member (but those the demand keeps) is stopped, then
    the target starts. Sleep mode:
    an awake other is drained and put to sleep, one that cannot say is stopped (it may be
    loading, or hold the GPU); a sleeping target is woken, one that never ran is started —
    only after the others sleep, since vLLM claims its GPU memory when it starts. Creating
    the target's container needs no GPU: it overlaps the stops."""
    target, members = demand.member, state.members
    if target not in members:
        raise ValueError(f"{target!r} is not a member of GPU group {state.group!r}")
    running = state.running
    others = [m for m in running if m != target and m not in demand.keep]
    here = members[target]
    if state.mode == "restart":
        stop, sleep, wake = others, [], False
        noop = target in running and not others
    else:
        sleep = [m for m in others if members[m] == "awake"]
        stop = [m for m in others if members[m] in ("unknown", "running")]
        wake = here == "asleep"
        noop = here == "awake" and not sleep and not stop
    keep = [m for m in running if m != target and m in demand.keep]
    plan = SwitchPlan(group=state.group, target=target, stop=stop, sleep=sleep, wake=wake,
                      noop=noop, mode=state.mode, keep=keep,
                      level=state.level if state.mode == "sleep" else 1)
    plan._actions = _actions(plan, target_runs=here != "stopped")
    return plan


def _actions(plan: SwitchPlan, target_runs: bool) -> list[Action]:
    t, keep = plan.target, frozenset(plan.keep)
    finish = [Action("route", t, keep=keep), Action("confirm", t)]
    if plan.noop:
        return [Action("start", t), Action("gate", t), *finish]
    # `hold` diverted the whole group before it was read: the kept members serve again at
    # once, not only once the target is routable
    out = [Action("route", None, held=t, keep=keep)] if keep else []
    out += [] if target_runs else [Action("prepare", t)]
    out += [Action("stop", m) for m in plan.stop]
    out += [Action("sleep", m) for m in plan.sleep]
    if plan.wake:
        out.append(Action("wake", t))
    else:
        out += [Action("start", t), Action("gate", t)]
        if plan.mode == "sleep":
            out.append(Action("warm_up", t))
    return out + finish


def rollback_actions(plan: SwitchPlan, previous_runs: bool) -> list[Action]:
    """What undoes a failed `plan`, pure: the target is retired (stopped whatever its state:
    a member that failed to wake or to answer is in no known state), then the previous member
    comes back — woken if it sleeps, else started as it ran — health-gated and confirmed
    routable. `previous_runs`: the previous member's process still runs (it was put to sleep,
    not stopped). Without a previous member (or when the target was the one running) the
    group is left with no active member."""
    previous, t, keep = plan.previous, plan.target, frozenset(plan.keep)
    out = [Action("route", None, held=previous, keep=keep), Action("retire", t)]
    if plan.noop or previous is None:
        return [*out, Action("route", None, keep=keep)]
    if previous in plan.sleep and previous_runs:
        out.append(Action("wake", previous))
    else:
        out += [Action("start", previous), Action("gate", previous)]
        if plan.mode == "sleep":
            out.append(Action("warm_up", previous))
    return [*out, Action("route", previous, keep=keep), Action("confirm", previous)]


class PutAwayPlan(BaseModel):
    """Unloading one member (`stackctl unload`; the scheduler's idle members): it sleeps in
    a sleep-mode group, else it stops; the group's other loaded members go on serving."""

    group: str
    member: str = Field(description="the member put away")
    verb: Literal["sleep", "stop"] = Field(description="how: sleep (an awake member of a "
                                           "sleep-mode group) or stop")
    noop: bool = Field(description="it was not loaded (stopped, or asleep): nothing to do")
    mode: Mode = "restart"
    level: int = 1
    keep: list[str] = Field(default_factory=list, description="loaded members left serving")
    _actions: list[Action] = PrivateAttr(default_factory=list)

    @property
    def actions(self) -> list[Action]:
        return self._actions

    # what the switch's record (journal, Pushgateway) reads of a plan
    @property
    def target(self) -> str:
        return self.member

    @property
    def previous(self) -> str | None:
        return self.member

    def describe(self) -> list[str]:
        if self.noop:
            return [f"{self.member} is not loaded: nothing to do"]
        how = (f"let {self.member}'s requests finish, then put it to sleep (level "
               f"{self.level})" if self.verb == "sleep" else f"stop {self.member} (graceful)")
        return [f"send {self.member}'s requests to their fallback", how]


def put_away(state: GroupState, member: str) -> PutAwayPlan:
    """(group state, the member to unload) → the plan; pure. Its model is diverted first (no
    new request reaches it), then it sleeps — an awake member of a sleep-mode group — or
    stops (restart mode; or its engine cannot say whether it sleeps: it may hold the GPU)."""
    if member not in state.members:
        raise ValueError(f"{member!r} is not a member of GPU group {state.group!r}")
    here = state.members[member]
    verb: Literal["sleep", "stop"] = "sleep" if here == "awake" else "stop"
    noop = here in ("stopped", "asleep")
    keep = [m for m in state.running if m != member and state.members[m] != "asleep"]
    plan = PutAwayPlan(group=state.group, member=member, verb=verb, noop=noop, mode=state.mode,
                       level=state.level if state.mode == "sleep" else 1, keep=keep)
    if not noop:
        plan._actions = [Action("route", None, keep=frozenset(keep)), Action(verb, member)]
    return plan


def observed_state(group: str, members: list[str], observed: list[ContainerState],
                   asleep: dict[str, bool | None] | None = None, level: int = 1) -> GroupState:
    """A group's state from the containers the engine lists (and, for a sleep-mode group,
    `asleep`: running member → is its engine sleeping, None when it cannot say)."""
    running = list(dict.fromkeys(s.service for s in observed if s.running and s.service in members))

    def state(m: str) -> MemberState:
        if m not in running:
            return "stopped"
        if asleep is None:
            return "running"
        says = asleep.get(m)
        return "unknown" if says is None else "asleep" if says else "awake"

    order = running + [m for m in members if m not in running]
    return GroupState(group, {m: state(m) for m in order},
                      "restart" if asleep is None else "sleep", level)


def plan_switch(members_: dict[str, Member], target: str, observed: list[ContainerState],
                asleep: dict[str, bool | None] | None = None, level: int = 1) -> SwitchPlan:
    """(members, target name, observed containers[, sleep states]) → the plan; pure.

    `asleep` (sleep-mode groups): running member → is it sleeping, None when its engine
    cannot say."""
    group, target = resolve_member(members_, target)
    state = observed_state(group, group_members(members_, group), observed, asleep, level)
    return decide(state, Activate(target))
