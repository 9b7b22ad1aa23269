"""The on-demand scheduler's policy as data: (group, members now, held requests, time) →
releases, rejections, one switch (policy.decide's plan) or idle members put away."""

from __future__ import annotations

from typing import Any

import pytest

from stackctl.switching.policy import Action, Activate, GroupState, decide
from stackctl.switching.scheduler import (
    Decision,
    GroupSpec,
    Held,
    MemberSpec,
    Reject,
    Residency,
    Snapshot,
    group_spec,
    preload,
    schedule,
)


def group(memory: float | None = None, mode: str = "sleep", **members: Any) -> GroupSpec:
    """group(24, a=10, b=MemberSpec(...)): a number is a footprint."""
    specs = {m: v if isinstance(v, MemberSpec) else MemberSpec(v) for m, v in members.items()}
    return GroupSpec("gpu0", specs, mode=mode, memory_gib=memory,  # type: ignore[arg-type]
                     min_residency=30, idle_sleep=300, max_queue=3)


def awake(since: float = 0, used: float = 0, serving: int = 0) -> Residency:
    return Residency("awake", since, used, serving)


ASLEEP = Residency("asleep")


def held(*members: str, at: float = 100) -> tuple[Held, ...]:
    return tuple(Held(f"r{i}", m, at + i) for i, m in enumerate(members))


def verbs(actions: list[Action]) -> list[tuple[str, str | None]]:
    return [(a.verb, a.member) for a in actions]


EXCLUSIVE = group(a=None, b=None, c=None)
BUDGET = group(24, a=10, b=10, c=10)


# -- who is served, who waits ----------------------------------------------------------------

def test_held_requests_for_a_loaded_member_go_at_once_without_a_switch():
    d = schedule(EXCLUSIVE, Snapshot({"a": awake(), "b": ASLEEP}, held("a", "a"), now=200))
    assert d.release == ("r0", "r1") and d.switch is None and d.reject == ()


def test_a_request_for_a_sleeper_in_an_exclusive_group_puts_the_awake_one_to_sleep():
    d = schedule(EXCLUSIVE, Snapshot({"a": awake(used=50), "b": ASLEEP}, held("b"), now=200))
    assert d.switch is not None and d.switch.target == "b" and d.evict == ["a"]
    assert verbs(d.switch.actions) == [("sleep", "a"), ("wake", "b"), ("route", "b"),
                                       ("confirm", "b")]


def test_the_switch_is_the_plan_switch_would_make_for_the_same_state():
    d = schedule(EXCLUSIVE, Snapshot({"a": awake(), "b": ASLEEP}, held("b"), now=200))
    same = decide(GroupState("gpu0", {"a": "awake", "b": "asleep", "c": "stopped"}, "sleep"),
                  Activate("b"))
    assert d.switch == same and d.switch.actions == same.actions


def test_restart_mode_stops_the_loaded_member_and_starts_the_target():
    spec = group(mode="restart", a=None, b=None)
    d = schedule(spec, Snapshot({"a": Residency("running")}, held("b"), now=200))
    assert d.switch is not None
    assert verbs(d.switch.actions)[:4] == [("prepare", "b"), ("stop", "a"), ("start", "b"),
                                           ("gate", "b")]


def test_a_member_that_fits_beside_the_loaded_ones_is_loaded_beside_them():
    d = schedule(BUDGET, Snapshot({"a": awake(), "b": ASLEEP}, held("b"), now=200))
    assert d.switch is not None and d.evict == [] and not d.switch.noop
    # `hold` diverted the whole group before it was read: a is routed again first
    assert verbs(d.switch.actions) == [("route", None), ("wake", "b"), ("route", "b"),
                                       ("confirm", "b")]
    assert d.switch.keep == ["a"] and d.switch.actions[0].keep == {"a"}
    assert d.switch.actions[0].held == "b" and d.switch.actions[2].keep == {"a"}


def test_the_least_recently_used_member_makes_room():
    now = Snapshot({"a": awake(used=150), "c": awake(used=120), "b": ASLEEP}, held("b"), 200)
    assert schedule(BUDGET, now).evict == ["c"]


def test_a_member_loaded_for_its_held_requests_goes_before_one_asked_all_along():
    """b was loaded a moment ago for requests that arrived before (now answered); a is asked
    every fraction of a second: a request for c evicts b, not a."""
    now = Snapshot({"a": awake(since=10, used=199.9), "b": awake(since=199.95, used=197),
                    "c": ASLEEP}, held("c", at=199.96), now=200)
    d = schedule(BUDGET, now)
    assert d.switch is not None and d.evict == ["b"]


