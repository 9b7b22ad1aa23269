"""`generate` writes its files as one set (stackctl/store/writer.py), on real files.

The old set is the committed output of the shipped registry; the new one comes from the
same registry with edits that change three files (compose, gateway config, Prometheus).
A failure injected at each step of the writer leaves every file byte-identical; symlinks
are never followed; concurrent runs end with one whole set; a SIGKILLed run leaves the old
set (before the commit point) or one the next run finishes, and the next run removes its
temporary files.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from stackctl.cli import cli
from stackctl.store import writer
from tests.paths import REPO

PY = sys.executable


def generate(runner, *args: str):
    return runner.invoke(cli, ["generate", *args], catch_exceptions=False)


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every entry below `folder` (hidden ones and symlinks included): bytes and mtime."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_symlink():
            out[str(p.relative_to(folder))] = (os.readlink(p).encode(), 0)
        elif p.is_file():
            out[str(p.relative_to(folder))] = (p.read_bytes(), p.stat().st_mtime_ns)
    return out


def texts(folder: Path) -> dict[str, bytes]:
    return {k: v[0] for k, v in snapshot(folder).items()}


def edit_registry(cfg: Path, yaml_edit) -> None:
    def change(d):
        d["gateway"]["host_port"] = 4001
        d["cache"]["ttl"] = 600
        d["monitoring"]["scrape_interval"] = "30s"
    yaml_edit(cfg / "stack.yaml", change)


@pytest.fixture
def stack(registry_dir, yaml_edit, runner, tmp_path) -> dict[str, Path | dict]:
    """Output holding the old set; `cfg` (edited) renders the new one, `old_cfg` the old."""
    cfg = registry_dir("shipped", with_output=True)
    out = cfg.parent / "compose"
    # the committed output, brought up to date with the renderer as it is now
    assert generate(runner, "-C", str(cfg)).exit_code == 0
    # the old registry, elsewhere, named `config` too (generated headers name the folder)
    old_cfg = tmp_path / "old" / "config"
    shutil.copytree(cfg, old_cfg)

    def same_places(d):
        d["output_dir"], d["env_file"] = "../../compose", "../../.env"
        d["monitoring"]["config_dir"] = "../../monitoring"
        d["monitoring"]["dashboards_dir"] = "../../grafana-dashboards"
    yaml_edit(old_cfg / "stack.yaml", same_places)
    r = generate(runner, "--check", "-C", str(old_cfg))
    assert r.exit_code == 0, r.output  # it renders exactly the old set
    edit_registry(cfg, yaml_edit)
    old = texts(out)
    # the new set, rendered once into a scratch copy
    scratch = tmp_path / "scratch"
    shutil.copytree(cfg, scratch / "config")
    assert generate(runner, "-C", str(scratch / "config")).exit_code == 0
    new = texts(scratch / "compose")
    shutil.rmtree(scratch)
    changed = {k for k in new if new[k] != old.get(k)}
    assert {"compose.yaml", "litellm/config.yaml", "prometheus/prometheus.yml"} <= changed
    return {"cfg": cfg, "old_cfg": old_cfg, "out": out, "old": old, "new": new}


# -- a failure at each step changes nothing ------------------------------------------------------

def _nth(n: int, when: Callable[..., bool], exc: OSError, real: Callable) -> Callable:
    calls = {"n": 0}

    def fake(*args, **kwargs):
        if when(*args):
            calls["n"] += 1
            if calls["n"] == n:
                raise exc
        return real(*args, **kwargs)
    return fake


def _temp_fds(monkeypatch) -> set[int]:
    """Record the descriptors of the writer's temporary files as it opens them."""
    fds: set[int] = set()
    real = os.open

    def spy(path, flags, *rest, **kw):
        fd = real(path, flags, *rest, **kw)
        if ".stackctl-" in str(path):
            fds.add(fd)
        return fd
    monkeypatch.setattr(os, "open", spy)
    return fds


