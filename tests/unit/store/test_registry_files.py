"""`stackctl add` end to end on a copy of the shipped registry: checked before writing
(refused with located errors, nothing written), backed up, comments kept byte for byte."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from ruamel.yaml import YAML

from stackctl.cli import cli
from stackctl.errors import PlanError
from stackctl.registry.load import MAPPINGS, PROVIDERS, STACK
from stackctl.store.registry_files import BACKUPS, take_backup

NOW = datetime(2026, 12, 6, 17, 0, 0, tzinfo=UTC)


def run(runner, *args):
    return runner.invoke(cli, list(args), catch_exceptions=False)


def snapshot(cfg):
    return {n: (cfg / n).read_bytes() for n in (PROVIDERS, MAPPINGS, STACK)}


def only_added(before: bytes, after: bytes) -> str:
    """The lines `after` adds; every other byte of `before` is where it was."""
    a, b = before.decode().splitlines(True), after.decode().splitlines(True)
    i = 0
    while i < len(a) and a[i] == b[i]:
        i += 1
    n = len(b) - len(a)
    assert n > 0 and "".join(b[:i] + b[i + n:]).encode() == before
    return "".join(b[i:i + n])


def test_add_provider_keeps_every_other_byte_and_backs_up(runner, registry_dir):
    cfg = registry_dir("shipped")
    before = snapshot(cfg)
    r = run(runner, "add", "provider", "llamacpp", "phi", "-m", "phi-4", "--gpus", "0")
    assert r.exit_code == 0, r.output
    after = snapshot(cfg)
    block = YAML(typ="safe").load(only_added(before[PROVIDERS], after[PROVIDERS]))
    assert block["phi"]["type"] == "llama_cpp"
    assert only_added(before[MAPPINGS], after[MAPPINGS]) == "  phi-4:\n    provider: phi\n"
    assert after[STACK] == before[STACK]
    backups = list((cfg / BACKUPS).iterdir())
    assert len(backups) == 1 and (backups[0] / PROVIDERS).read_bytes() == before[PROVIDERS]
    assert f"config/{BACKUPS}/{backups[0].name}" in r.output
    assert "next: `stackctl models import FILE.gguf --provider phi` (it loads " \
           "/models/phi-4.gguf), then `stackctl up -p phi`" in r.output
    assert run(runner, "validate").exit_code == 0


def test_only_the_warnings_the_edit_brings_are_shown(runner, registry_dir):
    registry_dir("shipped")
    r = run(runner, "add", "provider", "ollama", "o2", "--gpus", "0")  # no model: unrouted
    assert r.exit_code == 0, r.output
    assert "warning: providers.o2: no mapping routes a model to 'o2'" in r.output
    r = run(runner, "add", "model", "m2", "-p", "ollama", "--backend", "qwen2.5-coder:7b")
    assert r.exit_code == 0 and "warning" not in r.output  # o2's is not this edit's


def test_an_edit_that_would_not_validate_is_refused_with_its_errors(runner, registry_dir):
    cfg = registry_dir("shipped")
    before = snapshot(cfg)
    # a port the gateway already publishes
    r = run(runner, "add", "provider", "ollama", "o2", "-m", "m1", "--port", "4000")
    assert r.exit_code == 1, r.output
    assert "the edited registry would have 1 error(s)" in r.output
    # the line in the edited text: providers.yaml has 158 lines, a blank one, then `o2:`
    assert "config/providers.yaml:162:5: error: providers.o2.base_url: host port 4000" \
        in r.output
    assert "host port 4000 is already used by the gateway" in r.output
    assert "nothing was written" in r.output and "Traceback" not in r.output
    assert snapshot(cfg) == before and not (cfg / BACKUPS).exists()
    r = run(runner, "add", "model", "x", "--provider", "nope")
    assert r.exit_code == 1 and "no provider 'nope'" in r.output
    assert snapshot(cfg) == before


def test_dry_run_prints_the_diff_and_writes_nothing(runner, registry_dir):
    cfg = registry_dir("shipped")
    before = snapshot(cfg)
    r = run(runner, "add", "model", "qwen3:0.6b", "-p", "ollama", "--dry-run")
    assert r.exit_code == 0, r.output
    assert '+  "qwen3:0.6b":\n+    provider: ollama\n' in r.output
    assert "+      - name: qwen3:0.6b\n" in r.output and "nothing written" in r.output
    assert snapshot(cfg) == before


def test_add_model_creates_a_missing_mappings_file(runner, registry_dir):
    cfg = registry_dir("offline")
    (cfg / MAPPINGS).unlink()
    r = run(runner, "-C", str(cfg), "add", "model", "smollm2", "-p", "llama_cpp")
    assert r.exit_code == 0, r.output
    assert (cfg / MAPPINGS).read_text() == "exact_matches:\n  smollm2:\n    provider: llama_cpp\n"


def test_backups_are_pruned_like_the_gateways(tmp_path):
    now = datetime(2026, 12, 6, 12, tzinfo=UTC)
    for i in range(15):
        (tmp_path / PROVIDERS).write_text(f"v{i}\n")
        take_backup(tmp_path, [PROVIDERS], now + timedelta(seconds=i))
    kept = sorted(p.name for p in (tmp_path / BACKUPS).iterdir())
    assert len(kept) == 10 and kept[-1] == "20261206T120014Z"
    assert (tmp_path / BACKUPS / kept[-1] / PROVIDERS).read_text() == "v14\n"


def test_a_backup_holds_the_files_named_and_a_tie_gets_2(tmp_path):
    (tmp_path / PROVIDERS).write_text("p")
    (tmp_path / STACK).write_text("s")
    first, second = (take_backup(tmp_path, [PROVIDERS, STACK], NOW) for _ in range(2))
    assert first.name == "20261206T170000Z" and second.name == "20261206T170000Z-2"
    assert sorted(p.name for p in first.iterdir()) == [PROVIDERS, STACK]
    assert (first / PROVIDERS).read_text() == "p"
    assert not [p for p in first.parent.iterdir() if p.name.endswith(".tmp")]


def test_a_failed_backup_leaves_nothing(tmp_path, monkeypatch):
    (tmp_path / PROVIDERS).write_text("p")

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("stackctl.store.registry_files.shutil.copy2", full)
    with pytest.raises(PlanError, match="No space left on device; nothing was changed"):
        take_backup(tmp_path, [PROVIDERS], NOW)
    assert list((tmp_path / BACKUPS).iterdir()) == []


def test_edits_hold_the_folders_lock_and_dry_runs_do_not(runner, registry_dir, monkeypatch):
    from stackctl.store import registry_files

    cfg = registry_dir("shipped")
    (cfg / PROVIDERS).chmod(0o600)
    monkeypatch.setattr(registry_files, "LOCK_WAIT", 0.3)
    with registry_files.edit_lock(cfg):  # another `stackctl add` of the same folder
        r = run(runner, "add", "model", "m", "-p", "ollama", "--backend", "x", "--dry-run")
        assert r.exit_code == 0, r.output
        r = run(runner, "add", "model", "m", "-p", "ollama", "--backend", "x")
        assert r.exit_code == 1 and "another `stackctl add` has been editing" in r.output
    r = run(runner, "add", "model", "m", "-p", "ollama", "--backend", "x")
    assert r.exit_code == 0, r.output
    assert (cfg / PROVIDERS).stat().st_mode & 0o777 == 0o600  # the user's mode, kept
