"""targets/swarm.py against a fake Swarm: the switch's order, its rollback, convergence;
and the manager's client (docker/swarm.py) reading the CLI's JSON."""

from __future__ import annotations

import pytest

from stackctl.docker.swarm import ServiceState, SwarmError, TaskState
from stackctl.registry.load import load_registry
from stackctl.switching.loop import SwitchFailed, SwitchOptions
from stackctl.targets.swarm import SwarmTarget, wait_converged
from tests.fakes.swarm import FakeSwarm
from tests.fakes.ui import RecordingUi
from tests.paths import REPO


def swarm_switch(reg, swarm, member: str, timeout: float, routable) -> dict[str, float]:
    """`switch member` through the Swarm target on `swarm`; its timings."""
    target = SwarmTarget(reg, lambda: swarm, routable)
    return target.switch(SwitchOptions(member=member, timeout=timeout), RecordingUi()).result.timings


@pytest.fixture
def reg():
    return load_registry(REPO / "examples/offline/config")


def routed(log: list):
    def routable(model: str, dep: str, urls: list[str]) -> bool:
        log.append(("routable", dep, tuple(urls)))
        return True
    return routable


def test_switch_scales_the_outgoing_member_down_first_then_the_target_up(reg):
    sw = FakeSwarm({"litellm": 2, "vllm-qwen": 1, "vllm-dolphin": 0})
    timings = swarm_switch(reg, sw, "dolphin", timeout=1, routable=routed(sw.log))
    assert sw.log == [("scale", {"vllm-qwen": 0}), ("scale", {"vllm-dolphin": 1}),
                      ("routable", "dolphin-uncensored-vllm@vllm-dolphin",
                       ("http://10.0.0.1:4000", "http://10.0.0.2:4000"))]
    assert set(timings) == {"stop", "ready", "routable", "total"}


def test_a_target_that_never_runs_is_rolled_back(reg):
    sw = FakeSwarm({"vllm-qwen": 1, "vllm-dolphin": 0}, broken=frozenset({"vllm-dolphin"}))
    with pytest.raises(SwitchFailed) as exc:
        swarm_switch(reg, sw, "dolphin", timeout=0.6, routable=routed(sw.log))
    assert exc.value.restored and "rolled back: vllm-qwen runs again" in str(exc.value)
    assert "vllm-dolphin runs 0/1" in str(exc.value)  # what did not converge, and where
    assert sw.replicas == {"vllm-qwen": 1, "vllm-dolphin": 0}


def test_a_target_that_is_not_routed_is_rolled_back(reg):
    sw = FakeSwarm({"vllm-qwen": 1, "vllm-dolphin": 0})
    calls: list = []

    def routable(model: str, dep: str, urls: list[str]) -> bool:
        calls.append(dep)
        return dep.endswith("@vllm-qwen")  # the gateways keep answering from the fallback
    with pytest.raises(SwitchFailed, match="no gateway routes"):
        swarm_switch(reg, sw, "dolphin", timeout=1, routable=routable)
    assert calls == ["dolphin-uncensored-vllm@vllm-dolphin", "qwen-coder-vllm@vllm-qwen"]
    assert sw.replicas == {"vllm-qwen": 1, "vllm-dolphin": 0}


def test_convergence_waits_for_scaled_down_tasks_to_go():
    class Draining(FakeSwarm):
        polls = 0

        def services(self) -> dict[str, ServiceState]:
            self.polls += 1
            tasks = [TaskState("a", "node1", "running", "shutdown")] if self.polls < 3 else []
            return {"a": ServiceState("a", 0, tasks)}

    sw = Draining({})
    now = [0.0]
    wait_converged(sw, 10, clock=lambda: now[0],  # type: ignore[arg-type]
                   sleep=lambda s: now.__setitem__(0, now[0] + s))
    assert sw.polls == 3


def test_convergence_timeout_names_the_service_and_its_tasks_errors():
    class Stuck(FakeSwarm):
        def services(self) -> dict[str, ServiceState]:
            return {"vllm-qwen": ServiceState("vllm-qwen", 1, [TaskState(
                "vllm-qwen", "-", "pending", "running",
                "no suitable node (insufficient resources on 3 nodes)")])}

    now = [0.0]
    with pytest.raises(SwarmError, match=r"vllm-qwen runs 0/1 \[-: pending: no suitable node"):
        wait_converged(Stuck({}), 2, clock=lambda: now[0],  # type: ignore[arg-type]
                       sleep=lambda s: now.__setitem__(0, now[0] + s))


