"""Faults on the fake engine (issue 12): a switch that finds its target already running, the
states an interrupted switch leaves, a full disk while `.env` or a backup is written."""

from __future__ import annotations

import errno
import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from stackctl.errors import PlanError
from stackctl.registry.load import load_registry
from stackctl.switching.loop import SwitchFailed, SwitchOptions
from stackctl.targets.compose_switch import switch_compose
from tests.fakes.docker import FakeDocker
from tests.paths import REPO

GPU = {"org.stackctl.gpu-group": "gpu0"}


def switch(reg, docker, member="qwen", routable=lambda m, d: True, timeout=0.5):
    return switch_compose(reg, docker, SwitchOptions(member=member, timeout=timeout,
                                                     routable_timeout=1),
                          ready=lambda s: False, routable=routable)


# -- the target is already running: success only once it is ready and routable ------------

def test_target_running_and_starting_is_waited_for_not_declared_active(offline):
    # killed while waiting for health: the target runs, Docker says "starting"
    docker = FakeDocker(running={"litellm": {}})
    docker._make("vllm-qwen", "never", GPU)
    with pytest.raises(SwitchFailed) as exc:
        switch(offline, docker)
    text = str(exc.value)
    assert "vllm-qwen (already running) not healthy after 0.5s" in text
    assert "GPU group 'gpu0' has no active member" in text and exc.value.restored
    assert docker.calls == [("stop", "p-vllm-qwen-1")]  # rolled back: the GPU is free again


def test_target_running_healthy_but_not_routed_is_rolled_back(offline):
    docker = FakeDocker(running={"vllm-qwen": GPU})
    asked = []
    with pytest.raises(SwitchFailed, match="did not route 'qwen-coder-vllm' to it"):
        switch(offline, docker, routable=lambda m, d: asked.append(d) and False)
    assert asked and asked[0] == "qwen-coder-vllm@vllm-qwen"
    assert not docker.state["vllm-qwen"].running


def test_target_running_ready_and_routed_succeeds_without_touching_it(offline):
    docker = FakeDocker(running={"vllm-qwen": GPU, "litellm": {}})
    asked = []
    result = switch(offline, docker, routable=lambda m, d: asked.append(d) or True)
    assert result.plan.noop and asked == ["qwen-coder-vllm@vllm-qwen"]
    assert docker.calls == [] and set(result.timings) >= {"ready", "routable", "total"}


def test_target_running_unhealthy_fails_fast_naming_it(offline):
    docker = FakeDocker()
    docker._make("vllm-qwen", "unhealthy", GPU)
    with pytest.raises(SwitchFailed, match="vllm-qwen \\(already running\\) .*unhealthy"):
        switch(offline, docker, timeout=30)


# -- what an interrupted switch leaves, and how the next switch repairs it -----------------

def test_two_members_running_after_an_interrupted_switch_are_repaired_to_one(offline):
    # killed after the target started but before the old member was stopped... or a
    # previous rollback interrupted: both run
    docker = FakeDocker(running={"vllm-qwen": GPU, "vllm-dolphin": GPU})
    result = switch(offline, docker, member="dolphin")
    assert result.plan.stop == ["vllm-qwen"]
    assert {s for s, st in docker.state.items() if st.running} == {"vllm-dolphin"}


def test_no_member_running_after_an_interrupted_switch_is_repaired(offline):
    docker = FakeDocker()  # killed after the stop: the old member exited, nothing started
    docker._make("vllm-qwen", "exit", GPU)
    switch(offline, docker, member="dolphin")
    assert {s for s, st in docker.state.items() if st.running} == {"vllm-dolphin"}
    assert not docker.state["vllm-qwen"].running


def test_up_refuses_to_keep_two_running_members_and_names_the_repair(offline):
    from stackctl.targets.compose_plan import plan_up

    observed = FakeDocker(running={"vllm-qwen": GPU, "vllm-dolphin": GPU}).containers()
    with pytest.raises(PlanError, match="vllm-qwen and vllm-dolphin run together in exclusive GPU "
                       "group 'gpu0' .*`stackctl switch vllm-qwen` keeps vllm-qwen"):
        plan_up(offline, [], observed)


