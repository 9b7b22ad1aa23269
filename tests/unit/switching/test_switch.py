"""Planners and the health gate as data; switching against a fake Docker adapter."""

from __future__ import annotations

import socket

import pytest

from stackctl.docker.models import ContainerState
from stackctl.health.gate import GateFailure, wait_healthy
from stackctl.registry.load import load_registry
from stackctl.store.lock import Busy, stack_lock
from stackctl.switching.loop import SwitchFailed, SwitchOptions
from stackctl.switching.members import members_of
from stackctl.switching.policy import plan_switch
from stackctl.targets.compose_plan import PlanError, plan_up
from stackctl.targets.compose_switch import switch_compose
from tests.fakes.docker import FakeDocker
from tests.paths import REPO


@pytest.fixture
def members(offline):
    """The offline registry's GPU-group members (what `switch` plans with)."""
    return members_of(offline)


@pytest.fixture
def shipped():
    return load_registry(REPO / "config")


def cs(service: str, state: str = "running", health: str = "healthy", code=None):
    return ContainerState(name=f"p-{service}-1", service=service, state=state, health=health,
                          exit_code=code)


class FakeTime:
    def __init__(self):
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.now += s


# -- plan_up -------------------------------------------------------------------------------

def test_default_profiles_start_gateway_cache_and_their_providers(offline):
    plan = plan_up(offline, [], [])
    assert plan.profiles == ["llamacpp", "ollama", "vllm-qwen"]
    assert plan.services == ["litellm", "redis", "llama_cpp", "ollama", "vllm-qwen"]
    assert plan.expected_models == ["smollm2", "qwen2.5-coder:7b", "qwen-coder-vllm"]


def test_monitoring_profile_adds_its_services(shipped):
    plan = plan_up(shipped, ["monitoring"], [])
    assert plan.services == ["litellm", "redis", "prometheus", "alertmanager", "pushgateway",
                             "redis-exporter", "blackbox-exporter", "grafana", "loki", "alloy"]


def test_two_members_of_one_gpu_group_are_refused(offline):
    with pytest.raises(PlanError, match="share exclusive GPU group 'gpu0'.*stackctl switch"):
        plan_up(offline, ["vllm-qwen", "vllm-dolphin"], [])


def test_up_of_other_member_while_one_runs_points_to_switch(offline):
    with pytest.raises(PlanError) as exc:
        plan_up(offline, ["vllm-dolphin"], [cs("vllm-qwen")])
    assert "vllm-qwen is running" in str(exc.value)
    assert "stackctl switch vllm-dolphin" in str(exc.value)


def test_up_of_running_member_again_is_fine(offline):
    assert "vllm-qwen" in plan_up(offline, ["vllm-qwen"], [cs("vllm-qwen")]).services


def test_unknown_profile_gets_did_you_mean(offline):
    with pytest.raises(PlanError, match="unknown profile 'olama'; did you mean 'ollama'"):
        plan_up(offline, ["olama"], [])


# -- health gate (fake time) ---------------------------------------------------------------

def test_gate_waits_until_every_service_is_ready():
    t = FakeTime()
    frames = iter([[cs("a", health="starting")], [cs("a"), cs("b", health="starting")],
                   [cs("a"), cs("b")]])
    last = []

    def observe():
        nonlocal last
        last = next(frames, last)
        return last
    gate = wait_healthy(["a", "b"], observe, timeout=10, clock=t.clock, sleep=t.sleep)
    assert gate.ready_after == {"a": 0.25, "b": 0.5}


def test_container_without_healthcheck_counts_when_running():
    t = FakeTime()
    gate = wait_healthy(["a"], lambda: [cs("a", health="none")], 5, clock=t.clock, sleep=t.sleep)
    assert gate.ready_after == {"a": 0.0}


