"""`reload` as data and against a fake gateway: retention, the check, backups, rollback."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest

from stackctl.docker.adapter import EngineUnreachable
from stackctl.errors import PlanError
from stackctl.gateway.reload import (
    WORKERS_STARTED,
    ReloadFailed,
    ReloadOptions,
    gateway_files,
    list_backups,
    parse_id,
    reload_gateway,
    retained,
)
from stackctl.registry.load import load_registry
from stackctl.render.files import render_all
from stackctl.store.generated import write_all
from stackctl.store.lock import stack_lock
from tests.fakes.docker import FakeDocker
from tests.paths import REPO

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def ids(*ages: timedelta) -> list[str]:
    return [(NOW - age).strftime("%Y%m%dT%H%M%SZ") for age in ages]


# -- retention ------------------------------------------------------------------------------------

def test_retention_keeps_the_ten_newest():
    every_minute = ids(*(timedelta(minutes=m) for m in range(25)))
    kept = retained(every_minute, NOW)
    assert kept == set(every_minute[:10])  # all from today: the newest of today is among them


def test_retention_keeps_the_newest_of_each_of_the_last_seven_days_and_four_weeks():
    hourly_for_40_days = ids(*(timedelta(hours=h) for h in range(40 * 24)))  # newest first
    kept = retained(hourly_for_40_days, NOW)

    def newest_of(key):  # type: ignore[no-untyped-def]
        return {key(parse_id(i)): i for i in reversed(hourly_for_40_days)}

    daily = {i for day, i in newest_of(lambda t: t.date()).items()
             if (NOW.date() - day).days < 7}
    weekly = {i for week, i in newest_of(lambda t: t.isocalendar()[:2]).items()
              if (NOW.isocalendar()[1] - week[1]) % 53 < 4}
    assert kept == set(hourly_for_40_days[:10]) | daily | weekly
    assert len(daily) == 7 and len(weekly) == 4


def test_retention_of_nothing_is_nothing():
    assert retained([], NOW) == set()


# -- the operation against a fake gateway ----------------------------------------------------------

class FakeGateway(FakeDocker):
    """The gateway container: a check result, signals, worker start lines in its log."""

    def __init__(self, check_errors: list[str] | None = None, serves: bool = True):
        super().__init__(running={"litellm": {}})
        self.check_errors = check_errors or []
        self.serves = serves  # new workers start (False: they never do)
        self.booted = 0
        self.started = time.time() + 1  # when the oldest worker started: after every file

    def run_python(self, image, script, args, mounts):  # type: ignore[no-untyped-def]
        self.calls.append(("check", image))
        return json.dumps({"ok": not self.check_errors, "errors": self.check_errors})

    def exec(self, container: str, command: list[str]) -> str:
        if command[:2] == ["python3", "-c"] and command[2] == WORKERS_STARTED:
            return f"{self.started}\n"
        raise AssertionError(f"reload runs no other command: {command}")

    def signal(self, container: str, signal: str) -> None:
        self.calls.append(("signal", signal))
        if signal == "TTOU":  # the old workers go: the oldest is a new one
            self.started = time.time() + 1
        self.handled = f"Handling signal: {signal.lower()}\n"
        if signal == "TTIN" and (self.serves or len(
                [c for c in self.calls if c == ("signal", "TTIN")]) > 2):
            self.booted += 1

    def logs_since(self, container, since):  # type: ignore[no-untyped-def]
        return getattr(self, "handled", "") + "Application startup complete.\n" * self.booted


@pytest.fixture
def reg(tmp_path, monkeypatch):
    monkeypatch.setenv("STACKCTL_STATE_DIR", str(tmp_path / "state"))
    root = tmp_path / "examples" / "offline"
    shutil.copytree(REPO / "examples/offline/config", root / "config")
    shutil.copytree(REPO / "examples/offline/compose", root / "compose")
    mappings = root / "config" / "model-mappings.yaml"
    mappings.write_text(mappings.read_text().replace(
        "    provider: llama_cpp\n", "    provider: llama_cpp\n    aliases: [tiny]\n", 1))
    return load_registry(root / "config")


def config_on_disk(reg) -> str:  # type: ignore[no-untyped-def]
    return (reg.output_dir / "litellm" / "config.yaml").read_text()


def lists(models: list[str]):  # type: ignore[no-untyped-def]
    return lambda: list(models)


def test_refused_config_changes_nothing(reg):
    before = config_on_disk(reg)
    docker = FakeGateway(check_errors=["router_settings.bogus is not a setting of litellm.Router"])
    with pytest.raises(PlanError, match=r"(?s)refused; nothing was changed.*bogus"):
        reload_gateway(reg, docker, ReloadOptions(), now=lambda: NOW)
    assert config_on_disk(reg) == before and list_backups(reg) == []
    assert not [c for c in docker.calls if c[0] == "signal"]


def test_dry_run_checks_and_shows_the_diff_only(reg):
    before = config_on_disk(reg)
    docker = FakeGateway()
    result = reload_gateway(reg, docker, ReloadOptions(dry_run=True), now=lambda: NOW)
    assert "+    tiny: smollm2" in result.diff and not result.applied
    assert config_on_disk(reg) == before and ("check", "stackctl-local/litellm:1.106.2") \
        in docker.calls


def test_reload_backs_up_writes_and_replaces_the_workers_new_ones_first(reg):
    before = config_on_disk(reg)
    docker = FakeGateway()
    listed = ["tiny", "smollm2", "qwen2.5-coder:7b", "qwen-coder-vllm", "dolphin-uncensored-vllm"]
    result = reload_gateway(reg, docker, ReloadOptions(timeout=2), models=lists(listed),
                            now=lambda: NOW)
    assert result.applied and "tiny: smollm2" in config_on_disk(reg)
    signals = [c[1] for c in docker.calls if c[0] == "signal"]
    assert signals == ["TTIN", "TTIN", "TTOU", "TTOU"]  # new workers serve before old ones go
    (backup,) = list_backups(reg)
    assert backup.id == result.backup == "20261129T120000Z"
    assert (backup.path / "config.yaml").read_text() == before and not backup.current
    assert reload_gateway(reg, docker, ReloadOptions(), now=lambda: NOW).changed == []


def test_reload_after_generate_applies_what_the_gateway_does_not_run_yet(reg):
    # `generate` wrote the edited config; the running workers started before it and still
    # run the old one: reload must replace them, not say there is nothing to reload
    write_all([f for f in gateway_files(render_all(reg), reg) if f.is_stale()], reg.output_dir)
    docker = FakeGateway()
    docker.started = (reg.output_dir / "litellm" / "config.yaml").stat().st_mtime - 5
    listed = ["tiny", "smollm2", "qwen2.5-coder:7b", "qwen-coder-vllm", "dolphin-uncensored-vllm"]
    result = reload_gateway(reg, docker, ReloadOptions(timeout=2), models=lists(listed),
                            now=lambda: NOW)
    assert result.changed == result.unloaded == ["config.yaml"] and result.applied
    assert [c[1] for c in docker.calls if c[0] == "signal"] == ["TTIN", "TTIN", "TTOU", "TTOU"]
    assert reload_gateway(reg, docker, ReloadOptions(), now=lambda: NOW).changed == []


def test_workers_started_reads_a_time_from_proc():
    # the script the gateway's python3 runs, run here: Linux's /proc as in the container
    out = subprocess.run([sys.executable, "-c", WORKERS_STARTED], capture_output=True,
                         text=True, check=True).stdout
    assert 0 < float(out) <= time.time()


def test_dry_run_neither_takes_nor_waits_for_the_lock(reg):
    docker = FakeGateway()
    with stack_lock(reg.stack.project, "up"):
        result = reload_gateway(reg, docker, ReloadOptions(dry_run=True), now=lambda: NOW)
    assert result.changed == ["config.yaml"] and not result.applied


def test_no_engine_is_not_reported_as_a_refused_config(reg):
    # EngineUnreachable reaches the CLI (exit 4) instead of "the new config is refused" (1)
    docker = FakeGateway()
    unreachable = EngineUnreachable("no Docker engine answers")

    def fail(*a, **k):  # type: ignore[no-untyped-def]
        raise unreachable
    docker.containers = fail  # type: ignore[method-assign]
    with pytest.raises(EngineUnreachable):
        reload_gateway(reg, docker, ReloadOptions(dry_run=True), now=lambda: NOW)
    docker = FakeGateway()
    docker.run_python = fail  # type: ignore[method-assign]
    with pytest.raises(EngineUnreachable):
        reload_gateway(reg, docker, ReloadOptions(dry_run=True), now=lambda: NOW)


def test_new_config_that_never_serves_is_rolled_back(reg):
    before = config_on_disk(reg)
    docker = FakeGateway(serves=False)  # the new workers never start; the restored ones do
    old_models = ["smollm2", "qwen2.5-coder:7b", "qwen-coder-vllm", "dolphin-uncensored-vllm"]
    with pytest.raises(ReloadFailed, match="did not serve.*previous config serves again") as exc:
        reload_gateway(reg, docker, ReloadOptions(timeout=0.5), models=lists(old_models),
                       now=lambda: NOW)
    assert exc.value.restored
    assert config_on_disk(reg) == before  # the previous config is back on disk
    signals = [c[1] for c in docker.calls if c[0] == "signal"]
    assert signals[:4] == ["TTIN", "TTIN", "TTOU", "TTOU"] and len(signals) == 8
    assert list_backups(reg)[0].current  # and it is the backup


class BootFailingGateway(FakeGateway):
    """New workers exit at start-up (LiteLLM refuses a config with no master key); after a
    restart the gateway boots on whatever config is on disk again."""

    def __init__(self) -> None:
        super().__init__()
        self.failing = True

    def start(self, container: str) -> None:
        super().start(container)
        self.failing, self.booted = False, 2

    def logs_since(self, container, since):  # type: ignore[no-untyped-def]
        if not self.failing:
            return super().logs_since(container, since)
        return (getattr(self, "handled", "") + "Traceback (most recent call last):\n"
                '  File "proxy_server.py", line 1471, in proxy_startup_event\n'
                "litellm.proxy.auth.master_key_boot_check.UnsafeMasterKeyError: LiteLLM "
                "proxy refused to start: no master key is set\n"
                "[ERROR] Application startup failed. Exiting.\n")


def test_new_workers_that_cannot_start_restart_the_gateway_on_the_previous_config(reg):
    # gunicorn stops every worker once one fails to boot: no TTOU is sent to an arbiter that
    # is going down; the gateway is restarted on the restored files instead
    before = config_on_disk(reg)
    docker = BootFailingGateway()
    old_models = ["smollm2", "qwen2.5-coder:7b", "qwen-coder-vllm", "dolphin-uncensored-vllm"]
    with pytest.raises(ReloadFailed, match="could not start: LiteLLM proxy refused to start: "
                       "no master key is set.*previous config serves again") as exc:
        reload_gateway(reg, docker, ReloadOptions(timeout=5), models=lists(old_models),
                       now=lambda: NOW)
    assert exc.value.restored and config_on_disk(reg) == before
    assert [c[0] if c[0] != "signal" else c[1] for c in docker.calls
            if c[0] in ("signal", "stop", "start")] == ["TTIN", "TTIN", "stop", "start"]


def test_restore_unknown_backup_names_the_known_ones(reg):
    with pytest.raises(PlanError, match="no backup 'nope'.*backups: none"):
        reload_gateway(reg, FakeGateway(), ReloadOptions(restore="nope"), now=lambda: NOW)


def test_up_gives_a_running_gateway_new_workers_when_its_config_changed(reg, monkeypatch):
    # `up` after a registry edit: the gateway is not recreated (no downtime); its workers
    # are replaced the way `reload` does it
    from stackctl.targets import compose_up as up

    class Gw:
        url = "http://127.0.0.1:4000"

        def models(self):  # type: ignore[no-untyped-def]
            return ["smollm2", "qwen2.5-coder:7b", "qwen-coder-vllm", "dolphin-uncensored-vllm"]

        def wait_models(self, expected, timeout):  # type: ignore[no-untyped-def]
            return []
    monkeypatch.setattr(up, "gateway_for", lambda reg: Gw())
    docker = FakeGateway()
    up.bring_up(reg, docker, up.UpOptions(timeout=5), probe=lambda s: True,
                gateway_config_changed=True)
    assert [c[1] for c in docker.calls if c[0] == "signal"] == ["TTIN", "TTIN", "TTOU", "TTOU"]
    docker = FakeGateway()
    up.bring_up(reg, docker, up.UpOptions(timeout=5), probe=lambda s: True)
    assert not [c for c in docker.calls if c[0] == "signal"]  # nothing changed: no signal
