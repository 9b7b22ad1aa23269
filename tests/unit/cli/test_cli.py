"""The CLI as click/Compose users expect it: -C before or after the command, one exit-code
scheme (in every --help and the README), --json on stdout only, -q/-v, shell completion.

Docker is the fake adapter (tests/fakes/docker.py) put where the commands construct the
real one; nothing here reaches an engine, a gateway or a port.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

import click
import pytest

from stackctl.cli import EXIT_CODES, cli
from tests.fakes.docker import FakeDocker
from tests.paths import REPO

OFFLINE = "examples/offline/config"
COMMANDS = ("validate", "generate", "up", "down", "status", "switch")


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("STACKCTL_STATE_DIR", str(tmp_path / "state"))
    for var in ("STACKCTL_CONFIG_DIR", "STACKCTL_TIMEOUT", "STACKCTL_LOCK_WAIT"):
        monkeypatch.delenv(var, raising=False)


def run(runner, *args: str, env: dict | None = None):
    return runner.invoke(cli, list(args), catch_exceptions=False, env=env)


def unreachable(*a, **k):
    from stackctl.docker.adapter import EngineUnreachable

    raise EngineUnreachable("no Docker engine answers (Cannot connect to the Docker daemon)")


# -- -C before and after the command ---------------------------------------------------------

def test_config_dir_before_and_after_the_command(runner, offline):
    for args in (["-C", OFFLINE, "validate"], ["validate", "-C", OFFLINE],
                 ["--config-dir", OFFLINE, "generate", "--check"]):
        r = run(runner, *args)
        assert r.exit_code == 0, (args, r.output)


def test_command_config_dir_wins_over_the_group_and_the_env(runner, offline, monkeypatch):
    r = run(runner, "-C", "nowhere", "validate", "-C", OFFLINE)
    assert r.exit_code == 0, r.output
    assert r.output.splitlines()[-1].startswith(f"{OFFLINE}: ok")
    monkeypatch.setenv("STACKCTL_CONFIG_DIR", "nowhere")
    r = run(runner, "-C", OFFLINE, "validate")  # the group's -C beats the env var
    assert r.exit_code == 0, r.output
    r = run(runner, "validate")
    assert r.exit_code == 1 and "nowhere: error: no such folder" in r.output


def test_folder_holding_config_gets_a_did_you_mean(runner, offline):
    parent = str(Path(OFFLINE).parent)
    for args in (["-C", parent, "status"], ["status", "-C", parent], ["-C", parent, "switch", "x"],
                 ["-C", parent, "generate"]):
        r = run(runner, *args)
        assert r.exit_code == 1, r.output
        assert f"did you mean -C {OFFLINE}?" in r.output, r.output
        assert "Traceback" not in r.output
    r = run(runner, "-C", parent, "validate", "--json")
    assert r.exit_code == 1
    assert f"did you mean -C {OFFLINE}?" in json.loads(r.stdout)["errors"][0]["hint"]


@pytest.mark.parametrize("where", ["before", "after"])
@pytest.mark.parametrize("command", ["validate", "generate", "status", "up", "down"])
def test_a_file_or_a_missing_folder_exits_1_not_2(runner, offline, where, command):
    for path, message in ((f"{OFFLINE}/stack.yaml", "is a file, not a folder"),
                          ("nowhere", "no such folder")):
        args = ["-C", path, command] if where == "before" else [command, "-C", path]
        r = run(runner, *args)
        assert r.exit_code == 1, (args, r.output)
        assert message in r.output and "Usage:" not in r.output
    r = run(runner, "-C", f"{OFFLINE}/stack.yaml", "validate")
    assert f"did you mean -C {OFFLINE}?" in r.output


def test_default_config_dir_is_checked_too(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = run(runner, "status")
    assert r.exit_code == 1
    assert "-C config: no such folder" in r.output


# -- exit codes ------------------------------------------------------------------------------

def help_of(runner, *command: str) -> str:
    r = run(runner, *command, "--help", env={"COLUMNS": "80"})
    assert r.exit_code == 0, r.output
    return r.output


def exit_code_rows(text: str) -> dict[int, str]:
    block = text.split("Exit codes:\n", 1)[1]
    return {int(m.group(1)): m.group(2) for m in re.finditer(r"^\s+(\d+)\s+(.*)$", block, re.M)}


@pytest.mark.parametrize("command", COMMANDS)
def test_every_help_lists_its_exit_codes(runner, command):
    text = help_of(runner, command)
    rows = exit_code_rows(text)
    assert {0, 1, 2, 130} <= set(rows), text
    assert "usage" in rows[2]
    assert set(rows) <= set(EXIT_CODES)
    needs_docker = command in ("up", "down", "status", "switch")
    assert (4 in rows) == needs_docker
    assert (3 in rows) == (command == "status")
    assert (5 in rows) == (command == "switch")
    assert all(len(line) <= 80 for line in text.splitlines()), text


def test_group_help_shows_the_whole_scheme_and_the_readme_too(runner):
    assert set(exit_code_rows(help_of(runner))) == set(EXIT_CODES) == {0, 1, 2, 3, 4, 5, 130}
    readme = (REPO / "README.md").read_text()
    section = readme.split("### Exit codes", 1)[1].split("\n## ", 1)[0]
    for code in EXIT_CODES:
        assert re.search(rf"^\| {code} \|", section, re.M), f"exit code {code} not in README"


def test_validate_exit_codes(runner, offline, yaml_edit):
    assert run(runner, "validate", "-C", OFFLINE).exit_code == 0
    yaml_edit(offline / "providers.yaml",
              lambda d: d["providers"]["ollama"].__setitem__("type", "olama"))
    assert run(runner, "validate", "-C", OFFLINE).exit_code == 1


def test_generate_exit_codes(runner, offline):
    assert run(runner, "generate", "-C", OFFLINE, "--check").exit_code == 0
    compose = offline.parent / "compose" / "compose.yaml"
    compose.write_text(compose.read_text() + "# edited\n")
    r = run(runner, "generate", "-C", OFFLINE, "--check")
    assert r.exit_code == 1 and "1 generated file(s) are stale" in r.output


def status_of(healthy: bool, gateway: bool):
    from stackctl.targets.compose_status import StackStatus

    return StackStatus.model_validate({
        "project": "stackctl-offline",
        "gateway": {"url": "http://127.0.0.1:4000", "healthy": gateway, "models": []},
        "services": [{"name": "litellm", "role": "gateway", "profile": None,
                      "state": "running" if gateway else "exited", "health": "healthy",
                      "port": 4000, "latency_ms": 1.0, "ready": gateway}],
        "gpu_groups": {"gpu0": {"active": "vllm-qwen", "members": ["vllm-qwen", "vllm-dolphin"]}},
        "healthy": healthy})


@pytest.mark.parametrize("healthy, gateway, code", [(True, True, 0), (False, True, 1),
                                                    (False, False, 3)],
                         ids=["healthy", "degraded", "gateway-down"])
def test_status_exit_codes(runner, offline, fake, monkeypatch, healthy, gateway, code):
    monkeypatch.setattr("stackctl.targets.compose_status.collect_status",
                        lambda reg, docker, **k: status_of(healthy, gateway))
    for extra in ([], ["--json"]):
        r = run(runner, "-C", OFFLINE, "status", *extra)
        assert r.exit_code == code, r.output
    assert json.loads(r.stdout)["healthy"] is healthy


@pytest.mark.parametrize("command", [["status"], ["down"], ["switch", "dolphin"], ["up"],
                                     ["switch", "dolphin", "--dry-run"], ["reload", "--yes"],
                                     ["reload", "--dry-run"]])
def test_no_docker_engine_exits_4(runner, offline, fake, monkeypatch, command):
    monkeypatch.setattr(fake, "containers", unreachable)
    monkeypatch.setattr(fake, "down", unreachable)
    monkeypatch.setattr("stackctl.targets.compose_up.gateway_for", lambda reg: pytest.fail("no gateway"))
    r = run(runner, "-C", OFFLINE, *command)
    assert r.exit_code == 4, r.output
    assert "no Docker engine answers" in r.output and "Traceback" not in r.output
    r = run(runner, "-C", OFFLINE, *command, "--json")
    assert r.exit_code == 4
    error = r.stderr.split("Error: ", 1)[1].strip()
    assert json.loads(r.stdout) == {"ok": False, "error": error, "exit_code": 4}


def test_docker_constructor_failing_exits_4(runner, offline, monkeypatch):
    monkeypatch.setattr("stackctl.docker.adapter.Docker", unreachable)
    assert run(runner, "-C", OFFLINE, "status").exit_code == 4


@pytest.fixture
def switch_without_network(monkeypatch):
    """The local engine's switch as it is, told how readiness and routing look (no gateway,
    no port)."""
    import stackctl.targets.compose_switch as ops

    monkeypatch.setattr(ops, "switch_compose", functools.partial(
        ops.switch_compose, ready=lambda member: False, routable=lambda model, dep: True))


def test_switch_exit_codes(runner, offline, fake, switch_without_network):
    r = run(runner, "-C", OFFLINE, "switch", "dolphin")
    assert r.exit_code == 0, r.output
    assert "switched GPU group 'gpu0' to vllm-dolphin" in r.output
    r = run(runner, "-C", OFFLINE, "switch", "dolphin")
    assert r.exit_code == 0 and "already the active member" in r.output
    r = run(runner, "-C", OFFLINE, "switch", "dolphn")
    assert r.exit_code == 1 and "did you mean 'vllm-dolphin'" in r.output

    fake.behaviour["vllm-qwen"] = "exit"  # qwen fails; back to dolphin, which is fine
    r = run(runner, "-C", OFFLINE, "switch", "qwen", "--timeout", "0.5")
    assert r.exit_code == 1, r.output
    assert "rolled back" in r.output

    fake.behaviour["vllm-dolphin"] = "exit"  # both fail: the group is left without a member
    r = run(runner, "-C", OFFLINE, "switch", "qwen", "--timeout", "0.5", "--json")
    assert r.exit_code == 5, r.output
    doc = json.loads(r.stdout)
    assert doc["ok"] is False and doc["restored"] is False and doc["exit_code"] == 5
    assert "ALSO failed" in doc["error"]


def test_switch_while_another_holds_the_lock_exits_1(runner, offline, fake):
    from stackctl.store.lock import stack_lock

    with stack_lock("stackctl-offline", "up"):
        r = run(runner, "-C", OFFLINE, "switch", "dolphin")
    assert r.exit_code == 1 and "in progress" in r.output


def fake_bring_up(outcome: str = "ok"):
    from stackctl.health.gate import GateFailure
    from stackctl.targets.compose_plan import UpPlan
    from stackctl.targets.compose_up import ImagesMissing, UpResult

    def bring_up(reg, docker, opts, on_change=lambda *a: None, probe=None, say=lambda s: None,
                 gateway_config_changed=False, configs_changed=()):
        if outcome == "images":
            raise ImagesMissing("1 image(s) missing, nothing was started:\n  stackctl-local/x:1")
        for service in ("litellm", "redis"):
            on_change(service, "waiting", 0.0)
        if outcome == "gate":
            raise GateFailure("redis", "not healthy after 1s (state running, health starting)")
        for service in ("litellm", "redis"):
            on_change(service, "ready", 1.5)
        plan = UpPlan(profiles=["llamacpp"], services=["litellm", "redis", "llama_cpp"],
                      expected_models=["smollm2"])
        return UpResult(plan=plan, ready_after={"litellm": 1.5, "redis": 1.5, "llama_cpp": 2.0},
                        gateway_url="http://127.0.0.1:4000")
    return bring_up


@pytest.mark.parametrize("outcome, code, text", [
    ("ok", 0, "is up"), ("images", 1, "nothing was started"),
    ("gate", 1, "redis not healthy after 1s")])
def test_up_exit_codes(runner, offline, fake, monkeypatch, outcome, code, text):
    monkeypatch.setattr("stackctl.targets.compose_up.bring_up", fake_bring_up(outcome))
    r = run(runner, "-C", OFFLINE, "up")
    assert r.exit_code == code, r.output
    assert text in r.output and "Traceback" not in r.output


def test_down_exit_codes(runner, offline, fake):
    r = run(runner, "-C", OFFLINE, "down")
    assert r.exit_code == 0, r.output
    assert ("down", ("llamacpp", "ollama", "vllm-qwen", "vllm-dolphin", "monitoring"),
            False) in fake.calls
    fake.down = lambda profiles, volumes=False: None  # containers survive
    fake._make("redis", "healthy")
    r = run(runner, "-C", OFFLINE, "down")
    assert r.exit_code == 1 and "containers still present: redis" in r.output


def test_interrupt_exits_130(monkeypatch, capsys):
    import stackctl.cli as entry

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    def exit_(code):
        raise SystemExit(code)

    monkeypatch.setattr(entry.cli, "main", interrupted)
    monkeypatch.setattr(entry, "_exit", exit_)
    with pytest.raises(SystemExit) as exc:
        entry.main()
    assert exc.value.code == 130 and "Interrupted." in capsys.readouterr().err


# -- --json: stdout is one JSON document -------------------------------------------------------

def only_json(r) -> dict:
    """stdout parses as one document; progress, if any, went to stderr."""
    return json.loads(r.stdout)


def test_generate_json(runner, offline):
    out = offline.parent / "compose"
    (out / "compose.yaml").unlink()
    r = run(runner, "-C", OFFLINE, "generate", "--json")
    assert r.exit_code == 0, r.output
    doc = only_json(r)
    assert doc["ok"] and not doc["check"]
    assert {f["path"]: f["status"] for f in doc["files"]} == {
        "examples/offline/compose/compose.yaml": "written",
        "examples/offline/compose/alertmanager/alertmanager.yml": "unchanged",
        "examples/offline/compose/prometheus/prometheus.yml": "unchanged",
        "examples/offline/compose/litellm/config.yaml": "unchanged",
        "examples/offline/compose/litellm/stackctl_trace.py": "unchanged",
        "examples/offline/compose/litellm/stackctl_routing.py": "unchanged"}
    (out / "compose.yaml").write_text("stale\n")
    r = run(runner, "-C", OFFLINE, "generate", "--check", "--json")
    assert r.exit_code == 1
    doc = only_json(r)
    assert doc["ok"] is False and doc["check"]
    stale = [f for f in doc["files"] if f["status"] == "stale"]
    assert [f["path"] for f in stale] == ["examples/offline/compose/compose.yaml"]
    assert "-stale" in stale[0]["diff"]
    assert "are stale" in r.stderr


def test_validate_json(runner, offline):
    r = run(runner, "-C", OFFLINE, "validate", "--json")
    assert r.exit_code == 0 and only_json(r)["ok"] is True


def test_up_json_has_the_result_and_never_the_key(runner, offline, fake, monkeypatch):
    monkeypatch.setattr("stackctl.targets.compose_up.bring_up", fake_bring_up())
    r = run(runner, "-C", OFFLINE, "up", "--json")
    assert r.exit_code == 0, r.output
    doc = only_json(r)
    assert doc["ok"] and doc["profiles"] == ["llamacpp"]
    assert doc["services"] == ["litellm", "redis", "llama_cpp"]
    assert doc["ready_after"]["llama_cpp"] == 2.0
    assert doc["gateway"]["url"] == "http://127.0.0.1:4000"
    assert doc["gateway"]["endpoint"] == "http://127.0.0.1:4000/v1"
    assert doc["expected_models"] == ["smollm2"]
    key_env = doc["gateway"]["key_env"]
    key = (offline.parent / ".env").read_text().split(f"{key_env}=", 1)[1].split()[0]
    assert key and key not in r.stdout and key not in r.stderr
    assert "ready" in r.stderr  # the progress went to stderr
    r = run(runner, "-C", OFFLINE, "up", "--json", "-q")
    assert r.exit_code == 0 and r.stderr == "" and only_json(r)["ok"]


def test_up_failure_json(runner, offline, fake, monkeypatch):
    monkeypatch.setattr("stackctl.targets.compose_up.bring_up", fake_bring_up("gate"))
    r = run(runner, "-C", OFFLINE, "up", "--json")
    assert r.exit_code == 1
    doc = only_json(r)
    assert doc["ok"] is False and "redis not healthy" in doc["error"]


def test_down_json(runner, offline, fake):
    r = run(runner, "-C", OFFLINE, "down", "--json", "-p", "vllm-qwen")
    assert r.exit_code == 0, r.output
    doc = only_json(r)
    assert doc["ok"] and doc["removed"] == ["vllm-qwen"] and doc["left"] == []
    r = run(runner, "-C", OFFLINE, "down", "--json")
    assert r.exit_code == 0 and only_json(r)["profiles"] == []


def test_status_json_errors_are_json_too(runner, offline):
    r = run(runner, "-C", "nowhere", "status", "--json")
    assert r.exit_code == 1
    assert only_json(r)["ok"] is False


def test_switch_json_dry_run_noop_and_done(runner, offline, fake, switch_without_network):
    r = run(runner, "-C", OFFLINE, "switch", "dolphin", "--dry-run", "--json")
    assert r.exit_code == 0, r.output
    doc = only_json(r)
    assert doc["ok"] and doc["dry_run"]
    assert doc["plan"] == {"group": "gpu0", "target": "vllm-dolphin", "stop": ["vllm-qwen"],
                           "noop": False, "mode": "restart", "level": 1, "sleep": [],
                           "wake": False, "keep": []}
    assert doc["steps"][0] == "stop vllm-qwen (graceful)" and doc["timings"] == {}

    r = run(runner, "-C", OFFLINE, "switch", "qwen", "--json")
    doc = only_json(r)
    assert r.exit_code == 0 and doc["plan"]["noop"] and "already" in doc["steps"][0]

    r = run(runner, "-C", OFFLINE, "switch", "dolphin", "--json")
    assert r.exit_code == 0, r.output
    doc = only_json(r)
    assert doc["plan"]["target"] == "vllm-dolphin" and not doc["dry_run"]
    assert set(doc["timings"]) == {"stop", "start", "ready", "routable", "total"}
    assert "starting vllm-dolphin" in r.stderr


# -- -q and -v ---------------------------------------------------------------------------------

def test_switch_quiet_prints_only_the_final_line(runner, offline, fake, switch_without_network):
    r = run(runner, "-C", OFFLINE, "switch", "dolphin", "-q")
    assert r.exit_code == 0, r.output
    assert r.output.splitlines() == [r.output.strip()]
    assert r.output.startswith("switched GPU group 'gpu0' to vllm-dolphin")


def test_switch_verbose_shows_each_state_change_with_times(runner, offline, fake,
                                                           switch_without_network):
    r = run(runner, "-C", OFFLINE, "switch", "dolphin", "-v")
    assert r.exit_code == 0, r.output
    assert re.search(r"^\s*\d+\.\d\ds vllm-dolphin: running, healthy$", r.output, re.M), r.output
    assert re.search(r"^\s*\d+\.\d\ds stopping vllm-qwen$", r.output, re.M), r.output
    assert r.output.splitlines()[-1].startswith("switched GPU group")


def test_up_quiet_and_verbose(runner, offline, fake, monkeypatch):
    import stackctl.targets.compose_up as ops

    class Gateway:
        url = "http://127.0.0.1:4000"

        def wait_models(self, models, timeout):
            return []

    monkeypatch.setattr(ops, "gateway_for", lambda reg: Gateway())
    monkeypatch.setattr(ops, "bring_up", functools.partial(ops.bring_up, probe=lambda s: False))
    fake.images = {}
    fake.state.clear()
    r = run(runner, "-C", OFFLINE, "up", "-q")
    assert r.exit_code == 0, r.output
    assert r.output.splitlines() == [
        "stack 'stackctl-offline' is up: profiles llamacpp, ollama, vllm-qwen; "
        "endpoint http://127.0.0.1:4000/v1"]

    fake.state.clear()
    r = run(runner, "-C", OFFLINE, "up", "-v")
    assert r.exit_code == 0, r.output
    assert re.search(r"^\s*\d+\.\d\ds vllm-qwen: running, healthy$", r.output, re.M), r.output
    assert re.search(r"vllm-qwen ready after \d", r.output)
    assert "up took" in r.output and "endpoint: http://127.0.0.1:4000/v1" in r.output


def test_quiet_and_verbose_together_is_a_usage_error(runner, offline, fake):
    r = run(runner, "-C", OFFLINE, "down", "-q", "-v")
    assert r.exit_code == 2 and "exclude each other" in r.output


def test_watched_reports_who_is_still_awaited():
    from stackctl.cli.common import Watched

    lines, now = [], [0.0]
    docker = FakeDocker(running={"redis": {}})
    docker._make("litellm", "never")
    watched = Watched(docker, lines.append, waiting=lambda: {"litellm": "waiting",
                                                             "ollama": "waiting"},
                      every=2.0, clock=lambda: now[0])
    watched.containers()
    assert lines == ["redis: running, healthy", "litellm: running, starting"]
    now[0] = 2.5
    watched.containers()
    assert lines[-1] == "waiting for litellm (running, starting), ollama (no container yet)"
    assert watched.project == "p"  # everything else is the adapter's


# -- environment variables -------------------------------------------------------------------

def test_env_vars_are_shown_and_used(runner, offline, fake, monkeypatch, switch_without_network):
    assert "STACKCTL_TIMEOUT" in help_of(runner, "switch")
    assert "STACKCTL_CONFIG_DIR" in help_of(runner)
    monkeypatch.setenv("STACKCTL_CONFIG_DIR", OFFLINE)
    monkeypatch.setenv("STACKCTL_TIMEOUT", "0")
    r = run(runner, "switch", "dolphin")
    assert r.exit_code == 2, r.output  # a bad value from the environment is a usage error
    assert "(env var: 'STACKCTL_TIMEOUT')" in r.output
    monkeypatch.setenv("STACKCTL_TIMEOUT", "5")
    r = run(runner, "switch", "dolphin")
    assert r.exit_code == 0, r.output


# -- shell completion --------------------------------------------------------------------------

def complete(args: list[str], incomplete: str = "") -> list[str]:
    from click.shell_completion import ShellComplete

    comp = ShellComplete(cli, {}, "stackctl", "_STACKCTL_COMPLETE")
    return [c.value for c in comp.get_completions(args, incomplete)]


def test_completion_of_members_profiles_and_the_config_dir(monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    members = ["vllm-qwen", "vllm-dolphin"]
    profiles = ["llamacpp", "ollama", "vllm-qwen", "vllm-dolphin", "monitoring"]
    assert complete(["-C", OFFLINE, "switch"]) == members
    assert complete(["switch", "-C", OFFLINE]) == members
    assert complete(["switch", "-C", OFFLINE], "dol") == ["vllm-dolphin"]  # like switch itself
    assert complete(["-C", OFFLINE, "up", "-p"]) == profiles
    assert complete(["-C", OFFLINE, "up", "--profile"], "vllm-") == ["vllm-qwen", "vllm-dolphin"]
    assert complete(["down", "-C", OFFLINE, "-p"], "m") == ["monitoring"]
    monkeypatch.setenv("STACKCTL_CONFIG_DIR", OFFLINE)
    assert complete(["switch"]) == members
    assert capsys.readouterr() == ("", "")


def test_completion_of_services():
    from stackctl.cli.common import _services
    from stackctl.registry.load import load_registry

    services = _services(load_registry(REPO / OFFLINE))
    assert services[:2] == ["litellm", "redis"]
    assert {"llama_cpp", "ollama", "vllm-qwen", "vllm-dolphin", "prometheus"} <= set(services)


@pytest.mark.parametrize("broken", ["missing", "file", "invalid-yaml", "bad-types"])
def test_completion_on_a_broken_registry_is_empty_and_silent(registry_dir, capsys, broken):
    cfg = registry_dir("offline")
    if broken == "missing":
        (cfg / "providers.yaml").unlink()
    elif broken == "file":
        cfg = cfg / "stack.yaml"
    elif broken == "invalid-yaml":
        (cfg / "providers.yaml").write_text("providers: [\n")
    else:
        (cfg / "providers.yaml").write_text("providers: {a: {type: nope, models: 3}}\n")
    for args in (["-C", str(cfg), "switch"], ["-C", str(cfg), "up", "-p"],
                 ["down", "-C", str(cfg), "-p"]):
        assert complete(args) == []
    assert capsys.readouterr() == ("", "")


def test_bash_completion_through_the_real_entry_point(tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "_STACKCTL_COMPLETE": "bash_complete",
           "COMP_WORDS": f"stackctl -C {OFFLINE} switch ", "COMP_CWORD": "4"}
    p = subprocess.run([sys.executable, "-c", "from stackctl.cli import main; main()"],
                       env=env, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["plain,vllm-qwen", "plain,vllm-dolphin"]
    env["_STACKCTL_COMPLETE"] = "bash_source"
    p = subprocess.run([sys.executable, "-c", "from stackctl.cli import main; main()"],
                       env=env, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert "_stackctl_completion" in p.stdout


def test_click_exceptions_keep_their_exit_code():
    from stackctl.cli.common import Failed

    assert Failed("x").exit_code == 1 and Failed("x", 4).exit_code == 4
    assert isinstance(Failed("x"), click.ClickException)


# -- issue #22: up refuses before it writes -------------------------------------------------

def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("env", [None, "LITELLM_MASTER_KEY=\n"])
def test_up_without_an_engine_writes_nothing(runner, registry_dir, fake, env):
    """No engine answers: exit 4 before .env gets a secret or a file is generated."""
    cfg = registry_dir("offline")
    if env is not None:
        (cfg.parent / ".env").write_text(env)
    before = _tree(cfg.parent)
    fake.engine = None
    r = run(runner, "-C", OFFLINE, "up")
    assert r.exit_code == 4, r.output
    assert "no Docker engine answers" in r.output
    assert _tree(cfg.parent) == before
    assert not (cfg.parent / "compose").exists()


@pytest.mark.parametrize("line, why", [
    ("LITELLM_MASTER_KEY=sk-1234", "a well-known example"),
    ("REDIS_PASSWORD='changeme'", "a well-known example"),
    ("GRAFANA_ADMIN_PASSWORD=abc12", "only 5 characters"),
    ("LITELLM_MASTER_KEY=aaaaaaaaaaaaaaaaaaaaaaab", "made of 2 different characters"),
])
def test_up_and_validate_refuse_a_guessable_secret(runner, offline, fake, line, why):
    env = offline.parent / ".env"
    env.write_text(f"# secrets\n{line}\n")
    before = _tree(offline.parent)
    value = line.split("=", 1)[1].strip("'")
    r = run(runner, "-C", OFFLINE, "up")
    assert r.exit_code == 1, r.output
    var = line.split("=")[0]
    assert f".env:2: error: {var}: {var} is {why}" in r.output, r.output
    assert value not in r.output
    assert _tree(offline.parent) == before and not fake.calls
    r = run(runner, "-C", OFFLINE, "validate", "--json")
    doc = json.loads(r.stdout)
    assert r.exit_code == 1 and value not in r.stdout
    assert [(e["file"], e["line"], e["path"]) for e in doc["errors"]] == [(
        "examples/offline/.env", 2, var)]


def test_validate_locates_an_unreadable_env_line_without_its_value(runner, offline):
    secret = "sk-live-" + "Zq7" * 12
    (offline.parent / ".env").write_text(f"A=1\nLITELLM_MASTER_KEY=${{{secret}\n{secret}: x\n")
    r = run(runner, "-C", OFFLINE, "validate", "--json")
    assert r.exit_code == 1 and secret not in r.output
    [error] = json.loads(r.stdout)["errors"]
    assert (error["file"], error["line"], error["path"]) == \
        ("examples/offline/.env", 2, "LITELLM_MASTER_KEY")
    assert "invalid reference" in error["message"]


def _deploy_to(cfg: Path, target: str) -> None:
    stack = cfg / "stack.yaml"
    stack.write_text(stack.read_text() + f"\ndeploy:\n  target: {target}\n")


@pytest.mark.parametrize("engine, code, message", [
    (None, 4, "no Docker engine answers at the Swarm manager (tcp://10.0.0.9:2376)"),
    ("inactive", 1, "tcp://10.0.0.9:2376 is not a Swarm manager (swarm state: inactive)"),
])
def test_up_on_a_swarm_without_a_manager_writes_nothing(runner, registry_dir, monkeypatch,
                                                        engine, code, message):
    """The Swarm target asks its manager before .env gets a secret or a file is generated."""
    from tests.fakes.swarm import FakeSwarm

    cfg = registry_dir("offline")
    _deploy_to(cfg, "swarm")
    swarm = FakeSwarm({})
    swarm.engine = engine
    monkeypatch.setattr("stackctl.targets.swarm.Swarm", lambda reg: swarm)
    monkeypatch.setattr("stackctl.docker.adapter.Docker",
                        lambda *a, **k: pytest.fail("the local engine was asked"))
    before = _tree(cfg.parent)
    r = run(runner, "-C", OFFLINE, "up")
    assert r.exit_code == code, r.output
    assert message in r.output and "Traceback" not in r.output
    assert swarm.log == [("ping",)]  # no secret created, nothing deployed
    assert _tree(cfg.parent) == before
    assert not (cfg.parent / "compose").exists() and not (cfg.parent / ".env").exists()


def test_up_on_kubernetes_refuses_before_it_writes(runner, registry_dir, monkeypatch):
    """`up` does not drive Kubernetes: it says so before .env or a file is written (and asks
    neither kubectl nor the local engine)."""
    cfg = registry_dir("offline")
    _deploy_to(cfg, "kubernetes")
    monkeypatch.setattr("stackctl.targets.kubernetes.kubectl",
                        lambda *a, **k: pytest.fail("kubectl was run"))
    monkeypatch.setattr("stackctl.docker.adapter.Docker",
                        lambda *a, **k: pytest.fail("the local engine was asked"))
    before = _tree(cfg.parent)
    r = run(runner, "-C", OFFLINE, "up")
    assert r.exit_code == 1, r.output
    assert "`stackctl up` does not drive Kubernetes" in r.output and "Traceback" not in r.output
    assert _tree(cfg.parent) == before
    assert not (cfg.parent / "compose").exists() and not (cfg.parent / ".env").exists()