def test_the_member_asked_most_lately_stays_though_its_latest_request_is_older():
    """Live, at 4 requests/s for a and 0.6/s for b: a request for c came 0.4 s after a's
    latest and 0.2 s after b's; by the latest request alone a, the busiest, went (and eight
    requests for it waited for two changes). Its requests of the last seconds count."""
    a, b = Residency("awake", 0.0), Residency("awake", 0.0)
    for i in range(40):  # a: every 0.25 s over the last 10 s
        a = a.asked(190.0 + i * 0.25)
    for t in (192.0, 195.0, 199.8):
        b = b.asked(t)
    assert a.last_used < b.last_used and a.heat_at(200) > 3 * b.heat_at(200)
    d = schedule(BUDGET, Snapshot({"a": a, "b": b, "c": ASLEEP}, held("c", at=199.9), now=200))
    assert d.switch is not None and d.evict == ["b"] and d.switch.keep == ["a"]


def test_among_members_not_asked_lately_the_one_asked_most_in_the_last_minutes_stays():
    """Bursts: a, the most popular, had 20 requests a minute ago; b one 10 s ago. By recency
    alone a went, and its next burst waited for a change; its long memory keeps it."""
    a = Residency("awake", 0.0)
    for i in range(20):
        a = a.asked(130.0 + i * 0.2)
    b = Residency("awake", 0.0).asked(190.0)
    assert a.last_used < b.last_used and a.heat_at(200) < b.heat_at(200)
    assert a.wanted(200) > b.wanted(200)
    d = schedule(BUDGET, Snapshot({"a": a, "b": b, "c": ASLEEP}, held("c", at=199.9), now=200))
    assert d.switch is not None and d.evict == ["b"] and d.switch.keep == ["a"]


def test_the_long_memory_fades_in_minutes():
    a = Residency("awake").asked(0.0)
    assert a.fame_at(300.0) == pytest.approx(0.5) and a.fame_at(3000.0) < 0.001


def test_a_request_counts_from_when_it_arrived_however_late_it_is_told():
    # held at the gateway by a switch, requests ask together once it is over
    times = [100.0, 100.4, 101.1, 102.5]
    as_they_came = Residency("awake")
    for t in times:
        as_they_came = as_they_came.asked(t)
    told_late = Residency("awake").asked(times[-1])
    for t in times[:-1]:
        told_late = told_late.asked(t)
    assert told_late.last_used == as_they_came.last_used == 102.5
    assert told_late.heat_at(103.0) == pytest.approx(as_they_came.heat_at(103.0))
    assert told_late.fame_at(103.0) == pytest.approx(as_they_came.fame_at(103.0))
    assert told_late.heat_at(103.0) < len(times) - 1  # not a burst of four

def test_requests_long_past_fade_and_no_longer_keep_a_member():
    # a was busy a minute ago; b is asked now and then, lately: a goes
    a = Residency("awake", 0.0)
    for i in range(100):
        a = a.asked(130.0 + i * 0.1)
    b = Residency("awake", 0.0).asked(195.0).asked(198.0)
    assert a.heat_at(200) < b.heat_at(200) < 2
    now = Snapshot({"a": a, "b": b, "c": ASLEEP}, held("c", at=199.9), now=200)
    assert schedule(BUDGET, now).evict == ["a"]


def test_no_more_is_evicted_than_the_target_needs():
    # LRU order evicts small 'a' first, then 'b'; 'a' may stay beside the target after all
    spec = group(24, a=4, b=14, c=20)
    now = Snapshot({"a": awake(used=10), "b": awake(used=90)}, held("c"), now=200)
    assert schedule(spec, now).evict == ["b"]


def test_a_member_whose_engine_cannot_say_goes_first_and_is_stopped():
    now = Snapshot({"a": Residency("unknown", 0, 190), "c": awake(used=10), "b": ASLEEP},
                   held("b"), now=200)
    d = schedule(BUDGET, now)
    assert d.switch is not None and (d.switch.stop, d.switch.sleep) == (["a"], [])


def test_pinned_members_stay_and_others_make_room():
    spec = group(24, a=MemberSpec(14, pinned=True), b=10, c=8)
    now = Snapshot({"a": awake(used=0), "c": awake(used=150)}, held("b"), now=200)
    assert schedule(spec, now).evict == ["c"]


# -- residency and rounds ---------------------------------------------------------------------

def test_a_serving_member_is_not_evicted_before_min_residency():
    now = Snapshot({"a": awake(since=190, used=199, serving=2), "b": ASLEEP}, held("b"), 200)
    d = schedule(EXCLUSIVE, now)
    assert d.switch is None and d.waiting_for == "b" and d.next_at == 220