def test_gate_fails_fast_on_exit_with_code_and_logs():
    t = FakeTime()
    with pytest.raises(GateFailure) as exc:
        wait_healthy(["a"], lambda: [cs("a", state="exited", health="none", code=3)], 60,
                     logs=lambda name: f"boom in {name}", clock=t.clock, sleep=t.sleep)
    assert t.now == 0  # no waiting for the timeout
    text = str(exc.value)
    assert "a exited with code 3 (container p-a-1)" in text and "boom in p-a-1" in text


def test_gate_fails_fast_on_unhealthy():
    t = FakeTime()
    with pytest.raises(GateFailure, match="a is unhealthy"):
        wait_healthy(["a"], lambda: [cs("a", health="unhealthy")], 60, clock=t.clock,
                     sleep=t.sleep)


def test_gate_times_out_naming_the_service():
    t = FakeTime()
    with pytest.raises(GateFailure) as exc:
        wait_healthy(["a", "b"], lambda: [cs("a"), cs("b", health="starting")], 12,
                     logs=lambda n: "still loading", clock=t.clock, sleep=t.sleep)
    assert str(exc.value).startswith("b not healthy after 12s (state running, health starting)")
    assert "still loading" in str(exc.value)
    assert 12 <= t.now <= 12.5


def test_gate_timeout_without_container():
    t = FakeTime()
    with pytest.raises(GateFailure, match=r"a not healthy after 3s \(no container\)"):
        wait_healthy(["a"], lambda: [], 3, clock=t.clock, sleep=t.sleep)


# -- lock -----------------------------------------------------------------------------------

def test_second_holder_fails_fast_naming_the_first():
    with stack_lock("p", "switch"):
        with pytest.raises(Busy, match=r"`stackctl switch` \(pid \d+\) is in progress"):
            with stack_lock("p", "up"):
                pass
    with stack_lock("p", "up"):  # released
        pass


def test_lock_wait_gives_up_after_the_wait():
    with stack_lock("p", "switch"):
        with pytest.raises(Busy):
            with stack_lock("p", "up", wait=0.3):
                pass


# -- up: every image is present before anything starts ---------------------------------------

def test_up_names_each_missing_image_its_services_and_how_to_get_it_and_starts_nothing(offline):
    from stackctl.targets.compose_up import ImagesMissing, UpOptions, bring_up

    docker = FakeDocker(images={"litellm": "stackctl-local/litellm:1.106.2",
                                "redis": "stackctl-local/redis:7",
                                "llama_cpp": "stackctl-local/llama-server:0.3.36",
                                "vllm-qwen": "vllm/vllm-openai:v0.11.0"},
                        present={"stackctl-local/redis:7"})
    with pytest.raises(ImagesMissing) as exc:
        bring_up(offline, docker, UpOptions())
    text = str(exc.value)
    assert "3 image(s) missing, nothing was started" in text
    assert "stackctl-local/litellm:1.106.2 (needed by litellm): build it with `stackctl images " \
        "build`" in text
    assert "vllm/vllm-openai:v0.11.0 (needed by vllm-qwen): pull it" in text
    assert "redis:7" not in text and docker.calls == []  # nothing started, nothing pulled


def test_up_pull_fetches_what_a_registry_has_never_the_local_set(offline):
    from stackctl.targets.compose_up import ImagesMissing, UpOptions, bring_up

    docker = FakeDocker(images={"litellm": "stackctl-local/litellm:1.106.2",
                                "vllm-qwen": "pullable/vllm:1", "ollama": "gone/ollama:1"},
                        present={"stackctl-local/litellm:1.106.2"})
    with pytest.raises(ImagesMissing) as exc:
        bring_up(offline, docker, UpOptions(pull=True))
    assert ("pull", "pullable/vllm:1") in docker.calls and "pullable/vllm:1" not in str(exc.value)
    assert "gone/ollama:1 (needed by ollama)" in str(exc.value)
    assert not any(c[0] == "up" for c in docker.calls)


# -- switch ---------------------------------------------------------------------------------

GPU = {"org.stackctl.gpu-group": "gpu0"}