def test_members_a_load_left_within_the_budget_are_no_fault(offline):
    """`load` co-locates members whose footprints fit the group's memory budget: `up` keeps
    them, one that does not fit is still an interrupted switch."""
    import copy
    import dataclasses

    from stackctl.registry.gpu_memory import may_run_together
    from stackctl.registry.models import GpuGroup
    from stackctl.targets.compose_plan import plan_up

    def budget(gib: float):  # type: ignore[no-untyped-def]
        groups = {"gpu0": GpuGroup(memory_gib=gib)}
        return dataclasses.replace(offline, stack=offline.stack.model_copy(
            update={"gpu_groups": groups}))

    both = ["vllm-qwen", "vllm-dolphin"]
    assert not may_run_together(offline, "gpu0", both)  # exclusive
    assert may_run_together(offline, "gpu0", both[:1])
    # vLLM claims 0.9 of the budget by default: two never fit
    assert not may_run_together(budget(24), "gpu0", both)
    reg = copy.deepcopy(budget(24))  # the fixture's registry stays as it is
    providers = reg.providers.providers
    for name in both:  # stated footprints: weights 4 + KV 2 GiB each
        c = providers[name].container
        assert c is not None and c.gpu is not None
        gpu = c.gpu.model_copy(update={"kv_gib": 2.0})
        providers[name] = providers[name].model_copy(
            update={"container": c.model_copy(update={"gpu": gpu})})
    assert may_run_together(reg, "gpu0", both)
    observed = FakeDocker(running={"vllm-qwen": GPU, "vllm-dolphin": GPU}).containers()
    assert plan_up(reg, [], observed).services


def test_status_tells_two_running_members_apart_and_calls_it_degraded(offline):
    from stackctl.targets.compose_status import collect_status

    docker = FakeDocker(running={"litellm": {}, "redis": {}, "vllm-qwen": GPU,
                                 "vllm-dolphin": GPU})
    st = collect_status(offline, docker, timeout=0.2, probe=lambda s: False)
    assert st.gpu_groups["gpu0"].running == ["vllm-qwen", "vllm-dolphin"]
    assert not st.healthy


def test_status_counts_restarts_and_time_since(offline):
    from stackctl.targets.compose_status import collect_status

    docker = FakeDocker(running={"litellm": {}, "redis": {}})
    docker.state["litellm"].restarts = 2
    docker.state["litellm"].started_at = datetime.now(UTC) - timedelta(seconds=30)
    rows = {s.name: s for s in collect_status(offline, docker, timeout=0.2).services}
    assert rows["litellm"].restarts == 2 and 29 <= rows["litellm"].up_seconds < 60
    assert rows["redis"].restarts == 0 and rows["redis"].up_seconds is None  # no start known


# -- a full disk ---------------------------------------------------------------------------

def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_full_disk_while_writing_env_keeps_the_old_file_and_leaves_no_temp(tmp_path,
                                                                          monkeypatch):
    from stackctl.store import envfile

    env = tmp_path / ".env"
    env.write_text("# mine\nLITELLM_MASTER_KEY=sk-kept\n")
    env.chmod(0o600)
    before = env.read_bytes()
    monkeypatch.setattr(envfile.os, "fsync", _enospc)
    with pytest.raises(OSError) as exc:
        envfile.ensure_secrets(env, ["LITELLM_MASTER_KEY", "REDIS_PASSWORD"], environ={})
    assert exc.value.errno == errno.ENOSPC
    assert env.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [".env"]


