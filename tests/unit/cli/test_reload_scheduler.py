"""`reload` of an on-demand stack: the scheduler follows the registry now serving."""

from __future__ import annotations

from stackctl.cli import cli
from stackctl.gateway.reload import ReloadResult
from stackctl.resident.process import Running


def test_applied_reload_restarts_the_scheduler_on_the_new_registry(
        runner, registry_dir, yaml_edit, monkeypatch, tmp_path):
    monkeypatch.setenv("STACKCTL_STATE_DIR", str(tmp_path / "state"))
    cfg = registry_dir("offline")

    def on_demand(data):  # type: ignore[no-untyped-def]
        data["gpu_groups"]["gpu0"]["on_demand"] = True
    yaml_edit(cfg / "stack.yaml", on_demand)
    ensured: list[str] = []
    monkeypatch.setattr("stackctl.cli.reload.docker_for", lambda reg: None)
    monkeypatch.setattr("stackctl.cli.reload.process.ensure", lambda reg: (
        ensured.append(reg.stack.project), Running(4242, tmp_path / "log", True))[1])
    applied = ReloadResult(changed=["litellm/config.yaml"], diff="", applied=True, seconds=1)
    monkeypatch.setattr("stackctl.cli.reload.reload_gateway", lambda *a, **k: applied)
    r = runner.invoke(cli, ["reload", "-C", str(cfg), "--yes"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert ensured == ["stackctl-offline"]
    assert "scheduler: restarted on the new registry, pid 4242" in r.output

    nothing = ReloadResult(changed=[], diff="")
    monkeypatch.setattr("stackctl.cli.reload.reload_gateway", lambda *a, **k: nothing)
    r = runner.invoke(cli, ["reload", "-C", str(cfg), "--yes"], catch_exceptions=False)
    assert r.exit_code == 0 and ensured == ["stackctl-offline"], r.output