def test_past_min_residency_a_serving_member_is_drained_and_evicted():
    now = Snapshot({"a": awake(since=160, used=199, serving=2), "b": ASLEEP}, held("b"), 200)
    assert schedule(EXCLUSIVE, now).evict == ["a"]


def test_an_idle_member_may_be_evicted_however_recently_loaded():
    now = Snapshot({"a": awake(since=199, used=199), "b": ASLEEP}, held("b"), now=200)
    assert schedule(EXCLUSIVE, now).evict == ["a"]


def test_a_round_releases_every_held_request_of_the_loaded_member_then_waits():
    # b was just woken: its whole queue goes, and is in flight from now: c waits
    now = Snapshot({"b": awake(since=200, used=103)}, held("b", "c", "b", "b"), now=200)
    d = schedule(EXCLUSIVE, now)
    assert d.release == ("r0", "r2", "r3") and d.switch is None and d.next_at == 230
    after = Snapshot({"b": awake(since=200, used=103, serving=3)}, held("c"), now=201)
    assert schedule(EXCLUSIVE, after).next_at == 230
    # its round answered and nothing new for it: c's turn, well before min_residency
    done = Snapshot({"b": awake(since=200, used=103, serving=0)}, held("c"), now=205)
    assert schedule(EXCLUSIVE, done).switch.target == "c"  # type: ignore[union-attr]


def test_only_requests_in_flight_keep_a_member_for_min_residency():
    # requests for b keep coming, each answered: while one is in flight b stays ...
    busy = Snapshot({"b": awake(since=200, used=214, serving=1)}, held("c"), now=215)
    d = schedule(EXCLUSIVE, busy)
    assert d.switch is None and d.waiting_for == "c" and d.next_at == 230
    # ... between two of them it is idle: c's request need not wait for min_residency
    idle = Snapshot({"b": awake(since=200, used=214, serving=0)}, held("c"), now=216)
    assert schedule(EXCLUSIVE, idle).evict == ["b"]
    later = Snapshot({"b": awake(since=200, used=229, serving=1)}, held("c"), now=230)
    assert schedule(EXCLUSIVE, later).evict == ["b"]


def test_a_serving_member_next_to_go_is_waited_for_not_replaced_by_a_busier_one():
    # the least recently used member a is serving and protected: c waits for it; b, asked
    # more recently (idle between two of its requests), is not evicted instead — live, that
    # was the busiest member going for one freshly loaded
    spec = group(20, a=10, b=10, c=10)
    now = Snapshot({"a": awake(since=190, used=150, serving=1), "b": awake(since=100, used=199),
                    "c": ASLEEP}, held("c", at=199), now=200)
    d = schedule(spec, now)
    assert d.switch is None and d.waiting_for == "c" and d.next_at == 220
    # a's request answered: a goes, b stays
    done = Snapshot({**now.members, "a": awake(since=190, used=150)}, now.held, now=201)
    d = schedule(spec, done)
    assert d.evict == ["a"] and d.switch is not None and d.switch.keep == ["b"]


def test_a_protected_member_that_is_not_next_to_go_stays_while_the_least_recent_goes():
    # b is serving and protected, but a is the least recently used: a goes, no wait
    now = Snapshot({"a": awake(since=100, used=150), "b": awake(since=190, used=198, serving=2),
                    "c": ASLEEP}, held("c", at=199), now=200)
    d = schedule(group(20, a=10, b=10, c=10), now)
    assert d.evict == ["a"] and d.switch is not None and d.switch.keep == ["b"]


# -- priorities and the queue cap -------------------------------------------------------------

def test_first_come_first_served_among_equal_priorities_once_they_waited_min_residency():
    now = Snapshot({"a": awake()}, (Held("x", "c", 101), Held("y", "b", 102)), now=200)
    assert schedule(EXCLUSIVE, now).switch.target == "c"  # type: ignore[union-attr]


def test_the_longest_queue_goes_first_while_none_waited_min_residency():
    # one load answers b's three requests: c's one waits a round (it is not overdue)
    now = Snapshot({"a": awake()}, (Held("x", "c", 190), *held("b", "b", "b", at=191)),
                   now=200)
    d = schedule(EXCLUSIVE, now)
    assert d.switch is not None and d.switch.target == "b"


def test_a_queue_that_waited_min_residency_goes_before_a_longer_one():
    # fairness: a long queue does not starve a short one past min_residency (30 s)
    now = Snapshot({"a": awake()}, (Held("x", "c", 169), *held("b", "b", "b", at=191)),
                   now=200)
    assert schedule(EXCLUSIVE, now).switch.target == "c"  # type: ignore[union-attr]


