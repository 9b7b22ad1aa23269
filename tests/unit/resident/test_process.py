"""Finding the scheduler: its supervisor holds the pid file's lock while it lives."""

from __future__ import annotations

import fcntl
import os

from stackctl.resident import process
from stackctl.resident.paths import pid_file


def test_running_is_the_lock_holder(tmp_path, monkeypatch):
    monkeypatch.setenv("STACKCTL_STATE_DIR", str(tmp_path))
    assert process.running("p") is None  # no file
    path = pid_file("p")
    path.write_text("4242\n")
    assert process.running("p") is None  # a file left by a dead one: nobody holds it
    with open(path) as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        # another open file description: what another process would see
        assert process.running("p") == 4242
    assert process.running("p") is None


def test_fingerprint_follows_the_registry_files(tmp_path):
    for name in ("providers.yaml", "model-mappings.yaml", "stack.yaml"):
        (tmp_path / name).write_text(f"{name}: 1\n")
    before = process.fingerprint(tmp_path)
    assert process.fingerprint(tmp_path) == before
    (tmp_path / "stack.yaml").write_text("project: other\n")
    assert process.fingerprint(tmp_path) != before
    os.remove(tmp_path / "stack.yaml")  # stack.yaml is optional
    assert process.fingerprint(tmp_path) not in (before, "")


def test_a_long_log_is_moved_aside_when_it_starts_again(tmp_path):
    log = tmp_path / "p.scheduler.log"
    log.write_bytes(b"x" * (process.LOG_KEEP + 1))
    process._rotate(log)
    assert not log.exists() and (tmp_path / "p.scheduler.log.1").stat().st_size > 0
    log.write_text("short\n")
    process._rotate(log)
    assert log.read_text() == "short\n"
