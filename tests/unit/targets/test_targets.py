"""up, down, status and switch through the Target protocol, one test per kind of target, each
on its fake: the local engine (tests/fakes/docker.py), a Swarm manager (tests/fakes/swarm.py),
kubectl (tests/fakes/kubectl.py). Each switch is also rolled back once."""

from __future__ import annotations

import dataclasses
import functools

import pytest

from stackctl.registry.load import Registry, load_registry
from stackctl.switching.loop import SwitchFailed, SwitchOptions
from stackctl.targets import compose_switch
from stackctl.targets.compose import ComposeTarget
from stackctl.targets.compose_up import UpOptions
from stackctl.targets.factory import target_for
from stackctl.targets.kubernetes import KubernetesTarget, NotOnKubernetes
from stackctl.targets.swarm import SwarmTarget
from tests.fakes.docker import FakeDocker
from tests.fakes.kubectl import FakeKubectl
from tests.fakes.swarm import FakeSwarm
from tests.fakes.ui import RecordingUi

GPU = {"org.stackctl.gpu-group": "gpu0"}
FILES: dict[str, list[str]] = {"secrets_created": [], "files_written": []}


def on(reg: Registry, target: str) -> Registry:
    """The registry deployed to `target`, its GPU group switching by restart."""
    deploy = reg.stack.deploy.model_copy(update={"target": target})
    return dataclasses.replace(reg, stack=reg.stack.model_copy(
        update={"deploy": deploy, "gpu_groups": {}}))


@pytest.fixture
def offline(registry_dir) -> Registry:
    """The offline example (its generated files beside it), in a tmp folder of its own."""
    return load_registry(registry_dir("offline", with_output=True))


class FakeGateway:
    """Any gateway: live, listing every model, and answering each model from `answers`."""

    answers: dict[str, str] = {}

    def __init__(self, url: str, key: str | None = None):
        self.url = url

    def live(self, timeout: float = 1.0) -> bool:
        return True

    def models(self, timeout: float = 2.0) -> list[str]:
        return []

    def wait_models(self, expected: list[str], timeout: float, poll: float = 0.5) -> list[str]:
        return []

    def answered_by(self, model: str, timeout: float = 30.0) -> str | None:
        return self.answers.get(model)


@pytest.fixture
def gateway(monkeypatch) -> type[FakeGateway]:
    """Every gateway the targets ask is a FakeGateway: no request leaves the test."""
    monkeypatch.setattr("stackctl.gateway.client.Gateway", FakeGateway)
    monkeypatch.setattr("stackctl.targets.compose_up.gateway_for",
                        lambda reg: FakeGateway("http://127.0.0.1:4000"))
    monkeypatch.setattr("stackctl.targets.compose_status.gateway_for",
                        lambda reg: FakeGateway("http://127.0.0.1:4000"))
    FakeGateway.answers = {}
    return FakeGateway


# -- the local engine -------------------------------------------------------------------------

def test_compose_target_up_status_switch_rollback_down(offline, gateway, monkeypatch):
    reg = on(offline, "compose")
    docker = FakeDocker(project=reg.stack.project)
    monkeypatch.setattr("stackctl.targets.compose_up.ensure_ports_free", lambda *a, **k: None)
    # no member's port answers here, and no gateway: ready by Docker's word, routed
    monkeypatch.setattr(compose_switch, "switch_compose", functools.partial(
        compose_switch.switch_compose, ready=lambda member: False,
        routable=lambda model, dep: True))
    target = target_for(reg, docker=lambda: docker)
    assert isinstance(target, ComposeTarget)
    ui, changes = RecordingUi(quiet=True), []

    up = target.up(UpOptions(timeout=5), FILES, ui, lambda s, v, t: changes.append((s, v)))
    assert up.document()["services"] == ["litellm", "redis", "llama_cpp", "ollama", "vllm-qwen"]
    assert ("vllm-qwen", "ready") in changes
    up.show(ui)
    assert ui.of("result") == ["stack 'stackctl-offline' is up: profiles llamacpp, ollama, "
                               "vllm-qwen; endpoint http://127.0.0.1:4000/v1"]

    status = target.status()
    assert status.exit_code == 0, status.json_text()
    assert status.document()["gpu_groups"]["gpu0"]["active"] == "vllm-qwen"

    switched = target.switch(SwitchOptions(member="dolphin", timeout=2), ui)
    assert switched.document()["plan"]["stop"] == ["vllm-qwen"]
    assert docker.state["vllm-dolphin"].running and not docker.state["vllm-qwen"].running

    docker.behaviour["vllm-qwen"] = "exit"  # qwen will not come up: back to dolphin
    with pytest.raises(SwitchFailed, match="rolled back: vllm-dolphin is healthy and "
                       "routable again") as exc:
        target.switch(SwitchOptions(member="qwen", timeout=2), ui)
    assert exc.value.restored and docker.state["vllm-dolphin"].running

    down = target.down([], False, ui)
    assert down.ok and down.document()["left"] == [] and docker.state == {}


# -- a Swarm ----------------------------------------------------------------------------------