def test_plan_switch_short_name_and_noop(members):
    plan = plan_switch(members, "dolphin", [cs("vllm-qwen")])
    assert (plan.group, plan.target, plan.stop, plan.noop) == \
        ("gpu0", "vllm-dolphin", ["vllm-qwen"], False)
    assert plan_switch(members, "qwen", [cs("vllm-qwen")]).noop


def test_plan_switch_stops_every_other_running_member(members):
    plan = plan_switch(members, "qwen", [cs("vllm-qwen"), cs("vllm-dolphin")])
    assert plan.stop == ["vllm-dolphin"] and not plan.noop


@pytest.mark.parametrize("name, message", [
    ("dolphn", "did you mean 'vllm-dolphin'"),
    ("vllm", "ambiguous: it matches vllm-qwen, vllm-dolphin"),
    ("ollama", "not a member of an exclusive GPU group"),
])
def test_plan_switch_bad_names(members, name, message):
    with pytest.raises(PlanError, match=message):
        plan_switch(members, name, [])


def test_switch_stops_then_starts_then_confirms(offline):
    docker = FakeDocker(running={"litellm": {}, "vllm-qwen": GPU})
    asked = []
    result = switch_compose(offline, docker, SwitchOptions(member="dolphin"),
                           ready=lambda s: False, routable=lambda m, d: asked.append((m, d)) or True)
    # the target's container is created while the active member stops (no GPU needed for
    # that); it starts only once the active member has stopped
    assert set(docker.calls[:2]) == {("stop", "p-vllm-qwen-1"), ("create", "vllm-dolphin")}
    assert docker.calls[2:] == [("start", "p-vllm-dolphin-1")]
    assert docker.state["vllm-qwen"].state == "exited"  # kept, stopped: quick to start again
    assert asked == [("dolphin-uncensored-vllm", "dolphin-uncensored-vllm@vllm-dolphin")]
    assert set(result.timings) == {"stop", "start", "ready", "routable", "total"}
    assert "litellm" in docker.state  # the gateway is never touched


def test_dry_run_and_noop_change_nothing(offline):
    docker = FakeDocker(running={"vllm-qwen": GPU})
    r = switch_compose(offline, docker, SwitchOptions(member="dolphin", dry_run=True))
    assert docker.calls == [] and r.plan.describe()[0] == "stop vllm-qwen (graceful)"
    r = switch_compose(offline, docker, SwitchOptions(member="qwen"), ready=lambda s: False,
                      routable=lambda m, d: True)
    assert docker.calls == [] and "already the active member" in r.plan.describe()[0]


@pytest.mark.parametrize("how, reason", [("never", "not healthy after 0.5s"),
                                         ("exit", "exited with code 1")])
def test_failed_target_is_rolled_back(offline, how, reason):
    docker = FakeDocker(running={"vllm-qwen": GPU})
    docker.behaviour["vllm-dolphin"] = how
    with pytest.raises(SwitchFailed) as exc:
        switch_compose(offline, docker, SwitchOptions(member="dolphin", timeout=0.5),
                      ready=lambda s: False, routable=lambda m, d: True)
    text = str(exc.value)
    assert reason in text and "rolled back: vllm-qwen is healthy and routable again" in text
    assert "loading..." in text  # the target's last log lines
    assert sorted(c[0] for c in docker.calls[:2]) == ["create", "stop"]
    stop_target = [("stop", "p-vllm-dolphin-1")] if how == "never" else []  # exited already
    # the previous member's kept container starts again as it was (no Compose run)
    assert docker.calls[2:] == [("start", "p-vllm-dolphin-1"), *stop_target,
                                ("start", "p-vllm-qwen-1")]
    assert docker.state["vllm-qwen"].ready and not docker.state["vllm-dolphin"].running