def inject(step: str, n: int, monkeypatch) -> str:
    """Make the writer's `n`-th call of `step` fail; return what the message must say."""
    if step == "create":  # a read-only folder (root ignores modes: say it as the kernel does)
        monkeypatch.setattr(os, "open", _nth(
            n, lambda path, *a: ".stackctl-" in str(path), OSError(errno.EROFS, "ro"), os.open))
        return "read-only"
    fds = _temp_fds(monkeypatch)
    if step == "write":  # the disk fills up
        monkeypatch.setattr(os, "write", _nth(
            n, lambda fd, *a: fd in fds, OSError(errno.ENOSPC, "full"), os.write))
        return "free some disk space"
    if step == "fsync":
        monkeypatch.setattr(os, "fsync", _nth(
            n, lambda fd, *a: fd in fds, OSError(errno.EIO, "io"), os.fsync))
        return "EIO"
    if step == "journal":  # the commit point itself: the journal's rename
        monkeypatch.setattr(writer, "_replace", _nth(
            n, lambda src, dst: dst.name == writer.JOURNAL, OSError(errno.EACCES, "no"),
            writer._replace))
        return "writable"
    raise AssertionError(step)


@pytest.mark.parametrize(("step", "n"), [
    ("create", 1), ("create", 3), ("write", 1), ("write", 3), ("fsync", 2), ("journal", 1)])
def test_a_failure_before_the_renames_changes_nothing(stack, runner, step, n):
    before = snapshot(stack["out"])
    with pytest.MonkeyPatch.context() as mp:
        remedy = inject(step, n, mp)
        r = generate(runner, "-C", str(stack["cfg"]))
    assert r.exit_code == 1, r.output
    assert "Traceback" not in r.output
    assert "cannot write compose/" in r.output and remedy in r.output, r.output
    assert "nothing was changed" in r.output
    assert snapshot(stack["out"]) == before  # same bytes, same mtimes, no temporary left
    # and the cause gone, the next run writes the new set whole
    assert generate(runner, "-C", str(stack["cfg"])).exit_code == 0
    assert texts(stack["out"]) == stack["new"]


def test_a_directory_where_a_file_belongs(stack, runner):
    target = stack["out"] / "litellm" / "config.yaml"
    target.unlink()
    target.mkdir()
    before = snapshot(stack["out"])
    r = generate(runner, "-C", str(stack["cfg"]))
    assert r.exit_code == 1, r.output
    assert "cannot write compose/litellm/config.yaml: it is a directory" in r.output
    assert "Traceback" not in r.output
    assert snapshot(stack["out"]) == before


def test_a_failed_rename_is_finished_by_the_next_run(stack, runner):
    """After the commit point a failure cannot undo, so the next run completes the set."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(writer, "_replace", _nth(
            2, lambda src, dst: True, OSError(errno.EACCES, "no"), writer._replace))
        r = generate(runner, "-C", str(stack["cfg"]))
    assert r.exit_code == 1 and "finishes the interrupted set" in r.output, r.output
    r = generate(runner, "--check", "-C", str(stack["cfg"]))
    assert r.exit_code == 1 and "did not finish" in r.output, r.output
    # even a run for the OLD registry first finishes the set, then writes its own
    assert generate(runner, "-C", str(stack["old_cfg"])).exit_code == 0
    assert texts(stack["out"]) == stack["old"]


# -- symlinks are never followed ------------------------------------------------------------------

def test_a_symlink_at_the_target_is_replaced_not_followed(stack, runner, tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("SECRET-outside-value\n")
    target = stack["out"] / "litellm" / "config.yaml"
    target.unlink()
    target.symlink_to(outside)
    r = generate(runner, "--check", "-C", str(stack["cfg"]))
    assert r.exit_code == 1 and "SECRET-outside-value" not in r.output, r.output
    r = generate(runner, "-C", str(stack["cfg"]))
    assert r.exit_code == 0, r.output
    assert outside.read_text() == "SECRET-outside-value\n"
    assert not target.is_symlink() and texts(stack["out"]) == stack["new"]


def test_a_symlink_at_a_temporary_name_is_not_followed(stack, runner, tmp_path, monkeypatch):
    outside = tmp_path / "outside.txt"
    outside.write_text("untouched\n")
    planted = stack["out"] / "litellm" / f".config.yaml.stackctl-{os.getpid()}-deadbeef.tmp"
    planted.symlink_to(outside)
    names = iter(["deadbeef"] * 50)
    real = writer.secrets.token_hex
    monkeypatch.setattr(writer.secrets, "token_hex", lambda n: next(names, None) or real(n))
    r = generate(runner, "-C", str(stack["cfg"]))
    assert r.exit_code == 0, r.output
    assert outside.read_text() == "untouched\n" and planted.is_symlink()
    assert texts(stack["out"])["litellm/config.yaml"] == stack["new"]["litellm/config.yaml"]


def test_a_symlinked_folder_leading_outside_is_refused(stack, runner, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    shutil.move(stack["out"] / "litellm", elsewhere)
    (stack["out"] / "litellm").symlink_to(elsewhere)
    before = texts(elsewhere)
    r = generate(runner, "-C", str(stack["cfg"]))
    assert r.exit_code == 1, r.output
    assert "cannot write into compose/litellm: it leads outside compose" in r.output
    assert texts(elsewhere) == before


# -- processes: concurrency and SIGKILL ------------------------------------------------------------

DRIVER = """
import os, sys, time
from pathlib import Path
from stackctl.store import writer

