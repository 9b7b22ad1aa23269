"""The on-demand scheduler's policy: (a GPU group, its state now, the held requests, the
time) → a Decision. Pure, tested as data (tests/unit/switching/test_scheduler.py); a resident
process performs the decisions, benchmarks/sim_scheduler.py replays traces through them.

- Members co-reside while their footprints fit the group's memory budget; a group with no
  budget is exclusive (one loaded member).
- Requests for a loaded member go to it; the others are held. All of a member's held
  requests go the moment it is loaded: a round, not a switch per request.
- The next member to load: by priority; then a member whose first held request has waited
  `min_residency` or more (overdue: the longest one round holds the others up), oldest
  first; then the longest queue (the most requests answered for one load), then the oldest.
- To make room, evict the loaded members asked least lately that are not pinned: each
  request counts for its member, fading by half every HEAT_HALF_LIFE seconds (`heat`) —
  by its latest request alone, a member asked every quarter second went for one asked once
  a moment later; among members not asked for some seconds, the one asked least over the
  last minutes (`fame`, fading by half every FAME_HALF_LIFE) — by recency alone, the
  most popular model went for one asked once since; then the latest request breaks ties.
  When the next to go is protected (requests in flight, and loaded less than
  `min_residency` ago: between requests a member is idle and may go), wait for it
  (`next_at`, or its requests ending): a member asked more never goes in its place. A
  member loaded for its held requests alone leaves once they are answered.
- The transition itself is `policy.decide`'s plan, with the co-residents kept: the same
  actions, effects and rollback as `stackctl switch`.
- Past `max_queue` held requests for a member, the newest are rejected with a Retry-After;
  a member idle for `idle_sleep` is put away (sleep, or stop in a restart-mode group).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from stackctl.errors import PlanError
from stackctl.registry.catalog import exclusive_groups, group_settings
from stackctl.registry.gpu_memory import fits, footprint
from stackctl.registry.load import Registry
from stackctl.registry.models import seconds
from stackctl.switching.policy import (
    Action,
    Activate,
    GroupState,
    MemberState,
    Mode,
    SwitchPlan,
    decide,
)

# seconds: how fast a member's past requests stop counting for it. Short: it tells a member
# asked several times a second from one asked once, and forgets a popularity that moved on
# within seconds (simulated, design.md: ahead of LRU in 19 of 32 runs at 1 s, 8 at 5 s)
HEAT_HALF_LIFE = 1.0
# seconds: the long memory, which keeps the models asked most over the last minutes when none
# was asked lately (simulated, design.md: ahead of LRU on bursts, where recency alone tied)
FAME_HALF_LIFE = 300.0
# what a request in the long memory weighs against one just now: what it weighs in the short
# one 10 s later. Minutes of demand outweigh a moment's only when large: 5 requests/s over
# the last quarter hour weigh as 2 requests of the last second
FAME_WEIGHT = 2.0 ** -10
SERVABLE: tuple[MemberState, ...] = ("running", "awake")
# on the GPU: "unknown" is running but cannot say whether it sleeps (it may hold the memory)
LOADED: tuple[MemberState, ...] = ("running", "awake", "unknown")


@dataclass(frozen=True)
class MemberSpec:
    footprint_gib: float | None = None  # None: only in a group with no budget
    priority: int = 0
    pinned: bool = False
    preload: bool = False
    load_s: float = 1.0  # expected seconds to load it (wake or start): Retry-After's estimate


@dataclass(frozen=True)
class GroupSpec:
    """One on-demand group, from the checked registry (`group_spec`) or a test."""

    name: str
    members: dict[str, MemberSpec]  # registry order
    mode: Mode = "restart"
    level: int = 1
    memory_gib: float | None = None  # None: exclusive
    idle_sleep: float | None = None  # seconds; None: never
    min_residency: float = 0.0
    max_queue: int = 10

    def __post_init__(self) -> None:
        # validate refuses these registries; a spec built by hand must not slip through
        for name in self.members:
            if not self.fits([name]):
                raise ValueError(f"{name!r} does not fit alone in GPU group {self.name!r}")

    def fits(self, members: list[str] | set[str] | tuple[str, ...]) -> bool:
        sizes = {m: self.members[m].footprint_gib or 0.0 for m in members}
        if self.memory_gib is not None and any(
                self.members[m].footprint_gib is None for m in members):
            return False
        return fits(sizes, list(members), self.memory_gib)


def _faded(value: float, after: float, half_life: float) -> float:
    """`value` `after` seconds later, halving every `half_life` (not before: after < 0 is 0)."""
    return value * 0.5 ** (max(0.0, after) / half_life)


@dataclass(frozen=True)
class Residency:
    """One member now, as the resident process saw it."""

    state: MemberState = "stopped"
    since: float = 0.0  # when it was last loaded (woken or started)
    last_used: float = 0.0  # when the latest request for it arrived
    serving: int = 0  # its requests in flight
    heat: float = 0.0  # its requests, each fading by half every HEAT_HALF_LIFE: at last_used
    fame: float = 0.0  # the same, fading by half every FAME_HALF_LIFE: at last_used

    def asked(self, at: float) -> Residency:
        """After a request for it arrived at `at` — maybe before the latest one: held at the
        gateway while a switch ran, it asks once the switch is over, with others held with
        it; counted at its arrival, such a burst weighs what the requests did as they came."""
        if at >= self.last_used:
            return replace(self, last_used=at, heat=self.heat_at(at) + 1.0,
                           fame=self.fame_at(at) + 1.0)
        late = self.last_used - at
        return replace(self, heat=self.heat + _faded(1.0, late, HEAT_HALF_LIFE),
                       fame=self.fame + _faded(1.0, late, FAME_HALF_LIFE))

    def heat_at(self, now: float) -> float:
        return _faded(self.heat, now - self.last_used, HEAT_HALF_LIFE)

    def fame_at(self, now: float) -> float:
        return _faded(self.fame, now - self.last_used, FAME_HALF_LIFE)

    def wanted(self, now: float) -> float:
        """How much it is asked: lately, or else over the last minutes."""
        return self.heat_at(now) + FAME_WEIGHT * self.fame_at(now)


@dataclass(frozen=True)
class Held:
    id: str
    member: str
    arrived: float


@dataclass(frozen=True)
class Snapshot:
    members: dict[str, Residency]  # missing members are stopped
    held: tuple[Held, ...] = ()  # in arrival order
    now: float = 0.0

    def of(self, member: str) -> Residency:
        return self.members.get(member, Residency())


@dataclass(frozen=True)
class Reject:
    id: str
    retry_after: int  # seconds, for the 429's Retry-After


@dataclass(frozen=True)
class Decision:
    release: tuple[str, ...] = ()  # held requests to send now: their member is loaded
    reject: tuple[Reject, ...] = ()  # past max_queue: answer 429 with Retry-After
    switch: SwitchPlan | None = None  # load switch.target, evicting per the plan
    put_away: tuple[Action, ...] = ()  # idle members: sleep (sleep mode) or stop
    next_at: float | None = None  # ask again then, unless something happens before
    waiting_for: str | None = None  # the member the first held request waits for, blocked

    @property
    def evict(self) -> list[str]:
        return [*self.switch.sleep, *self.switch.stop] if self.switch else []


def schedule(spec: GroupSpec, now: Snapshot) -> Decision:
    """What to do now; pure. At most one switch: the caller performs it (through the run
    loop's `perform`, under the group's lock) and asks again when it is over; releases and
    rejections it performs at once, also while a switch runs."""
    state = {m: now.of(m).state for m in spec.members}
    release = tuple(h.id for h in now.held if state[h.member] in SERVABLE)
    queued: dict[str, list[Held]] = {}
    for h in now.held:
        if state[h.member] not in SERVABLE:
            queued.setdefault(h.member, []).append(h)
    order = _rounds(spec, now, queued)
    reject, ahead = [], 0.0
    for m in order:  # the rounds before this member's, then its own load
        ahead += spec.members[m].load_s
        reject += [Reject(h.id, max(1, math.ceil(ahead))) for h in queued[m][spec.max_queue:]]
    if order:
        # the requests released now are in flight from now on: they protect their member
        sent = {m: sum(1 for h in now.held if h.member == m and h.id in release)
                for m in spec.members}
        after = replace(now, members={m: replace(now.of(m), serving=now.of(m).serving + n)
                                      for m, n in sent.items()})
        plan, blocked_until = _load(spec, after, order[0])
        if plan is not None:
            return Decision(release, tuple(reject), switch=plan)
        return Decision(release, tuple(reject), next_at=blocked_until, waiting_for=order[0])
    put_away, next_at = _idle(spec, now)
    return Decision(release, tuple(reject), put_away=put_away, next_at=next_at)


def _rounds(spec: GroupSpec, now: Snapshot, queued: dict[str, list[Held]]) -> list[str]:
    """The members with held requests, the next to load first: by priority; then the
    overdue (first held request waiting `min_residency` or more), oldest first, so that a
    long queue does not starve a short one; then the longest queue — more requests per
    load, fewer switches —, then the oldest. With no `min_residency` every queue is
    overdue: first come first served."""
    def key(m: str) -> tuple[int, bool, int, float]:
        first = queued[m][0].arrived
        overdue = now.now - first >= spec.min_residency
        return (-spec.members[m].priority, not overdue, 0 if overdue else -len(queued[m]),
                first)
    return sorted(queued, key=key)


def _protected(spec: GroupSpec, now: Snapshot, member: str) -> bool:
    """Serving — requests in flight — and loaded less than `min_residency` ago (the
    registry's: a member serving requests is not evicted before it was loaded this long).
    Between requests it is idle: evicting it drains nothing, and it may go."""
    r = now.of(member)
    return r.state in SERVABLE and r.serving > 0 and now.now - r.since < spec.min_residency


def _load(spec: GroupSpec, now: Snapshot, target: str) -> tuple[SwitchPlan | None, float | None]:
    """The plan loading `target`, evicting as little as it can; else (None, when the first
    protection in the way ends)."""
    loaded = [m for m in spec.members if now.of(m).state in LOADED and m != target]
    evictable = [m for m in loaded if not spec.members[m].pinned]
    # one that cannot say whether it sleeps goes first, then the least wanted, then the
    # least recently used — by its requests, not its load: one loaded for the requests it
    # held is no more wanted than they were, and goes before a member asked all along
    evictable.sort(key=lambda m: (now.of(m).state != "unknown", now.of(m).wanted(now.now),
                                  now.of(m).last_used))
    evict: list[str] = []
    for m in evictable:
        if spec.fits([*[k for k in loaded if k not in evict], target]):
            break
        if _protected(spec, now, m):
            break  # the next to go is serving: wait for it; a member asked more never goes instead
        evict.append(m)
    keep = [k for k in loaded if k not in evict]
    if not spec.fits([*keep, target]):
        blockers = [now.of(m).since + spec.min_residency for m in loaded
                    if _protected(spec, now, m)]
        return None, min(blockers, default=None)
    for m in reversed(evict[:-1]):  # LRU order may have evicted one that need not go
        if spec.fits([*keep, m, target]):
            evict.remove(m)
            keep.append(m)
    group = GroupState(spec.name, dict(state_order(spec, now)), spec.mode, spec.level)
    return decide(group, Activate(target, keep=frozenset(keep))), None


def state_order(spec: GroupSpec, now: Snapshot) -> list[tuple[str, MemberState]]:
    """Loaded members first, as GroupState lists them (the order the plan stops them in)."""
    states = [(m, now.of(m).state) for m in spec.members]
    return [s for s in states if s[1] != "stopped"] + [s for s in states if s[1] == "stopped"]


def _idle(spec: GroupSpec, now: Snapshot) -> tuple[tuple[Action, ...], float | None]:
    if spec.idle_sleep is None:
        return (), None
    out, deadlines = [], []
    for m, ms in spec.members.items():
        r = now.of(m)
        if r.state not in SERVABLE or r.serving or ms.pinned:
            continue
        at = max(r.since, r.last_used) + spec.idle_sleep
        if at <= now.now:
            out.append(Action("sleep" if r.state == "awake" else "stop", m))
        else:
            deadlines.append(at)
    return tuple(out), min(deadlines, default=None)


def preload(spec: GroupSpec) -> list[str]:
    """The members to load when the scheduler starts: the preloaded ones that fit together,
    pinned first, then by priority, then registry order."""
    names = list(spec.members)
    wanted = sorted((m for m in names if spec.members[m].preload),
                    key=lambda m: (not spec.members[m].pinned, -spec.members[m].priority,
                                   names.index(m)))
    chosen: list[str] = []
    for m in wanted:
        if spec.fits([*chosen, m]):
            chosen.append(m)
    return chosen


def load_plan(spec: GroupSpec, state: GroupState, target: str) -> SwitchPlan:
    """`stackctl load`'s plan, pure: what the scheduler would do for one request for
    `target` now — in an exclusive group `switch`'s plan; in a budgeted one, load it beside
    the loaded members that fit, evicting the least recently used that are not pinned. A
    command is not a request in flight: nobody is protected by `min_residency`. A member
    already loaded is checked (a no-op plan) and its co-residents kept. PlanError when the
    pinned members leave no room."""
    loaded = frozenset(m for m, s in state.members.items() if s in LOADED and m != target)
    if state.members.get(target) in SERVABLE:
        return decide(state, Activate(target, keep=loaded))
    now = Snapshot({m: Residency(s) for m, s in state.members.items()},
                   (Held("load", target, 0.0),))
    plan, _ = _load(spec, now, target)
    if plan is None:
        pinned = [m for m in loaded if spec.members[m].pinned]
        budget = f"{spec.memory_gib:g} GiB" if spec.memory_gib is not None else "one member"
        raise PlanError(f"{target} does not fit beside the pinned {', '.join(sorted(pinned))} "
                        f"in GPU group {spec.name!r} ({budget}): `stackctl unpin` one, or "
                        "`stackctl switch` to override")
    return plan


def group_spec(reg: Registry, group: str, load_s: dict[str, float] | None = None,
               pins: frozenset[str] = frozenset()) -> GroupSpec:
    """A checked registry's on-demand settings of `group` (validate has refused a member
    that has no footprint in a budgeted group, or does not fit alone). `load_s`: member →
    seconds its last load took, for Retry-After (default: a wake 1 s, a start 60 s).
    `pins`: members pinned by `stackctl pin` (the state folder's pins.py) beside the
    registry's `gpu.pinned`."""
    settings = group_settings(reg, group)
    load = 1.0 if settings.switch == "sleep" else 60.0
    members = {}
    for name in exclusive_groups(reg)[group]:
        prov = reg.providers.providers[name]
        assert prov.container is not None and prov.container.gpu is not None  # a member
        gpu = prov.container.gpu
        members[name] = MemberSpec(footprint(prov, settings.memory_gib).gib, gpu.priority,
                                   gpu.pinned or name in pins, gpu.preload,
                                   (load_s or {}).get(name, load))
    return GroupSpec(group, members, settings.switch, settings.sleep_level,
                     settings.memory_gib,
                     seconds(settings.idle_sleep) if settings.idle_sleep else None,
                     seconds(settings.min_residency) if settings.min_residency else 0.0,
                     settings.max_queue)