def test_target_healthy_but_not_routable_is_rolled_back(offline):
    docker = FakeDocker(running={"vllm-qwen": GPU})
    with pytest.raises(SwitchFailed, match="did not route 'dolphin-uncensored-vllm'"):
        switch_compose(offline, docker, SwitchOptions(member="dolphin", routable_timeout=1),
                      ready=lambda s: False, routable=lambda m, d: "qwen" in m)
    assert {s for s, st in docker.state.items() if st.running} == {"vllm-qwen"}


def test_failed_rollback_says_the_group_is_empty(offline):
    docker = FakeDocker(running={"vllm-qwen": GPU})
    docker.behaviour.update({"vllm-dolphin": "exit", "vllm-qwen": "exit"})
    with pytest.raises(SwitchFailed, match="rollback to vllm-qwen ALSO failed"):
        switch_compose(offline, docker, SwitchOptions(member="dolphin", timeout=0.5),
                      ready=lambda s: False, routable=lambda m, d: True)


def test_switch_while_locked_fails_fast(offline):
    docker = FakeDocker(project="stackctl-offline", running={"vllm-qwen": GPU})
    with stack_lock("stackctl-offline", "up"):
        with pytest.raises(Busy, match="`stackctl up`"):
            switch_compose(offline, docker, SwitchOptions(member="dolphin"),
                          ready=lambda s: False, routable=lambda m, d: True)
    assert docker.calls == []


def test_dry_run_neither_takes_nor_waits_for_the_lock(offline):
    # a dry run changes nothing: it answers while an up/switch runs, and does not block one
    docker = FakeDocker(project="stackctl-offline", running={"vllm-qwen": GPU})
    with stack_lock("stackctl-offline", "up"):
        r = switch_compose(offline, docker, SwitchOptions(member="dolphin", dry_run=True))
    assert r.plan.describe()[0] == "stop vllm-qwen (graceful)" and docker.calls == []


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_switch_without_monitoring_says_nothing_about_the_pushgateway(offline, monkeypatch,
                                                                      closed_port):
    # the monitoring profile is not up: no Pushgateway listens, and that is no news; the
    # refused connection says so, without another look at the engine
    monkeypatch.setattr("stackctl.targets.compose_switch.pushgateway_url",
                        lambda reg: f"http://127.0.0.1:{closed_port}")
    docker = FakeDocker(running={"litellm": {}, "vllm-qwen": GPU})
    looked: list[str | None] = []
    listing = docker.containers
    monkeypatch.setattr(docker, "containers", lambda service=None, group=None: (
        looked.append(service), listing(service, group))[1])
    said: list[str] = []
    switch_compose(offline, docker, SwitchOptions(member="dolphin"), say=said.append,
                   ready=lambda s: False, routable=lambda m, d: True)
    assert not any("switch record not pushed" in line for line in said), said
    assert "pushgateway" not in looked


def test_a_pushgateway_that_runs_and_fails_the_push_is_reported(offline, monkeypatch):
    with socket.socket() as silent:  # accepts connections (backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        monkeypatch.setattr("stackctl.targets.compose_switch.pushgateway_url",
                            lambda reg: f"http://127.0.0.1:{silent.getsockname()[1]}")
        monkeypatch.setattr("stackctl.monitoring.client.SwitchReport.__init__.__defaults__",
                            (0.2,))
        # something else on the port while no Pushgateway runs: no news either
        for running, warned in (({}, False), ({"pushgateway": {}}, True)):
            docker = FakeDocker(running={"litellm": {}, "vllm-qwen": GPU, **running})
            said: list[str] = []
            switch_compose(offline, docker, SwitchOptions(member="dolphin"), say=said.append,
                           ready=lambda s: False, routable=lambda m, d: True)
            assert any("switch record not pushed" in line for line in said) is warned, said


def test_host_probe_sees_readiness_before_dockers_next_healthcheck():
    t = FakeTime()
    gate = wait_healthy(["a"], lambda: [cs("a", health="starting")], 10,
                        probe=lambda s: t.now >= 1.0, clock=t.clock, sleep=t.sleep)
    assert gate.ready_after == {"a": 1.0}


