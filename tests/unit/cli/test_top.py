"""`stackctl top` at the CLI: --once --json prints one Snapshot; the interactive path is
the only one that loads Textual. Sources are fakes (tests/fakes/top.py); the one run of
the real path meets no engine (DOCKER_HOST points nowhere) and a closed gateway port."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
from click.testing import CliRunner

from stackctl.cli import cli
from stackctl.registry.load import load_registry
from tests.fakes.top import FakeSources, Load, exposition, stack_status
from tests.paths import REPO


@pytest.fixture
def offline(registry_dir):
    return registry_dir("offline", with_output=True)


def test_once_json_prints_one_snapshot(offline, monkeypatch):
    reg = load_registry(offline)
    src = FakeSources(stack_status(reg, {"vllm-dolphin": "asleep"}, alerts=[]),
                      exposition({"smollm2": Load([0.05] * 4, output_tokens=40)}))
    monkeypatch.setattr("stackctl.top.live.live_sources", lambda reg, docker: src)
    slept: list[float] = []

    def sleep(seconds: float) -> None:  # the two readings, 1 s apart on the fake clock
        slept.append(seconds)
        src.now += seconds
    monkeypatch.setattr("stackctl.cli.top.time.sleep", sleep)
    r = CliRunner().invoke(cli, ["top", "-C", str(offline), "--once", "--json"],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert slept == [1.0] and doc["window_s"] == 1.0
    assert {"taken_at", "project", "engine", "gateway", "groups", "models", "switches",
            "alerts", "banners"} <= set(doc)
    assert [(m["name"], m["state"]) for m in doc["groups"][0]["members"]] == [
        ("vllm-qwen", "awake"), ("vllm-dolphin", "asleep")]
    assert doc["models"][0]["model"] == "smollm2" and doc["models"][0]["rps"] == 0.0
    assert len(src.asked) == 2


def test_once_as_text(offline, monkeypatch):
    reg = load_registry(offline)
    src = FakeSources(stack_status(reg, {}), ConnectionError("refused"))
    monkeypatch.setattr("stackctl.top.live.live_sources", lambda reg, docker: src)
    monkeypatch.setattr("stackctl.cli.top.time.sleep", lambda s: None)
    r = CliRunner().invoke(cli, ["top", "-C", str(offline), "--once"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "GPU groups" in r.output and "2 members awake" in r.output


def test_json_needs_once(offline):
    r = CliRunner().invoke(cli, ["top", "-C", str(offline), "--json"])
    assert r.exit_code == 2 and "--json needs --once" in r.output


def test_a_stack_elsewhere_is_refused(offline):
    stack = offline / "stack.yaml"
    stack.write_text(stack.read_text() + "deploy: {target: swarm}\n")
    r = CliRunner().invoke(cli, ["top", "-C", str(offline), "--once", "--json"])
    assert r.exit_code == 1 and "deployed to swarm" in r.output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_once_json_runs_the_real_path_without_textual(offline, tmp_path):
    """No engine, no gateway: the snapshot says so, and Textual is never imported."""
    stack = offline / "stack.yaml"
    stack.write_text(stack.read_text().replace(
        "gateway:\n", f"gateway:\n  host_port: {_free_port()}\n", 1))
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock",
           "STACKCTL_STATE_DIR": str(tmp_path / "state")}
    p = subprocess.run([sys.executable, "-X", "importtime", "-m", "stackctl", "top", "-C",
                        str(offline), "--once", "--json", "--interval", "0.2"],
                       capture_output=True, text=True, env=env, cwd=REPO, timeout=60)
    assert p.returncode == 0, p.stderr[-3000:]
    doc = json.loads(p.stdout)
    assert doc["engine"] is False and doc["gateway"]["up"] is False
    assert [m["state"] for m in doc["groups"][0]["members"]] == ["unknown", "unknown"]
    imported = {line.rsplit("|", 1)[1].strip().split(".")[0]
                for line in p.stderr.splitlines() if line.startswith("import time:")}
    assert "stackctl" in imported and "textual" not in imported
