"""The switch journal: appended by every switch on the local engine, read by `top`."""

from __future__ import annotations

from stackctl.switching import journal
from stackctl.switching.journal import SwitchRecord


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