def test_fast_probe_backs_off_as_the_wait_grows():
    t = FakeTime()
    asked = []

    def probe(service: str) -> bool:
        asked.append(t.now)
        return t.now >= 60
    gate = wait_healthy(["a"], lambda: [cs("a", health="starting")], 120, probe=probe,
                        poll=0.5, probe_poll=0.02, clock=t.clock, sleep=t.sleep)
    assert 60 <= gate.ready_after["a"] <= 60.6  # seen within 1% of the wait
    assert len([x for x in asked if x < 2]) >= 95  # every 20 ms at first
    assert len(asked) < 600  # a fixed 20 ms would have asked 3000 times


def test_host_probe_never_overrides_a_failed_container():
    t = FakeTime()
    with pytest.raises(GateFailure, match="exited with code 2"):
        wait_healthy(["a"], lambda: [cs("a", state="exited", health="none", code=2)], 10,
                     probe=lambda s: True, clock=t.clock, sleep=t.sleep)


def test_timeout_names_every_service_still_waiting():
    t = FakeTime()
    with pytest.raises(GateFailure) as exc:
        wait_healthy(["gw", "a", "b"], lambda: [cs("gw", health="starting"), cs("a"),
                                                cs("b", health="starting")], 5,
                     logs=lambda n: f"log {n}", clock=t.clock, sleep=t.sleep)
    text = str(exc.value)
    assert "gw not healthy after 5s" in text and "b not healthy after 5s" in text
    assert "log p-b-1" in text and "a not healthy" not in text


# -- members: what switching knows of each GPU-group member ---------------------------------

def test_members_hold_each_members_facts(members):
    assert [(m.name, m.group) for m in members.values()] == \
        [("vllm-qwen", "gpu0"), ("vllm-dolphin", "gpu0")]
    d = members["vllm-dolphin"]
    assert (d.profile, d.model) == ("vllm-dolphin", "dolphin-uncensored-vllm")
    assert d.ready_url == "http://127.0.0.1:8002/v1/models"
    assert d.ready_expect == "dolphin-uncensored-vllm" and d.stop_grace > 0


def test_switch_failed_rollback_is_not_reported_as_restored(offline):
    docker = FakeDocker(running={"vllm-qwen": GPU})
    docker.behaviour.update({"vllm-dolphin": "exit", "vllm-qwen": "exit"})
    with pytest.raises(SwitchFailed) as exc:
        switch_compose(offline, docker, SwitchOptions(member="dolphin", timeout=0.5),
                      ready=lambda s: False, routable=lambda m, d: True)
    assert exc.value.restored is False
    docker = FakeDocker(running={"vllm-qwen": GPU})
    docker.behaviour["vllm-dolphin"] = "exit"
    with pytest.raises(SwitchFailed) as exc:
        switch_compose(offline, docker, SwitchOptions(member="dolphin", timeout=0.5),
                      ready=lambda s: False, routable=lambda m, d: True)
    assert exc.value.restored is True


# -- status: a switched-out member is a standby, not a failure -----------------------------------

def test_stopped_member_is_standby_only_while_another_member_is_active(offline):
    from stackctl.targets.compose_status import collect_status

    docker = FakeDocker(running={"litellm": {}, "redis": {}, "vllm-qwen": GPU})
    docker._make("vllm-dolphin", "exit", GPU)
    rows = {s.name: s for s in collect_status(offline, docker, timeout=0.2).services}
    assert rows["vllm-dolphin"].standby and rows["vllm-dolphin"].ok
    assert not rows["vllm-qwen"].standby

    docker.stop("p-vllm-qwen-1", 1)  # now no member runs: the exited ones are failures
    rows = {s.name: s for s in collect_status(offline, docker, timeout=0.2).services}
    assert not rows["vllm-dolphin"].standby and not rows["vllm-dolphin"].ok
    assert not rows["vllm-qwen"].ok


