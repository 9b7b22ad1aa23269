"""`ps`, `load`, `unload`, `pin`, `unpin` through the CLI: exit codes, --json on stdout, clear
errors. Docker is the fake adapter; `ps` reads top's fake Sources; nothing reaches an
engine or a gateway."""

from __future__ import annotations

import json

import pytest

from stackctl.cli import cli
from tests.fakes.docker import FakeDocker
from tests.fakes.top import FakeSources, exposition, stack_status

OFFLINE = "examples/offline/config"


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("STACKCTL_STATE_DIR", str(tmp_path / "state"))
    for var in ("STACKCTL_CONFIG_DIR", "STACKCTL_TIMEOUT", "STACKCTL_LOCK_WAIT"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def no_network(monkeypatch):
    """The local engine's Effects told how readiness and routing look."""
    import stackctl.residency.client as client
    from stackctl.targets.compose_switch import ComposeEffects

    def effects(reg, docker, opts, say):  # type: ignore[no-untyped-def]
        return ComposeEffects(reg, docker, opts, say, routable=lambda m, d: True,
                              ready=lambda m: False)
    monkeypatch.setattr(client, "compose_effects", effects)


def run(runner, *args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(cli, list(args), catch_exceptions=False)


def test_load_of_a_member_in_an_exclusive_group_is_a_switch(runner, offline, fake, no_network):
    r = run(runner, "-C", OFFLINE, "load", "dolphin")
    assert r.exit_code == 0, r.output
    assert "loaded vllm-dolphin in GPU group 'gpu0'" in r.output
    assert fake.state["vllm-qwen"].state == "exited" and fake.state["vllm-dolphin"].running
    r = run(runner, "-C", OFFLINE, "load", "dolphin-uncensored-vllm", "--json")
    doc = json.loads(r.stdout)
    assert r.exit_code == 0 and doc["ok"] and doc["noop"] and doc["member"] == "vllm-dolphin"


def test_load_dry_run_prints_the_plan(runner, offline, fake, no_network):
    r = run(runner, "-C", OFFLINE, "load", "dolphin", "--dry-run")
    assert r.exit_code == 0, r.output
    assert "plan: stop vllm-qwen (graceful)" in r.output and fake.calls == []


def test_load_refuses_to_evict_a_pinned_member(runner, offline, fake, no_network):
    assert run(runner, "-C", OFFLINE, "pin", "qwen").exit_code == 0
    r = run(runner, "-C", OFFLINE, "load", "dolphin", "--json")
    assert r.exit_code == 1
    doc = json.loads(r.stdout)
    assert "does not fit beside the pinned vllm-qwen" in doc["error"]
    assert fake.state["vllm-qwen"].running  # nothing was stopped


def test_unload_stops_a_member_and_refuses_a_pinned_one(runner, offline, fake, no_network):
    r = run(runner, "-C", OFFLINE, "pin", "vllm-qwen")
    assert r.exit_code == 0 and "vllm-qwen is pinned" in r.output
    r = run(runner, "-C", OFFLINE, "unload", "qwen")
    assert r.exit_code == 1 and "`stackctl unpin vllm-qwen` first" in r.output
    assert run(runner, "-C", OFFLINE, "unpin", "qwen").exit_code == 0
    r = run(runner, "-C", OFFLINE, "unload", "qwen", "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["plan"]["verb"] == "stop" and not doc["noop"]
    assert fake.state["vllm-qwen"].state == "exited"
    # its model now goes to its fallback
    routing = json.loads((offline.parent / "compose" / "litellm" / "gpu-routing.json")
                         .read_text())
    assert "qwen-coder-vllm" in routing["divert"]
    r = run(runner, "-C", OFFLINE, "unload", "qwen")
    assert r.exit_code == 0 and "not loaded: nothing to do" in r.output


def test_unknown_models_list_the_known_ones(runner, offline, fake):
    for verb in ("load", "unload", "pin", "unpin"):
        r = run(runner, "-C", OFFLINE, verb, "nope", "--json")
        assert r.exit_code == 1, (verb, r.output)
        doc = json.loads(r.stdout)
        assert "known: vllm-qwen (qwen-coder-vllm), vllm-dolphin" in doc["error"], verb


def test_no_engine_is_exit_4(runner, offline, monkeypatch, no_network):
    from stackctl.docker.adapter import EngineUnreachable

    class Down(FakeDocker):
        def containers(self, service=None, group=None):  # type: ignore[no-untyped-def]
            raise EngineUnreachable("no Docker engine answers")

    monkeypatch.setattr("stackctl.docker.adapter.Docker", lambda *a, **k: Down())
    assert run(runner, "-C", OFFLINE, "load", "dolphin").exit_code == 4
    assert run(runner, "-C", OFFLINE, "unload", "qwen").exit_code == 4


def test_pin_json(runner, offline):
    r = run(runner, "-C", OFFLINE, "pin", "dolphin", "--json")
    assert json.loads(r.stdout) == {"ok": True, "member": "vllm-dolphin", "group": "gpu0",
                                    "pinned": True, "changed": True,
                                    "pinned_members": ["vllm-dolphin"]}


def test_ps_table_and_json(runner, offline, fake, monkeypatch):
    from stackctl.registry.load import load_registry

    reg = load_registry(offline)
    metrics = exposition({}) + ('stackctl_gateway_held_requests{requested_model='
                                '"dolphin-uncensored-vllm",pid="1"} 2.0\n')
    src = FakeSources(stack_status(reg, {"vllm-dolphin": "stopped"}), metrics)
    monkeypatch.setattr("stackctl.top.live.live_sources", lambda reg, docker: src)
    fake.log_text = {"stackctl-offline-litellm-1": [
        'stackctl-request {"time": %f, "status": "success", "deployment": '
        '"qwen-coder-vllm@vllm-qwen"}' % (src.now - 30)]}
    r = run(runner, "-C", OFFLINE, "ps")
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[0].startswith("NAME") and lines[1].split()[:3] == ["vllm-qwen", "gpu0", "awake"]
    assert "30s ago" in lines[1]
    r = run(runner, "-C", OFFLINE, "ps", "--json")
    doc = json.loads(r.stdout)
    rows = {row["name"]: row for row in doc["rows"]}
    assert rows["vllm-dolphin"]["waiting"] == 2.0 and rows["vllm-dolphin"]["state"] == "stopped"
    assert rows["vllm-qwen"]["idle_s"] == 30.0
