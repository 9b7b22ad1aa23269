"""`switch` on Kubernetes (targets/kubernetes.py) against a fake kubectl: no cluster runs here.

The fake (tests/fakes/kubectl.py) keeps each Deployment's replicas and answers the calls the
switch makes; one test puts it on PATH as an executable and runs `stackctl switch` itself, so
the real subprocess path and the CLI's exit codes are covered too.
"""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner

from stackctl.cli import cli
from stackctl.registry.load import load_registry
from stackctl.switching.loop import SwitchFailed, SwitchOptions
from stackctl.targets.kubernetes import KubernetesTarget
from tests.fakes.kubectl import FakeKubectl, install_kubectl
from tests.fakes.ui import RecordingUi
from tests.paths import REPO


def kube_switch(reg, member: str, timeout: float, run, routable) -> dict[str, float]:
    """`switch member` through the Kubernetes target; its timings."""
    target = KubernetesTarget(reg, run, routable)
    return target.switch(SwitchOptions(member=member, timeout=timeout), RecordingUi()).result.timings


@pytest.fixture
def reg():
    return load_registry(REPO / "examples/offline/config")


def test_switch_scales_the_old_member_to_0_waits_for_its_pods_then_rolls_out_the_new(reg):
    k = FakeKubectl({"vllm-qwen": 1, "vllm-dolphin": 0})
    routed = []
    timings = kube_switch(reg, "dolphin", 30, run=k,
                          routable=lambda m, d: routed.append(d) or True)
    assert k.verbs() == ["scale deployment/vllm-qwen", "wait --for=delete",
                         "scale deployment/vllm-dolphin",
                         "rollout status deployment/vllm-dolphin"]
    wait = next(c for c in k.calls if c[2] == "wait")
    assert "app.kubernetes.io/name=vllm-qwen" in wait  # the outgoing member's pods
    assert k.replicas == {"vllm-qwen": 0, "vllm-dolphin": 1}
    assert routed == ["dolphin-uncensored-vllm@vllm-dolphin"]
    assert set(timings) == {"stop", "ready", "routable", "total"}


def test_a_rollout_that_never_completes_is_scaled_back(reg):
    k = FakeKubectl({"vllm-qwen": 1, "vllm-dolphin": 0}, broken=frozenset({"vllm-dolphin"}))
    with pytest.raises(SwitchFailed) as exc:
        kube_switch(reg, "dolphin", 5, run=k, routable=lambda m, d: True)
    assert exc.value.restored and "rolled back: vllm-qwen runs again" in str(exc.value)
    assert "timed out waiting" in str(exc.value)
    assert k.replicas == {"vllm-qwen": 1, "vllm-dolphin": 0}


def test_no_rollback_target_leaves_the_group_empty_and_says_so(reg):
    k = FakeKubectl({"vllm-qwen": 0, "vllm-dolphin": 0}, broken=frozenset({"vllm-dolphin"}))
    with pytest.raises(SwitchFailed, match="no member ran before") as exc:
        kube_switch(reg, "dolphin", 5, run=k, routable=lambda m, d: True)
    assert exc.value.restored and k.replicas["vllm-dolphin"] == 0


def test_stackctl_switch_on_kubernetes_runs_kubectl(tmp_path, monkeypatch, registry_dir):
    cfg = registry_dir("offline")
    stack = cfg / "stack.yaml"
    stack.write_text(stack.read_text() + "deploy: {target: kubernetes}\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    state = install_kubectl(bin_dir, {"vllm-qwen": 1, "vllm-dolphin": 0})
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    runner = CliRunner()
    r = runner.invoke(cli, ["switch", "dolphin", "-C", str(cfg), "--json"],
                      catch_exceptions=False)
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["ok"] and doc["target"] == "kubernetes"
    assert json.loads(state.read_text())["replicas"] == {"vllm-qwen": 0, "vllm-dolphin": 1}

    broken = json.loads(state.read_text())
    state.write_text(json.dumps({**broken, "broken": ["vllm-qwen"]}))
    r = runner.invoke(cli, ["switch", "qwen", "-C", str(cfg)], catch_exceptions=False)
    assert r.exit_code == 1, r.output  # rolled back: dolphin again
    assert "exceeded its progress deadline" in r.output and "rolled back" in r.output
    assert json.loads(state.read_text())["replicas"] == {"vllm-qwen": 0, "vllm-dolphin": 1}

    r = runner.invoke(cli, ["status", "-C", str(cfg)], catch_exceptions=False)
    assert r.exit_code == 1 and "kubectl get all -n stackctl" in r.output


def test_dry_run_plans_from_the_clusters_replicas_never_the_local_engine(
        tmp_path, monkeypatch, registry_dir):
    """The plan printed comes from the Deployments' replicas, read through kubectl; the
    local Docker engine (which may run another stack entirely) is never asked."""
    cfg = registry_dir("offline", with_output=True)
    stack = cfg / "stack.yaml"
    stack.write_text(stack.read_text() + "deploy: {target: kubernetes}\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    state = install_kubectl(bin_dir, {"vllm-qwen": 1, "vllm-dolphin": 0})
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")

    def no_local_engine(*a, **k):
        raise AssertionError("the local Docker engine was asked")
    monkeypatch.setattr("stackctl.docker.adapter.Docker", no_local_engine)
    runner = CliRunner()
    r = runner.invoke(cli, ["switch", "dolphin", "--dry-run", "-C", str(cfg)],
                      catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert r.output.splitlines() == [
        "plan: stop vllm-qwen (graceful)", "plan: start vllm-dolphin",
        "plan: wait until vllm-dolphin is healthy",
        "plan: confirm through the gateway that vllm-dolphin's model answers"]
    calls = json.loads(state.read_text())["calls"]
    assert {c[2] for c in calls} == {"get"}  # read, nothing scaled

    # the cluster says dolphin runs already (whatever a local engine would say)
    state.write_text(json.dumps({**json.loads(state.read_text()),
                                 "replicas": {"vllm-qwen": 0, "vllm-dolphin": 1}}))
    r = runner.invoke(cli, ["switch", "dolphin", "--dry-run", "--json", "-C", str(cfg)],
                      catch_exceptions=False)
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["ok"] and doc["dry_run"] and doc["plan"]["noop"] and doc["timings"] == {}
    assert doc["plan"]["stop"] == [] and "already the active member" in doc["steps"][0]


def test_dry_run_through_the_target_asks_kubectl_only(reg):
    k = FakeKubectl({"vllm-qwen": 0, "vllm-dolphin": 1})
    target = KubernetesTarget(reg, k, routable=lambda m, d: pytest.fail("routed"))
    report = target.switch(SwitchOptions(member="qwen", dry_run=True), RecordingUi())
    plan = report.result.plan
    assert (plan.target, plan.stop, plan.noop, plan.mode) == \
        ("vllm-qwen", ["vllm-dolphin"], False, "restart")
    assert k.verbs() == [] and k.replicas == {"vllm-qwen": 0, "vllm-dolphin": 1}