def test_services_and_tasks_are_read_from_the_cli_json(reg, monkeypatch):
    """Two CLI calls, their JSON lines parsed: a task scaled away (desired shutdown, and an
    older one of the same slot, shown with "\\_ ") stays attached to its service."""
    from stackctl.docker.swarm import Swarm

    lines = {
        "service": ['{"Name":"stackctl-offline_litellm","Replicas":"2/2"}',
                    '{"Name":"stackctl-offline_vllm-qwen","Replicas":"0/0"}',
                    '{"Name":"stackctl-offline_vllm-dolphin","Replicas":"0/1 (max 1 per node)"}'],
        "stack": ['{"Name":"stackctl-offline_litellm.1","Node":"node1",'
                  '"CurrentState":"Running 2 minutes ago","DesiredState":"Running","Error":""}',
                  '{"Name":"stackctl-offline_litellm.2","Node":"node2",'
                  '"CurrentState":"Starting 3 seconds ago","DesiredState":"Running","Error":""}',
                  '{"Name":"\\\\_ stackctl-offline_vllm-qwen.1","Node":"node3",'
                  '"CurrentState":"Running 5 seconds ago","DesiredState":"Shutdown","Error":""}',
                  '{"Name":"stackctl-offline_vllm-dolphin.1","Node":"",'
                  '"CurrentState":"Pending 9 seconds ago","DesiredState":"Running",'
                  '"Error":"no suitable node (insufficient resources on 3 nodes)"}']}
    sw = Swarm.__new__(Swarm)
    sw.reg, sw.project = reg, "stackctl-offline"
    monkeypatch.setattr(sw, "_cli", lambda what, *args: "\n".join(lines[args[0]]) + "\n",
                        raising=False)
    services = sw.services()
    assert {n: (s.replicas, s.running) for n, s in services.items()} == {
        "litellm": (2, 1), "vllm-qwen": (0, 0), "vllm-dolphin": (1, 0)}
    qwen = services["vllm-qwen"].tasks
    assert [(t.node, t.state, t.desired) for t in qwen] == [("node3", "running", "shutdown")]
    assert services["vllm-dolphin"].tasks[0].error.startswith("no suitable node")



def test_what_down_leaves_is_read_from_the_cli_listing(reg, monkeypatch):
    """Names as listed: a python-on-whales object inspected itself on access, and `down`
    failed with a traceback once the Swarm removed a network between listing and reading."""
    from stackctl.docker.swarm import Swarm
    from stackctl.render.swarm import swarm_secrets

    secret = sorted(swarm_secrets(reg))[0]
    calls = []

    def cli(what, *args):
        calls.append(args)
        listed = {"service": "", "network": "stackctl-offline_default\n",
                  "secret": f"{secret}\nsomeone-elses\n"}
        return listed[args[0]]

    sw = Swarm.__new__(Swarm)  # no client: nothing else may ask the engine
    sw.reg, sw.project = reg, "stackctl-offline"
    monkeypatch.setattr(sw, "_cli", cli, raising=False)
    assert sw.leftovers() == {"services": [], "secrets": [secret],
                              "networks": ["stackctl-offline_default"]}
    assert ("network", "ls", "--filter", "label=com.docker.stack.namespace=stackctl-offline",
            "--format", "{{.Name}}") in calls


def _info(state: str | None = None, manager: bool = False, stderr: str | None = None,
          missing: bool = False):
    """A python-on-whales client whose `system.info()` reports a Swarm node state, or fails
    with `stderr` (the docker CLI's), or finds no docker CLI."""
    from types import SimpleNamespace

    from python_on_whales.exceptions import DockerException

    def info():
        if missing:
            raise FileNotFoundError("docker")
        if stderr is not None:
            raise DockerException(["docker", "info"], 1, b"", stderr.encode())
        return SimpleNamespace(swarm=SimpleNamespace(local_node_state=state,
                                                     control_available=manager))
    return SimpleNamespace(system=SimpleNamespace(info=info))


@pytest.mark.parametrize("client, error, message", [
    (_info("active", manager=True), None, ""),
    (_info(missing=True), "EngineUnreachable", "the docker CLI is not installed"),
    (_info(stderr="Cannot connect to the Docker daemon at tcp://10.0.0.9:2376. Is the docker "
           "daemon running?"), "EngineUnreachable",
     "no Docker engine answers at the Swarm manager (tcp://10.0.0.9:2376): Cannot connect"),
    (_info(stderr="permission denied"), "SwarmError",
     "docker info at tcp://10.0.0.9:2376: permission denied"),
    (_info("inactive"), "SwarmError", "tcp://10.0.0.9:2376 is not a Swarm manager (swarm "
     "state: inactive): `docker swarm init` makes it one"),
    (_info("active", manager=False), "SwarmError", "is not a Swarm manager (swarm state: "
     "active)"),
], ids=["manager", "no-cli", "no-engine", "refused", "no-swarm", "worker"])
def test_ping_tells_no_engine_from_no_manager(reg, client, error, message):
    """`up` asks the manager first (before it writes anything): no engine answers →
    EngineUnreachable (exit 4); an engine that is no manager → SwarmError (exit 1)."""
    import dataclasses

    from stackctl.docker.swarm import Swarm

    deploy = reg.stack.deploy.model_copy(update={"target": "swarm",
                                                 "manager": "tcp://10.0.0.9:2376"})
    sw = Swarm(dataclasses.replace(reg, stack=reg.stack.model_copy(update={"deploy": deploy})),
               client=client)
    if error is None:
        sw.ping()
        return
    with pytest.raises(Exception) as exc:
        sw.ping()
    assert type(exc.value).__name__ == error and message in str(exc.value)
