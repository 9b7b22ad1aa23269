"""`load` and `unload` as data and through the run loop: the scheduler's plan for one
manual request (co-residents kept, pins respected), the put-away plan, and the fake Effects
seeing the routing keep the co-residents serving."""

from __future__ import annotations

import pytest

from stackctl.errors import PlanError
from stackctl.switching.loop import SwitchOptions, ensure_active, put_away_member
from stackctl.switching.policy import Activate, GroupState, decide, put_away
from stackctl.switching.scheduler import GroupSpec, MemberSpec, load_plan
from tests.fakes.effects import FakeEffects


def spec(memory: float | None = 24, mode: str = "sleep", pinned: tuple[str, ...] = (),
         **sizes: float | None) -> GroupSpec:
    return GroupSpec("gpu0", {m: MemberSpec(g, pinned=m in pinned) for m, g in sizes.items()},
                     mode=mode, memory_gib=memory)  # type: ignore[arg-type]


def verbs(plan) -> list[tuple]:  # type: ignore[no-untyped-def]
    return [(a.verb, a.member) for a in plan.actions]


# -- load: the scheduler's plan for one request -----------------------------------------------

def test_load_in_an_exclusive_group_is_the_switch_plan():
    state = GroupState("gpu0", {"a": "awake", "b": "asleep"}, "sleep")
    plan = load_plan(spec(None, a=None, b=None), state, "b")
    assert plan == decide(state, Activate("b")) and plan.sleep == ["a"] and plan.keep == []


def test_load_beside_members_that_fit_keeps_them_serving():
    state = GroupState("gpu0", {"a": "awake", "b": "asleep", "c": "stopped"}, "sleep")
    plan = load_plan(spec(24, a=10, b=10, c=10), state, "b")
    assert (plan.keep, plan.sleep, plan.stop, plan.wake) == (["a"], [], [], True)
    assert verbs(plan) == [("route", None), ("wake", "b"), ("route", "b"), ("confirm", "b")]
    assert all(a.keep == {"a"} for a in plan.actions if a.verb == "route")
    assert "keep a serving beside b" in plan.describe()


def test_load_makes_room_with_an_unpinned_member_only():
    state = GroupState("gpu0", {"a": "awake", "c": "awake", "b": "asleep"}, "sleep")
    plan = load_plan(spec(24, pinned=("a",), a=10, b=10, c=10), state, "b")
    assert (plan.sleep, plan.keep) == (["c"], ["a"])


def test_load_refuses_when_pinned_members_leave_no_room():
    state = GroupState("gpu0", {"a": "awake", "b": "asleep"}, "sleep")
    with pytest.raises(PlanError, match=r"b does not fit beside the pinned a in GPU group "
                                        r"'gpu0' \(one member\).*unpin"):
        load_plan(spec(None, pinned=("a",), a=None, b=None), state, "b")


def test_load_of_a_loaded_member_is_a_check_that_keeps_the_others():
    state = GroupState("gpu0", {"a": "awake", "b": "awake"}, "sleep")
    plan = load_plan(spec(24, a=10, b=10), state, "b")
    assert plan.noop and plan.keep == ["a"] and plan.sleep == []


def test_restart_mode_load_beside_a_running_member():
    state = GroupState("gpu0", {"a": "running", "b": "stopped"})
    plan = load_plan(spec(24, mode="restart", a=10, b=10), state, "b")
    assert plan.stop == [] and plan.keep == ["a"]
    assert verbs(plan)[:3] == [("route", None), ("prepare", "b"), ("start", "b")]


# -- unload: the put-away plan ------------------------------------------------------------------

def test_unload_sleeps_an_awake_member_and_keeps_the_others_routed():
    plan = put_away(GroupState("gpu0", {"a": "awake", "b": "awake", "c": "asleep"}, "sleep"),
                    "a")
    assert (plan.verb, plan.noop, plan.keep) == ("sleep", False, ["b"])
    assert verbs(plan) == [("route", None), ("sleep", "a")]
    assert plan.actions[0].keep == {"b"}
    assert plan.describe()[0] == "send a's requests to their fallback"


@pytest.mark.parametrize(("state", "verb", "noop"), [
    ("running", "stop", False), ("unknown", "stop", False), ("asleep", "stop", True),
    ("stopped", "stop", True)])
def test_unload_stops_what_cannot_sleep_and_leaves_what_is_away(state, verb, noop):
    plan = put_away(GroupState("gpu0", {"a": state, "b": "stopped"}), "a")
    assert (plan.verb, plan.noop) == (verb, noop)
    assert plan.actions == [] if noop else verbs(plan)[-1] == (verb, "a")


# -- through the run loop -----------------------------------------------------------------------

def test_a_load_routes_the_kept_members_back_before_it_wakes_the_target():
    effects = FakeEffects(GroupState("gpu0", {"a": "awake", "b": "asleep"}, "sleep"))
    sp = spec(24, a=10, b=10)
    ensure_active(effects, SwitchOptions(member="b", reason="stackctl load"),
                  choose=lambda state, t: load_plan(sp, state, t))
    assert effects.calls[:3] == [("lock", None), ("hold", "gpu0", "b"), ("observe", "gpu0")]
    assert effects.routes() == [(None, "b", frozenset({"a"})), ("b", None, frozenset({"a"}))]
    assert effects.verbs() == [("wake", "b"), ("confirm", "b")]


def test_put_away_member_runs_under_the_lock_and_is_recorded():
    effects = FakeEffects(GroupState("gpu0", {"a": "awake", "b": "asleep"}, "sleep"))
    result = put_away_member(effects, SwitchOptions(member="a", reason="stackctl unload"))
    assert result.plan.verb == "sleep" and "total" in result.timings
    assert effects.calls[0] == ("lock", None) and effects.calls[-1] == ("unlock", None)
    assert effects.routes() == [(None, None)]  # nobody kept: the whole group is diverted
    assert effects.verbs() == [("sleep", "a")]
    assert ("report_finished", None, True, False) in effects.calls


def test_put_away_of_a_member_not_loaded_changes_nothing():
    effects = FakeEffects(GroupState("gpu0", {"a": "asleep", "b": "awake"}, "sleep"))
    assert put_away_member(effects, SwitchOptions(member="a")).plan.noop
    assert effects.routes() == [] and effects.verbs() == []
    assert not any(c[0].startswith("report") for c in effects.calls)


def test_a_dry_run_unload_takes_no_lock():
    effects = FakeEffects(GroupState("gpu0", {"a": "awake"}, "sleep"))
    put_away_member(effects, SwitchOptions(member="a", dry_run=True))
    assert effects.calls == [("observe", "gpu0")]