def test_status_of_an_on_demand_stack_says_whether_its_scheduler_runs(offline, edited):
    import fcntl

    from stackctl.resident.paths import pid_file
    from stackctl.targets.compose_status import collect_status

    docker = FakeDocker(running={"litellm": {}, "redis": {}, "vllm-qwen": GPU})
    assert collect_status(offline, docker, timeout=0.2).scheduler is None  # not on demand

    def on_demand(data):  # type: ignore[no-untyped-def]
        data["gpu_groups"]["gpu0"]["on_demand"] = True
    reg = edited("stack.yaml", on_demand)
    st = collect_status(reg, docker, timeout=0.2)
    assert st.scheduler is not None and st.scheduler.pid is None and not st.healthy
    path = pid_file(reg.stack.project)
    path.write_text("4242\n")
    with open(path) as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as the scheduler's supervisor holds it
        st = collect_status(reg, docker, timeout=0.2)
    assert st.scheduler is not None and st.scheduler.pid == 4242


def test_member_started_a_moment_ago_is_ready_once_its_healthcheck_passes_from_the_host(offline):
    # a rollback or switch returns as soon as the host-side check passes; Docker's first
    # healthcheck may still be due, and status must not call the stack degraded meanwhile
    from stackctl.targets.compose_status import collect_status

    docker = FakeDocker(running={"litellm": {}, "redis": {}})
    docker._make("vllm-qwen", "never", GPU)  # running, Docker health still "starting"
    passes = collect_status(offline, docker, timeout=0.2, probe=lambda s: s == "vllm-qwen")
    qwen = {s.name: s for s in passes.services}["vllm-qwen"]
    assert qwen.health == "starting" and qwen.ready and qwen.ok

    fails = collect_status(offline, docker, timeout=0.2, probe=lambda s: False)
    qwen = {s.name: s for s in fails.services}["vllm-qwen"]
    assert not qwen.ready and not qwen.ok and not fails.healthy


def test_rollback_restarts_the_kept_container_even_when_compose_cannot_create(offline):
    # a broken .env or compose file makes `compose create` fail for every service: the
    # previous member's container, kept and stopped, still starts as it ran before
    from stackctl.docker.adapter import DockerError

    docker = FakeDocker(running={"vllm-qwen": GPU})

    def broken(profiles, service):
        docker.calls.append(("create", service))
        raise DockerError("docker compose create: required variable X is missing a value")
    docker.create_service = broken
    with pytest.raises(SwitchFailed) as exc:
        switch_compose(offline, docker, SwitchOptions(member="dolphin", timeout=0.5),
                      ready=lambda s: False, routable=lambda m, d: True)
    assert exc.value.restored and "could not be created" in str(exc.value)
    assert "rolled back: vllm-qwen is healthy and routable again" in str(exc.value)
    assert docker.calls[-1] == ("start", "p-vllm-qwen-1")
    assert ("create", "vllm-qwen") not in docker.calls


def test_routable_needs_a_streak_so_every_gateway_worker_routes_to_the_member():
    # two workers: one still cools the member down and answers from the fallback; requests
    # go side by side, a round succeeds when every answer comes from the member
    from stackctl.switching.effects import confirm_routable

    class Gateway:
        def __init__(self, answers):
            self.answers, self.asked = list(answers), 0

        def answered_by(self, model, timeout):
            self.asked += 1
            return self.answers.pop(0) if self.answers else "m@member"

    t = FakeTime()
    fallback, member = "f@ollama", "m@member"
    gw = Gateway([member, fallback, member, member, member, fallback])
    assert confirm_routable(gw, "m", member, timeout=5, streak=3, clock=t.clock, sleep=t.sleep)
    assert gw.asked == 9  # three rounds of three: the first two had a fallback answer
    never = Gateway([fallback] * 1000)
    never.answered_by = lambda model, timeout: fallback
    assert not confirm_routable(never, "m", member, timeout=2, streak=3, clock=t.clock,
                                sleep=t.sleep)