def test_swarm_target_up_status_switch_rollback_down(offline, gateway):
    reg = on(offline, "swarm")
    swarm = FakeSwarm({}, deployed={"litellm": 2, "redis": 1, "vllm-qwen": 1,
                                    "vllm-dolphin": 0})
    target = target_for(reg, swarm=lambda: swarm,
                        docker=lambda: pytest.fail("the local engine was asked"))
    assert isinstance(target, SwarmTarget)
    ui = RecordingUi()

    up = target.up(UpOptions(timeout=5), FILES, ui, lambda *a: pytest.fail("on_change"))
    assert up.document() == {"ok": True, "project": "stackctl-offline", "target": "swarm",
                             "gateways": ["http://10.0.0.1:4000", "http://10.0.0.2:4000"],
                             "seconds": up.document()["seconds"]}
    assert ("deploy", "stack.yaml") in swarm.log
    assert "  vllm-qwen: ready" in ui.of("rich")

    status = target.status()
    assert status.exit_code == 0
    assert status.document()["gpu_groups"]["gpu0"]["active"] == "vllm-qwen"

    gateway.answers = {"dolphin-uncensored-vllm": "dolphin-uncensored-vllm@vllm-dolphin"}
    switched = target.switch(SwitchOptions(member="dolphin", timeout=1), ui)
    assert switched.document()["target"] == "swarm"
    assert set(switched.document()["timings"]) == {"stop", "ready", "routable", "total"}
    assert swarm.replicas["vllm-dolphin"] == 1 and swarm.replicas["vllm-qwen"] == 0
    assert ui.of("progress")[-2:] == ["scaling vllm-qwen to 0", "scaling vllm-dolphin to 1"]

    swarm.broken.add("vllm-qwen")  # its task never gets past starting: back to dolphin
    with pytest.raises(SwitchFailed, match="rolled back: vllm-dolphin runs again and is "
                       "ready") as exc:
        target.switch(SwitchOptions(member="qwen", timeout=0.6), ui)
    assert exc.value.restored and "vllm-qwen runs 0/1" in str(exc.value)
    assert (swarm.replicas["vllm-qwen"], swarm.replicas["vllm-dolphin"]) == (0, 1)

    plan = target.switch(SwitchOptions(member="qwen", dry_run=True), ui)
    assert plan.document()["plan"]["stop"] == ["vllm-dolphin"]  # the manager's view

    down = target.down([], False, ui)
    assert down.ok and ("remove_secrets",) in swarm.log


# -- Kubernetes -------------------------------------------------------------------------------

def test_kubernetes_target_leaves_up_down_status_to_kubectl_and_switches(offline):
    reg = on(offline, "kubernetes")
    k = FakeKubectl({"vllm-qwen": 1, "vllm-dolphin": 0})
    target = target_for(reg, kubectl=k, docker=lambda: pytest.fail("the local engine"))
    assert isinstance(target, KubernetesTarget)
    ui = RecordingUi()
    folder = reg.output_dir / "kubernetes"
    for command, call in (("up", lambda: target.up(UpOptions(), FILES, ui, print)),
                          ("down", lambda: target.down([], False, ui)),
                          ("status", target.status)):
        with pytest.raises(NotOnKubernetes) as exc:
            call()
        assert str(exc.value) == (
            f"`stackctl {command}` does not drive Kubernetes (deploy.target: kubernetes): "
            f"`stackctl generate --target kubernetes`, then `kubectl apply -k {folder}` (up), "
            f"`kubectl delete -k {folder}` (down), `kubectl get all -n stackctl` (status); "
            "`stackctl switch` works")
    assert k.calls == []

    switched = target.switch(SwitchOptions(member="dolphin", timeout=5), ui)
    assert switched.document() == {"ok": True, "target": "kubernetes", "member": "dolphin",
                                   "timings": switched.result.timings}
    assert k.replicas == {"vllm-qwen": 0, "vllm-dolphin": 1}
    switched.show(ui)
    assert ui.of("result")[-1].startswith("switched to dolphin on Kubernetes in ")

    k.broken.add("vllm-qwen")
    with pytest.raises(SwitchFailed, match="rolled back: vllm-dolphin runs again") as exc:
        target.switch(SwitchOptions(member="qwen", timeout=5), ui)
    assert exc.value.restored and k.replicas == {"vllm-qwen": 0, "vllm-dolphin": 1}


# -- issue #22: `up` that rewrote a monitoring config makes the running service read it -----

@pytest.mark.parametrize("changed", [("prometheus", "alertmanager"), ("prometheus",),
                                     ("alertmanager",), ()])
def test_up_makes_running_monitoring_read_its_new_config(offline, gateway, changed):
    from stackctl.targets.compose_up import bring_up

    docker = FakeDocker(project="stackctl-offline",
                        running={"litellm": {}, "redis": {}, "prometheus": {},
                                 "alertmanager": {}})
    bring_up(offline, docker, UpOptions(profiles=["monitoring"], timeout=5),
             probe=lambda s: True, configs_changed=changed)
    calls = [c[:3] for c in docker.calls]
    up = next(i for i, c in enumerate(calls) if c[0] == "up")
    prom, am = "stackctl-offline-prometheus-1", "stackctl-offline-alertmanager-1"
    # Prometheus reloads in place; Alertmanager starts again (its start script writes the
    # webhook URLs into the config), before `up`, so the health gate waits for it
    assert (("signal", prom, "SIGHUP") in calls[up:]) == ("prometheus" in changed)
    assert (("stop", am) in calls[:up]) == ("alertmanager" in changed)
    assert not [c for c in calls if c[0] in ("signal", "stop") and c[1] not in (prom, am)]


def test_up_leaves_monitoring_alone_when_it_is_not_started_or_not_running(offline, gateway):
    from stackctl.targets.compose_up import bring_up

    docker = FakeDocker(project="stackctl-offline",
                        running={"litellm": {}, "redis": {}, "prometheus": {}})
    bring_up(offline, docker, UpOptions(timeout=5), probe=lambda s: True,
             configs_changed=("prometheus", "alertmanager"))  # no monitoring profile
    assert not [c for c in docker.calls if c[0] in ("signal", "stop")]
    bring_up(offline, docker, UpOptions(profiles=["monitoring"], timeout=5),
             probe=lambda s: True, configs_changed=("alertmanager",))  # starts fresh
    assert not [c for c in docker.calls if c[0] in ("signal", "stop")]
