"""The switching policy as data: (group state, demand) → plan and actions; the rollback's
actions; a group's state from the containers the engine lists. Nothing here runs anything."""

from __future__ import annotations

import pytest

from stackctl.docker.models import ContainerState
from stackctl.switching.policy import (
    Action,
    Activate,
    GroupState,
    decide,
    observed_state,
    rollback_actions,
)


def restart(**members: str) -> GroupState:
    return GroupState("gpu0", dict(members))


def sleep(level: int = 1, **members: str) -> GroupState:
    return GroupState("gpu0", dict(members), mode="sleep", level=level)


def verbs(actions: list[Action]) -> list[tuple]:
    return [(a.verb, a.member) if a.verb != "route" else ("route", a.member, a.held)
            for a in actions]


# -- restart mode ----------------------------------------------------------------------------

def test_restart_stops_the_active_member_while_the_target_is_created_then_starts_it():
    plan = decide(restart(a="running", b="stopped"), Activate("b"))
    assert (plan.stop, plan.sleep, plan.wake, plan.noop, plan.mode) == \
        (["a"], [], False, False, "restart")
    assert verbs(plan.actions) == [("prepare", "b"), ("stop", "a"), ("start", "b"),
                                   ("gate", "b"), ("route", "b", None), ("confirm", "b")]
    assert plan.previous == "a"


def test_target_alone_running_is_a_noop_that_is_still_gated_and_confirmed():
    plan = decide(restart(a="stopped", b="running"), Activate("b"))
    assert plan.noop and plan.stop == [] and plan.previous is None
    assert verbs(plan.actions) == [("start", "b"), ("gate", "b"), ("route", "b", None),
                                   ("confirm", "b")]


def test_target_running_beside_others_is_not_created_again():
    # an interrupted switch left both running: the others stop, the target is kept
    plan = decide(restart(a="running", b="running", c="running"), Activate("b"))
    assert plan.stop == ["a", "c"] and not plan.noop
    assert verbs(plan.actions)[:3] == [("stop", "a"), ("stop", "c"), ("start", "b")]


def test_nothing_running_starts_the_target_with_no_previous_member():
    plan = decide(restart(a="stopped", b="stopped"), Activate("a"))
    assert plan.stop == [] and plan.previous is None and not plan.noop
    assert verbs(plan.actions)[0] == ("prepare", "a")


def test_restart_mode_plans_at_level_1_whatever_the_state_says():
    plan = decide(GroupState("gpu0", {"a": "running", "b": "stopped"}, level=2), Activate("b"))
    assert plan.level == 1


def test_a_demand_outside_the_group_is_refused():
    with pytest.raises(ValueError, match="'z' is not a member of GPU group 'gpu0'"):
        decide(restart(a="running"), Activate("z"))


# -- sleep mode ------------------------------------------------------------------------------

def test_awake_other_sleeps_and_the_sleeping_target_is_woken():
    plan = decide(sleep(a="awake", b="asleep"), Activate("b"))
    assert (plan.sleep, plan.stop, plan.wake, plan.noop) == (["a"], [], True, False)
    assert verbs(plan.actions) == [("sleep", "a"), ("wake", "b"), ("route", "b", None),
                                   ("confirm", "b")]


def test_an_engine_that_cannot_say_is_stopped_and_a_cold_target_started_then_warmed():
    plan = decide(sleep(level=2, a="unknown", b="stopped"), Activate("b"))
    assert (plan.stop, plan.sleep, plan.wake, plan.level) == (["a"], [], False, 2)
    assert verbs(plan.actions) == [("prepare", "b"), ("stop", "a"), ("start", "b"),
                                   ("gate", "b"), ("warm_up", "b"), ("route", "b", None),
                                   ("confirm", "b")]


def test_awake_target_beside_sleepers_is_a_noop():
    plan = decide(sleep(a="asleep", b="awake"), Activate("b"))
    assert plan.noop and verbs(plan.actions)[0] == ("start", "b")


def test_a_sleeper_is_left_asleep_when_another_member_is_woken():
    plan = decide(sleep(a="asleep", b="asleep", c="awake"), Activate("b"))
    assert plan.sleep == ["c"] and plan.stop == [] and plan.wake


# -- rollback ---------------------------------------------------------------------------------

def test_rollback_retires_the_target_and_restarts_the_previous_member():
    plan = decide(restart(a="running", b="stopped"), Activate("b"))
    assert verbs(rollback_actions(plan, previous_runs=False)) == [
        ("route", None, "a"), ("retire", "b"), ("start", "a"), ("gate", "a"),
        ("route", "a", None), ("confirm", "a")]


def test_rollback_wakes_a_previous_member_that_sleeps_and_starts_one_that_was_stopped():
    plan = decide(sleep(a="awake", b="asleep"), Activate("b"))
    assert verbs(rollback_actions(plan, previous_runs=True))[2:] == [
        ("wake", "a"), ("route", "a", None), ("confirm", "a")]
    # it would not sleep, so it was stopped: started again, warmed up
    assert verbs(rollback_actions(plan, previous_runs=False))[2:] == [
        ("start", "a"), ("gate", "a"), ("warm_up", "a"), ("route", "a", None),
        ("confirm", "a")]


@pytest.mark.parametrize("state", [restart(a="stopped", b="stopped"),
                                   restart(a="stopped", b="running")],
                         ids=["nothing-before", "noop"])
def test_rollback_without_a_previous_member_leaves_the_group_empty(state):
    plan = decide(state, Activate("b"))
    assert verbs(rollback_actions(plan, previous_runs=False)) == [
        ("route", None, None), ("retire", "b"), ("route", None, None)]


# -- a group's state from the engine's containers --------------------------------------------

def cs(service: str, state: str = "running") -> ContainerState:
    return ContainerState(name=f"p-{service}-1", service=service, state=state)


def test_observed_state_lists_running_members_first_in_the_engines_order():
    observed = [cs("c"), cs("x"), cs("a", "exited"), cs("b")]
    state = observed_state("gpu0", ["a", "b", "c"], observed)
    assert list(state.members.items()) == [("c", "running"), ("b", "running"),
                                           ("a", "stopped")]
    assert state.mode == "restart"


def test_observed_state_of_a_sleep_mode_group_says_what_each_engine_says():
    state = observed_state("gpu0", ["a", "b", "c", "d"], [cs("a"), cs("b"), cs("c")],
                           {"a": True, "b": False, "c": None}, level=2)
    assert state.members == {"a": "asleep", "b": "awake", "c": "unknown", "d": "stopped"}
    assert (state.mode, state.level) == ("sleep", 2)
