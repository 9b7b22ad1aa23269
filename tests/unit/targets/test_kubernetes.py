"""`switch` on Kubernetes (targets/kubernetes.py) against a fake kubectl: no cluster runs here.

The fake keeps each Deployment's replicas and answers the calls the switch makes; one test
puts it on PATH as an executable and runs `stackctl switch` itself, so the real subprocess
path and the CLI's exit codes are covered too.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from click.testing import CliRunner

from stackctl.cli import cli
from stackctl.registry.load import load_registry
from stackctl.switching.run import SwitchFailed
from stackctl.targets.kubernetes import KubeError, kube_switch

REPO = Path(__file__).resolve().parents[3]


class FakeKubectl:
    """Deployments (k8s names) → replicas; `broken` ones never finish their rollout."""

    def __init__(self, replicas: dict[str, int], broken: frozenset[str] = frozenset()):
        self.replicas = dict(replicas)
        self.broken = set(broken)
        self.calls: list[list[str]] = []

    def __call__(self, args: Sequence[str], timeout: float) -> str:
        args = list(args)
        self.calls.append(args)
        assert args[:2] == ["--namespace", "stackctl"], args
        verb, obj = args[2], args[3]
        name = obj.removeprefix("deployment/")
        if verb == "get":
            return str(self.replicas[name])
        if verb == "scale":
            self.replicas[name] = int(args[4].removeprefix("--replicas="))
            return ""
        if verb == "rollout" and args[4].removeprefix("deployment/") in self.broken:
            raise KubeError(f"kubectl rollout status {args[4]}: timed out waiting")
        return ""

    def verbs(self) -> list[str]:
        return [" ".join(c[2:4] if c[2] != "rollout" else c[2:5]) for c in self.calls
                if c[2] != "get"]


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


FAKE = '''#!{python}
"""A fake kubectl: Deployment replicas in a JSON file; every call logged."""
import json, sys
state_file = {state!r}
state = json.load(open(state_file))
args = sys.argv[1:]
state["calls"].append(args)
verb, obj = args[2], args[3]
name = obj.split("/", 1)[-1]
if verb == "get":
    print(state["replicas"][name], end="")
elif verb == "scale":
    state["replicas"][name] = int(args[4].split("=")[1])
elif verb == "rollout" and args[4].split("/")[1] in state["broken"]:
    print('error: deployment "%s" exceeded its progress deadline' % args[4], file=sys.stderr)
    json.dump(state, open(state_file, "w"))
    sys.exit(1)
json.dump(state, open(state_file, "w"))
'''


def test_stackctl_switch_on_kubernetes_runs_kubectl(tmp_path, monkeypatch, registry_dir):
    cfg = registry_dir("offline")
    stack = cfg / "stack.yaml"
    stack.write_text(stack.read_text() + "deploy: {target: kubernetes}\n")
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"replicas": {"vllm-qwen": 1, "vllm-dolphin": 0},
                                 "broken": [], "calls": []}))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "kubectl"
    exe.write_text(FAKE.format(python=sys.executable, state=str(state)))
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
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