def test_without_min_residency_the_queues_are_served_first_come_first_served():
    spec = GroupSpec("gpu0", {m: MemberSpec() for m in "abc"})
    now = Snapshot({"a": awake()}, (Held("x", "c", 199), *held("b", "b", "b", at=199.5)),
                   now=200)
    assert schedule(spec, now).switch.target == "c"  # type: ignore[union-attr]


def test_a_higher_priority_member_is_served_before_older_requests():
    spec = group(a=None, b=MemberSpec(priority=5), c=None)
    now = Snapshot({"a": awake()}, (Held("x", "c", 101), Held("y", "b", 150)), now=200)
    assert schedule(spec, now).switch.target == "b"  # type: ignore[union-attr]


def test_past_the_queue_cap_the_newest_are_rejected_with_retry_after():
    spec = group(a=None, b=MemberSpec(load_s=2.5), c=MemberSpec(load_s=1))
    now = Snapshot({"a": awake()}, held("b", "c", "b", "b", "b", "c", "b"), now=200)
    d = schedule(spec, now)
    # b's round comes first (3 s to load it); c's after it (then 1 s more)
    assert d.reject == (Reject("r4", 3), Reject("r6", 3))
    assert d.switch is not None and d.switch.target == "b"
    crowded = Snapshot({"a": awake()}, held("b", "c", "c", "c", "c"), now=200)
    assert schedule(spec, crowded).reject == (Reject("r4", 4),)


# -- idle members ------------------------------------------------------------------------------

def test_an_idle_member_is_put_to_sleep_and_the_next_deadline_is_given():
    now = Snapshot({"a": awake(since=0, used=100), "b": awake(since=0, used=350),
                    "c": awake(used=0, serving=1)}, (), now=400)
    d = schedule(BUDGET, now)
    assert d.put_away == (Action("sleep", "a"),) and d.next_at == 650 and d.switch is None


def test_restart_mode_stops_an_idle_member_and_a_pinned_one_stays():
    spec = GroupSpec("gpu0", {"a": MemberSpec(4), "b": MemberSpec(4, pinned=True)},
                     mode="restart", memory_gib=24, idle_sleep=60)
    now = Snapshot({"a": Residency("running"), "b": Residency("running")}, (), now=400)
    d = schedule(spec, now)
    assert d.put_away == (Action("stop", "a"),) and d.next_at is None


def test_without_idle_sleep_nothing_is_put_away():
    spec = GroupSpec("gpu0", {"a": MemberSpec()})
    assert schedule(spec, Snapshot({"a": awake()}, (), now=1e6)) == Decision()


# -- preload and the group from the registry --------------------------------------------------

def test_preload_loads_what_fits_pinned_first_then_by_priority():
    spec = group(24, a=MemberSpec(10, preload=True), b=MemberSpec(10, preload=True, priority=2),
                 c=MemberSpec(10, preload=True, pinned=True), d=MemberSpec(4))
    assert preload(spec) == ["c", "b"]
    assert preload(group(a=MemberSpec(preload=True), b=MemberSpec(preload=True))) == ["a"]


def test_a_member_that_cannot_fit_alone_is_refused():
    with pytest.raises(ValueError, match="'a' does not fit alone in GPU group 'gpu0'"):
        GroupSpec("gpu0", {"a": MemberSpec(30)}, memory_gib=24)
    with pytest.raises(ValueError, match="'a' does not fit alone"):
        GroupSpec("gpu0", {"a": MemberSpec(None)}, memory_gib=24)


def test_the_groups_settings_come_from_the_registry(edited):
    def on_demand(d: Any) -> None:
        d["gpu_groups"]["gpu0"].update(memory_gib=24, on_demand=True, idle_sleep="5m",
                                       min_residency="30s", max_queue=4)

    spec = group_spec(edited("stack.yaml", on_demand), "gpu0", {"vllm-qwen": 0.3})
    assert (spec.mode, spec.level, spec.memory_gib, spec.idle_sleep, spec.min_residency,
            spec.max_queue) == ("sleep", 1, 24, 300, 30, 4)
    assert spec.members["vllm-qwen"] == MemberSpec(pytest.approx(21.6), load_s=0.3)
    assert spec.members["vllm-dolphin"].load_s == 1.0


def test_a_group_without_scheduler_settings_is_exclusive_and_never_idles(offline):
    spec = group_spec(offline, "gpu0")
    assert (spec.mode, spec.memory_gib, spec.idle_sleep, spec.min_residency) == \
        ("restart", None, None, 0)
    assert {m.load_s for m in spec.members.values()} == {60.0}


