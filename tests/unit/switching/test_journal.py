"""The switch journal: appended by every switch on the local engine, read by `top`."""

from __future__ import annotations

import pytest

from stackctl.switching import journal
from stackctl.switching.journal import SwitchRecord
from stackctl.switching.loop import SwitchFailed, SwitchOptions
from stackctl.targets.compose_switch import switch_compose
from tests.fakes.docker import FakeDocker


def _rec(i: int) -> SwitchRecord:
    return SwitchRecord(at=float(i), group="gpu0", previous="a", target="b", active="b",
                        success=True, rolled_back=False, seconds=1.0, reason="stackctl switch")


def test_append_and_read_newest_first(tmp_path):
    path = journal.journal_path(tmp_path, "p")
    assert journal.recent(path) == []
    for i in range(5):
        assert journal.append(path, _rec(i)) is None
    path.write_text(path.read_text() + "not json\n")  # a hand edit is skipped
    assert [r.at for r in journal.recent(path, limit=3)] == [4.0, 3.0, 2.0]


def test_trimmed_when_it_grows(tmp_path, monkeypatch):
    monkeypatch.setattr(journal, "KEEP", 3)
    path = tmp_path / "j.jsonl"
    for i in range(20):
        journal.append(path, _rec(i))
    assert len(path.read_text().splitlines()) <= 2 * 3 * 300 // 100
    assert journal.recent(path, limit=1)[0].at == 19.0


def test_an_unwritable_journal_is_reported_not_raised(tmp_path):
    problem = journal.append(tmp_path / "missing" / "j.jsonl", _rec(0))
    assert problem is not None and "not written" in problem


def test_every_switch_on_the_local_engine_is_journaled(offline, tmp_path):
    """A switch, a rolled-back one and a no-op check: two lines, newest first, with what
    asked for them (the switching conftest points STACKCTL_STATE_DIR at tmp_path/state)."""
    docker = FakeDocker(running={"vllm-qwen": {"org.stackctl.gpu-group": "gpu0"}})
    switch_compose(offline, docker, SwitchOptions(member="dolphin", reason="stackctl top"),
                   ready=lambda s: False, routable=lambda m, d: True)
    switch_compose(offline, docker, SwitchOptions(member="dolphin"),  # a no-op: no line
                   ready=lambda s: False, routable=lambda m, d: True)
    docker.behaviour["vllm-qwen"] = "exit"
    with pytest.raises(SwitchFailed):
        switch_compose(offline, docker, SwitchOptions(member="qwen", timeout=0.5),
                       ready=lambda s: False, routable=lambda m, d: True)
    back, first = journal.recent(journal.journal_path(tmp_path / "state", offline.stack.project))
    assert (first.previous, first.target, first.active, first.success, first.reason) == (
        "vllm-qwen", "vllm-dolphin", "vllm-dolphin", True, "stackctl top")
    assert (back.target, back.active, back.success, back.rolled_back, back.reason) == (
        "vllm-qwen", "vllm-dolphin", False, True, "stackctl switch")
    assert first.seconds >= 0 and back.at >= first.at
    # the counters the Pushgateway carries: two switches (manual), one rolled back
    from stackctl.monitoring.switch_counts import counts_path, load

    counts = load(counts_path(tmp_path / "state", offline.stack.project)).groups["gpu0"]
    assert counts.switches == {"demand": 0, "idle": 0, "manual": 2, "rollback": 1}
    assert counts.count == 2
