"""The one run loop and its rollback, through a fake Effects (tests/fakes/effects.py): the
order of effects, the lock around read-decide-act, what a failure at each step leaves, and
how each kind of target words a rollback."""

from __future__ import annotations

import pytest

from stackctl.switching.effects import COMPOSE_WORDS, SCALED_WORDS
from stackctl.switching.loop import SwitchFailed, SwitchOptions, ensure_active
from stackctl.switching.policy import GroupState
from tests.fakes.effects import FakeEffects

RESTART = GroupState("gpu0", {"a": "running", "b": "stopped"})
SLEEP = GroupState("gpu0", {"a": "awake", "b": "asleep"}, mode="sleep")


def run(effects: FakeEffects, member: str = "b", **opts):
    return ensure_active(effects, SwitchOptions(member=member, **opts))


def test_a_switch_holds_observes_decides_and_acts_under_the_lock():
    fx = FakeEffects(RESTART)
    result = run(fx, lock_wait=3)
    calls = fx.calls
    assert calls[:3] == [("lock", 3), ("hold", "gpu0", "b"), ("observe", "gpu0")]
    assert calls[-2:] == [("report_finished", "b", True, False), ("unlock", None)]
    # the target's container is created beside the stop; it starts once the stop is done
    assert set(fx.verbs()[:2]) == {("create", "b"), ("stop", "a")}
    assert fx.verbs()[2:] == [("start", "b"), ("gate", "b"), ("confirm", "b")]
    assert ("start", "b", "container-of-b") in calls  # what the create made is started
    assert fx.routes() == [("b", None)]  # the held requests are released before the check
    assert calls.index(("route", "b", None)) < calls.index(("confirm", "b"))
    assert set(result.timings) == {"stop", "start", "ready", "routable", "total"}


def test_a_dry_run_only_reads_and_decides():
    fx = FakeEffects(RESTART)
    result = run(fx, dry_run=True)
    # no lock: a dry run changes nothing, so it neither waits for nor blocks an operation
    assert fx.calls == [("observe", "gpu0")]
    assert result.plan.stop == ["a"] and result.timings == {}


def test_a_group_that_cannot_be_read_puts_the_routing_back_and_changes_nothing():
    fx = FakeEffects(RESTART, fail={("observe", "gpu0"): "engine gone"})
    with pytest.raises(Exception, match="engine gone"):
        run(fx)
    assert [c[0] for c in fx.calls] == ["lock", "hold", "observe", "unhold", "unlock"]


def test_an_unknown_member_is_refused_before_anything_is_held():
    fx = FakeEffects(RESTART)
    with pytest.raises(Exception, match="did you mean 'b'|not a member"):
        run(fx, member="zz")
    assert fx.calls == [("lock", None), ("unlock", None)]


def test_a_target_that_fails_its_gate_is_retired_and_the_previous_member_restored():
    fx = FakeEffects(RESTART, fail={("gate", "b"): "exited with code 1"}, logs="boom\n")
    with pytest.raises(SwitchFailed) as exc:
        run(fx)
    assert exc.value.restored is True
    assert str(exc.value) == ("b exited with code 1; rolled back: a is healthy and routable "
                              "again\n  last log lines of the target:\n    boom")
    rollback = fx.verbs()[fx.verbs().index(("gate", "b")) + 1:]
    assert rollback == [("retire", "b"), ("start", "a"), ("gate", "a"), ("confirm", "a")]
    # the previous member's requests are held while it comes back, then routed to it
    assert fx.routes() == [(None, "a"), ("a", None)]
    assert fx.said == ["b failed: exited with code 1; rolling back"]
    assert ("report_finished", "a", False, True) in fx.calls


def test_a_sleep_mode_rollback_wakes_the_previous_member():
    fx = FakeEffects(SLEEP, fail={("wake", "b"): "did not wake: boom"})
    with pytest.raises(SwitchFailed, match="rolled back: a is healthy"):
        run(fx)
    assert fx.verbs() == [("sleep", "a"), ("wake", "b"), ("retire", "b"), ("wake", "a"),
                          ("confirm", "a")]