stall, slow = os.environ.get("STALL", ""), float(os.environ.get("SLOW", "0"))
counts = {"temp": 0, "rename": 0}

def hooked(kind, real):
    def call(*args, **kwargs):
        counts[kind] += 1
        if stall == f"{kind}:{counts[kind]}":
            Path(os.environ["MARK"]).write_text("stalled")
            time.sleep(600)
        if kind == "rename":
            time.sleep(slow)
        return real(*args, **kwargs)
    return call

writer._write_temp = hooked("temp", writer._write_temp)
writer._replace = hooked("rename", writer._replace)
from stackctl.cli import main
sys.argv = ["stackctl", *sys.argv[1:]]
main()
"""


def driver(tmp_path: Path, cfg: Path, **env: str) -> subprocess.Popen:
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    return subprocess.Popen([PY, str(script), "generate", "-C", str(cfg)], cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": str(REPO), **env},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def leftovers(out: Path) -> list[str]:
    return [p.name for p in out.rglob(".*") if p.name != "."]


def test_concurrent_runs_end_with_one_whole_set(stack, tmp_path):
    """Four runs, two registries, started together; each renames slowly (0.15 s per file),
    so unserialized they would interleave. Whichever takes the lock last wins, whole."""
    for _ in range(2):
        procs = []
        for cfg in (stack["cfg"], stack["old_cfg"], stack["cfg"], stack["old_cfg"]):
            procs.append(driver(tmp_path, cfg, SLOW="0.15"))
            time.sleep(0.05)
        for p in procs:
            output, _ = p.communicate(timeout=120)
            assert p.returncode == 0, output
        assert texts(stack["out"]) in (stack["old"], stack["new"])
        assert leftovers(stack["out"]) == []


def kill_at(tmp_path: Path, cfg: Path, stall: str) -> None:
    mark = tmp_path / "stalled"
    mark.unlink(missing_ok=True)
    p = driver(tmp_path, cfg, STALL=stall, MARK=str(mark))
    deadline = time.monotonic() + 60
    while not mark.exists():
        assert p.poll() is None, p.communicate()[0]
        assert time.monotonic() < deadline, "the driver never reached its stall point"
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=30)


@pytest.mark.parametrize("stall", ["temp:2", "temp:4"])
def test_sigkill_before_the_commit_leaves_the_old_set(stack, runner, tmp_path, stall):
    kill_at(tmp_path, stack["cfg"], stall)
    on_disk = {k: v for k, v in texts(stack["out"]).items() if ".stackctl-" not in k}
    assert on_disk == stack["old"]
    assert leftovers(stack["out"]), "the killed run left its temporary files"
    r = generate(runner, "--check", "-C", str(stack["old_cfg"]))
    assert r.exit_code == 0, r.output
    assert generate(runner, "-C", str(stack["old_cfg"])).exit_code == 0
    assert leftovers(stack["out"]) == []  # the next run removed them
    assert texts(stack["out"]) == stack["old"]


@pytest.mark.parametrize("stall", ["rename:2", "rename:3"])  # rename:1 is the journal
def test_sigkill_after_the_commit_is_finished_by_the_next_run(stack, runner, tmp_path, stall):
    kill_at(tmp_path, stack["cfg"], stall)
    r = generate(runner, "--check", "-C", str(stack["cfg"]))
    assert r.exit_code == 1 and "did not finish" in r.output, r.output
    r = generate(runner, "-C", str(stack["cfg"]))
    assert r.exit_code == 0, r.output
    assert texts(stack["out"]) == stack["new"]
    assert leftovers(stack["out"]) == []