def test_full_disk_during_up_is_a_clear_error_not_a_traceback(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from stackctl.cli import cli
    from stackctl.store import envfile

    shutil.copytree(REPO / "examples/offline/config", tmp_path / "config")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(envfile.os, "fsync", _enospc)
    r = CliRunner().invoke(cli, ["up", "-C", str(tmp_path / "config")])
    assert r.exit_code == 1, r.output
    assert "No space left on device" in r.output and ".env" in r.output
    assert "Traceback" not in r.output and not (tmp_path / ".env").exists()
    assert not list(tmp_path.glob(".env.*"))


def test_full_disk_while_taking_a_backup_keeps_every_backup_and_no_partial_one(offline,
                                                                             tmp_path,
                                                                             monkeypatch):
    from stackctl.gateway import reload

    shutil.copytree(REPO / "examples/offline/config", tmp_path / "config")
    reg = load_registry(tmp_path / "config")
    folder = reg.output_dir / "litellm"
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text("model_list: []\n")
    first = reload.take_backup(reg, datetime(2026, 1, 1, tzinfo=UTC))
    assert first is not None

    def half_copy(src, dst, *a, **k):
        Path(dst).mkdir(parents=True)
        (Path(dst) / "config.yaml").write_text("model_")
        _enospc()
    monkeypatch.setattr(reload.shutil, "copytree", half_copy)
    with pytest.raises(PlanError, match="could not take a backup .*: No space left on device; "
                       "nothing was changed"):
        reload.take_backup(reg, datetime(2026, 1, 2, tzinfo=UTC))
    assert [b.id for b in reload.list_backups(reg)] == [first]
    root = reload.backups_dir(reg)
    assert sorted(p.name for p in root.iterdir()) == [first]  # no half-written staging


# -- what the commands print ------------------------------------------------------------------

@pytest.fixture
def cli_offline(registry_dir, monkeypatch):
    """The offline registry with its generated files, and a fake engine for every command."""
    config = registry_dir("offline", with_output=True)
    stack = config / "stack.yaml"  # restart mode, as the fixture above
    stack.write_text(stack.read_text().replace("switch: sleep", "switch: restart"))
    docker = FakeDocker(project="stackctl-offline", running={"litellm": {}, "redis": {}})
    monkeypatch.setattr("stackctl.docker.adapter.Docker", lambda *a, **k: docker)
    return config, docker


def invoke(*args: str):
    from click.testing import CliRunner

    from stackctl.cli import cli

    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_status_table_names_restarts_and_two_running_members(cli_offline):
    config, docker = cli_offline
    docker._make("vllm-qwen", "healthy", GPU)
    docker._make("vllm-dolphin", "healthy", GPU)
    docker.state["litellm"].restarts = 2
    docker.state["litellm"].started_at = datetime.now(UTC) - timedelta(seconds=40)
    r = invoke("status", "-C", str(config))
    assert r.exit_code in (1, 3), r.output  # degraded (or no gateway answers in unit tests)
    assert "litellm restarted 2x" in r.output and "up 4" in r.output
    assert "GPU group gpu0: 2 members running (vllm-qwen, vllm-dolphin), it must be one" \
        in r.output.replace("\n", " ")


def test_switch_to_the_running_member_says_it_is_ready_and_routable(cli_offline, monkeypatch):
    config, docker = cli_offline
    docker._make("vllm-qwen", "healthy", GPU)
    asked = []
    monkeypatch.setattr("stackctl.targets.compose_switch.confirm_routable",
                        lambda gw, model, dep, *a, **k: asked.append(dep) or True)
    r = invoke("switch", "qwen", "-C", str(config))
    assert r.exit_code == 0, r.output
    assert "vllm-qwen is already the active member of GPU group 'gpu0': ready and routable" \
        in r.output
    assert asked == ["qwen-coder-vllm@vllm-qwen"] and not any(
        c[0] in ("start", "stop", "create") for c in docker.calls)


def test_switch_to_a_running_member_that_is_not_routed_exits_1_and_frees_the_group(
        cli_offline, monkeypatch):
    config, docker = cli_offline
    docker._make("vllm-qwen", "healthy", GPU)
    monkeypatch.setattr("stackctl.targets.compose_switch.confirm_routable", lambda *a, **k: False)
    r = invoke("switch", "qwen", "-C", str(config))
    assert r.exit_code == 1, r.output
    assert "vllm-qwen (already running) is healthy but the gateway did not route" in r.output
    assert "GPU group 'gpu0' has no active member" in r.output and "Traceback" not in r.output
    assert not docker.state["vllm-qwen"].running