def test_a_failed_rollback_is_not_restored():
    fx = FakeEffects(RESTART, fail={("gate", "b"): "not healthy after 1s",
                                    ("gate", "a"): "exited with code 2"})
    with pytest.raises(SwitchFailed) as exc:
        run(fx)
    assert exc.value.restored is False
    assert str(exc.value) == ("b not healthy after 1s; rollback to a ALSO failed: exited "
                              "with code 2. GPU group 'gpu0' has no healthy member")
    assert ("report_finished", None, False, True) in fx.calls


def test_without_a_previous_member_the_group_is_left_empty():
    fx = FakeEffects(GroupState("gpu0", {"a": "stopped", "b": "stopped"}),
                     fail={("gate", "b"): "exited with code 1"})
    with pytest.raises(SwitchFailed) as exc:
        run(fx)
    assert exc.value.restored is True
    assert "no member was running before, so GPU group 'gpu0' has no active member" \
        in str(exc.value)
    assert fx.routes()[-1] == (None, None)


def test_a_running_target_that_is_not_routed_is_stopped_and_the_group_left_empty():
    fx = FakeEffects(GroupState("gpu0", {"a": "stopped", "b": "running"}),
                     fail={("confirm", "b"): "is healthy but the gateway did not route"})
    with pytest.raises(SwitchFailed, match=r"b \(already running\) is healthy but .* it was "
                       "the only member running, and is stopped now"):
        run(fx)
    assert fx.verbs() == [("start", "b"), ("gate", "b"), ("confirm", "b"), ("retire", "b")]


def test_anything_but_a_gate_failure_diverts_the_group_and_propagates():
    fx = FakeEffects(RESTART, broken=KeyboardInterrupt(), broken_at=("gate", "b"))
    with pytest.raises(KeyboardInterrupt):
        run(fx)
    assert fx.routes()[-1] == (None, None)  # every member's model to its fallback
    assert not any(c[0] == "retire" for c in fx.calls)
    assert fx.calls[-1] == ("unlock", None)


# -- the same rollback, worded by each kind of target -----------------------------------------

@pytest.mark.parametrize("words, restored, empty, again", [
    (COMPOSE_WORDS, "b never ready; rolled back: a is healthy and routable again",
     "b never ready; no member was running before, so GPU group 'gpu0' has no active member",
     "b never ready; rollback to a ALSO failed: gone. GPU group 'gpu0' has no healthy member"),
    (SCALED_WORDS, "b never ready; rolled back: a runs again and is ready",
     "b never ready; no member ran before, so GPU group 'gpu0' has no active member",
     "b never ready; rollback to a ALSO failed: gone"),
], ids=["compose", "scaled"])
def test_each_target_kind_words_the_one_rollback_its_way(words, restored, empty, again):
    fx = FakeEffects(RESTART, words, fail={("gate", "b"): "never ready"})
    with pytest.raises(SwitchFailed, match=f"^{restored}$"):
        run(fx)
    fx = FakeEffects(GroupState("gpu0", {"a": "stopped", "b": "stopped"}), words,
                     fail={("gate", "b"): "never ready"})
    with pytest.raises(SwitchFailed, match=f"^{empty}$"):
        run(fx)
    fx = FakeEffects(RESTART, words, fail={("gate", "b"): "never ready", ("start", "a"): "gone"})
    with pytest.raises(SwitchFailed, match=f"^{again}$") as exc:
        run(fx)
    assert exc.value.restored is False


def test_a_target_that_cannot_even_be_stopped_leaves_the_group_unrestored():
    fx = FakeEffects(GroupState("gpu0", {"a": "stopped", "b": "stopped"}), SCALED_WORDS,
                     fail={("gate", "b"): "never ready", ("retire", "b"): "scale refused"})
    with pytest.raises(SwitchFailed, match="stopping b ALSO failed: scale refused") as exc:
        run(fx)
    assert exc.value.restored is False
