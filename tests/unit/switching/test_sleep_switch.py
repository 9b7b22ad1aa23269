"""Sleep-mode switching of an exclusive GPU group (issue 13): planning, the order of effects
against a fake Docker and a fake engine, rollback, `up` beside sleeping members, validation
and rendering. The gateway's routing state: test_routing.py; the vLLM engine client:
test_vllm.py."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

import pytest

from stackctl.cli import cli
from stackctl.docker.models import ContainerState
from stackctl.registry.models import GpuGroup
from stackctl.render.compose import provider_service
from stackctl.switching.loop import SwitchFailed, SwitchOptions
from stackctl.switching.members import members_of
from stackctl.switching.policy import plan_switch
from stackctl.switching.vllm import EngineError
from stackctl.targets.compose_plan import PlanError, plan_up
from stackctl.targets.compose_switch import switch_compose
from tests.fakes.docker import FakeDocker
from tests.registry_edits import key, line_of

QWEN, DOLPHIN = "vllm-qwen", "vllm-dolphin"
QWEN_MODEL, DOLPHIN_MODEL, FALLBACK = "qwen-coder-vllm", "dolphin-uncensored-vllm", \
    "qwen2.5-coder:7b"


# -- fixtures and fakes ----------------------------------------------------------------------

@pytest.fixture(autouse=True)
def no_pushgateway(monkeypatch):
    """A switch record is pushed nowhere (the offline example's pushgateway is not up)."""
    monkeypatch.setattr("stackctl.targets.compose_switch.pushgateway_url", lambda reg: None)


@pytest.fixture
def members(sleepy):
    return members_of(sleepy)


def with_group(reg, **settings: Any):
    """The registry with gpu0's settings replaced."""
    groups = {"gpu0": GpuGroup(**settings)} if settings else {}
    return dataclasses.replace(reg, stack=reg.stack.model_copy(update={"gpu_groups": groups}))


def cs(service: str, state: str = "running", health: str = "healthy") -> ContainerState:
    return ContainerState(name=f"p-{service}-1", service=service, state=state, health=health,
                          labels={"org.stackctl.gpu-group": "gpu0"})


def state(divert: dict | None = None, hold: dict | None = None) -> dict:
    return {"v": 1, "divert": divert or {}, "hold": hold or {}}


def held(model: str, seconds: float = 10, fallback: str | None = FALLBACK) -> dict:
    return {model: {"seconds": seconds, "fallback": fallback}}


class LoggingDocker(FakeDocker):
    """FakeDocker whose starts and stops also land in the shared effect log."""

    def __init__(self, log: list, **kw: Any):
        super().__init__(**kw)
        self.log = log

    def start(self, container: str) -> None:
        self.log.append(("start", container))
        super().start(container)

    def stop(self, container: str, timeout: float) -> None:
        self.log.append(("stop", container))
        super().stop(container, timeout)


class Engines:
    """engine(member) factory: every call lands in `log`; (member, op) in `fail` raises
    EngineError; an engine whose container is not running cannot answer either."""

    def __init__(self, log: list, docker: FakeDocker, fail: set[tuple[str, str]] = frozenset()):
        self.log, self.docker, self.fail = log, docker, set(fail)
        self.stuck: dict[str, list[int]] = {}  # member → requests queued after each sleep

    def __call__(self, member):
        return FakeEngine(member.name, self)


@dataclasses.dataclass
class FakeEngine:
    name: str
    o: Engines

    def _do(self, op: str, arg: Any) -> None:
        self.o.log.append((op, self.name, arg))
        st = self.o.docker.state.get(self.name)
        if st is None or not st.running:
            raise EngineError(f"{self.name}: POST /{op} failed: connection refused")
        if (self.name, op) in self.o.fail:
            raise EngineError(f"{self.name}: /{op} answered 500: boom-{op}")

    def drain(self, seconds: float) -> int:
        self._do("drain", seconds)
        return 0

    def sleep(self, level: int) -> None:
        self._do("sleep", level)

    def wake(self, level: int) -> None:
        self._do("wake", level)

    def warm_up(self, model: str) -> None:
        self._do("warm_up", model)

    def in_flight(self) -> int:
        queued = self.o.stuck.get(self.name)
        return queued.pop(0) if queued else 0


@dataclasses.dataclass
class Switch:
    log: list
    docker: LoggingDocker
    engines: Engines

    def run(self, reg, member: str, **opts: Any):
        return switch_compose(
            reg, self.docker, SwitchOptions(member=member, **{"timeout": 2, **opts}),
            ready=lambda s: False,
            routable=lambda m, d: self.log.append(("routable", m, d)) or True,
            engine=self.engines, route=lambda st: self.log.append(("route", st)),
            asleep=self.asleep)

    def asleep(self, observed: list[ContainerState]) -> dict[str, bool | None]:
        return {s.service: self.sleeping.get(s.service) for s in observed if s.running}

    sleeping: dict[str, bool | None] = dataclasses.field(default_factory=dict)

    def engine_calls(self) -> list[tuple]:
        return [e for e in self.log if e[0] in ("drain", "sleep", "wake", "warm_up")]

    def states(self) -> list[dict]:
        return [e[1] for e in self.log if e[0] == "route"]


def switch_setup(running: dict[str, bool | None], fail: set = frozenset()) -> Switch:
    """Members running with their sleep state (True asleep, False awake, None: cannot say)."""
    log: list = []
    docker = LoggingDocker(log, running={m: {} for m in running})
    return Switch(log, docker, Engines(log, docker, fail), dict(running))


# -- 1. plan_switch in sleep mode -------------------------------------------------------------

def test_awake_other_sleeps_and_asleep_target_wakes(members):
    plan = plan_switch(members, "dolphin", [cs(QWEN), cs(DOLPHIN)],
                       {QWEN: False, DOLPHIN: True})
    assert (plan.mode, plan.sleep, plan.stop, plan.wake, plan.noop, plan.level) == \
        ("sleep", [QWEN], [], True, False, 1)
    assert plan.describe() == [
        "let vllm-qwen's requests finish, then put it to sleep (level 1)",
        "wake vllm-dolphin",
        "warm vllm-dolphin up with a one-token request",
        "wait until vllm-dolphin is healthy",
        "confirm through the gateway that vllm-dolphin's model answers"]


def test_other_whose_engine_cannot_say_is_stopped(members):
    plan = plan_switch(members, "dolphin", [cs(QWEN), cs(DOLPHIN)], {QWEN: None, DOLPHIN: True})
    assert (plan.stop, plan.sleep, plan.wake, plan.noop) == ([QWEN], [], True, False)
    assert plan.describe()[:2] == ["stop vllm-qwen (graceful)", "wake vllm-dolphin"]
    # a running member missing from the states is as unknown as None
    plan = plan_switch(members, "dolphin", [cs(QWEN)], {})
    assert plan.stop == [QWEN] and plan.sleep == []


def test_target_not_running_is_started_cold_then_warmed(members):
    plan = plan_switch(members, "dolphin", [cs(QWEN)], {QWEN: False}, level=2)
    assert (plan.sleep, plan.stop, plan.wake, plan.noop, plan.level) == \
        ([QWEN], [], False, False, 2)
    steps = plan.describe()
    assert steps[:3] == ["let vllm-qwen's requests finish, then put it to sleep (level 2)",
                         "start vllm-dolphin", "warm vllm-dolphin up with a one-token request"]


def test_awake_target_beside_sleeping_members_is_a_noop(members):
    plan = plan_switch(members, "dolphin", [cs(QWEN), cs(DOLPHIN)], {QWEN: True, DOLPHIN: False})
    assert plan.noop and (plan.sleep, plan.stop, plan.wake) == ([], [], False)
    assert "already the active member" in plan.describe()[0]


def test_sleeping_target_alone_is_woken_not_a_noop(members):
    plan = plan_switch(members, "dolphin", [cs(DOLPHIN), cs(QWEN, state="exited")],
                       {DOLPHIN: True})
    assert plan.wake and not plan.noop and plan.sleep == [] and plan.stop == []
    assert "sleep" not in " ".join(plan.describe()[:1])  # nothing to put to sleep
    assert plan.describe()[0] == "wake vllm-dolphin"


def test_restart_mode_plan_is_unchanged_without_states(members):
    plan = plan_switch(members, "dolphin", [cs(QWEN), cs(DOLPHIN)])
    assert (plan.mode, plan.stop, plan.sleep, plan.wake) == ("restart", [QWEN], [], False)
    assert plan.describe()[:2] == ["stop vllm-qwen (graceful)", "start vllm-dolphin"]
    assert not any("warm" in s for s in plan.describe())


# -- 2. ensure_active in sleep mode: the order of effects -------------------------------------

def test_switch_holds_sleeps_wakes_warms_then_releases_in_that_order(sleepy):
    sw = switch_setup({QWEN: False, DOLPHIN: True})
    result = sw.run(sleepy, "dolphin")
    assert sw.log == [
        # the target is held and the outgoing model diverted before anything changes
        ("route", state({QWEN_MODEL: FALLBACK}, held(DOLPHIN_MODEL))),
        ("drain", QWEN, 5.0),  # no gpu_groups.drain: the member's stop_grace_period
        ("sleep", QWEN, 1),
        ("wake", DOLPHIN, 1),  # only after the outgoing sleeps: never two awake
        ("warm_up", DOLPHIN, DOLPHIN_MODEL),
        ("route", state({QWEN_MODEL: FALLBACK})),  # released: only the outgoing diverted
        ("routable", DOLPHIN_MODEL, f"{DOLPHIN_MODEL}@{DOLPHIN}"),
    ]
    assert result.plan.wake and result.plan.sleep == [QWEN]
    assert {"drain", "sleep", "wake", "warm", "ready", "routable", "total"} <= set(result.timings)
    # sleeping is not stopping: both containers still run, nothing was created or started
    assert sw.docker.calls == []
    assert sw.docker.state[QWEN].running and sw.docker.state[DOLPHIN].running


def test_hold_state_carries_seconds_and_fallback_of_the_registry(sleepy):
    sw = switch_setup({QWEN: True, DOLPHIN: False})
    sw.run(sleepy, "qwen")
    first = sw.states()[0]
    assert first["hold"] == {QWEN_MODEL: {"seconds": 10, "fallback": FALLBACK}}
    assert first["divert"] == {DOLPHIN_MODEL: FALLBACK}
    assert sw.states()[-1] == state({DOLPHIN_MODEL: FALLBACK})


def test_default_route_writes_through_write_routing(sleepy, routes):
    log: list = []
    docker = LoggingDocker(log, running={QWEN: {}, DOLPHIN: {}})
    switch_compose(sleepy, docker, SwitchOptions(member="dolphin", timeout=2),
                  ready=lambda s: False, routable=lambda m, d: True,
                  engine=Engines(log, docker),
                  asleep=lambda obs: {QWEN: False, DOLPHIN: True})
    assert routes == [state({QWEN_MODEL: FALLBACK}, held(DOLPHIN_MODEL)),
                      state({QWEN_MODEL: FALLBACK})]


def test_cold_start_creates_and_starts_the_target_then_warms_it(sleepy):
    sw = switch_setup({QWEN: False})
    result = sw.run(sleepy, "dolphin")
    assert ("create", DOLPHIN) in sw.docker.calls
    assert sw.log == [
        ("route", state({QWEN_MODEL: FALLBACK}, held(DOLPHIN_MODEL))),
        ("drain", QWEN, 5.0),
        ("sleep", QWEN, 1),
        ("start", "p-vllm-dolphin-1"),  # its GPU memory claimed only once qwen sleeps
        ("warm_up", DOLPHIN, DOLPHIN_MODEL),
        ("route", state({QWEN_MODEL: FALLBACK})),
        ("routable", DOLPHIN_MODEL, f"{DOLPHIN_MODEL}@{DOLPHIN}"),
    ]
    assert not result.plan.wake and "warm" in result.timings
    assert sw.docker.state[QWEN].running and sw.docker.state[DOLPHIN].running


def test_level_2_drain_setting_and_hold_0(sleepy):
    reg = with_group(sleepy, switch="sleep", sleep_level=2, hold=0, drain=2)
    sw = switch_setup({QWEN: False, DOLPHIN: True})
    sw.run(reg, "dolphin")
    assert sw.engine_calls() == [("drain", QWEN, 2), ("sleep", QWEN, 2), ("wake", DOLPHIN, 2),
                                 ("warm_up", DOLPHIN, DOLPHIN_MODEL)]
    # hold 0: the model being switched in goes to its fallback at once
    assert sw.states()[0] == state({QWEN_MODEL: FALLBACK, DOLPHIN_MODEL: FALLBACK})


def test_noop_switch_touches_no_engine_and_routes_to_the_target(sleepy):
    sw = switch_setup({QWEN: True, DOLPHIN: False})
    result = sw.run(sleepy, "dolphin")
    assert result.plan.noop
    # held while the group is looked at (before it is known to be a no-op), then released
    assert sw.log == [("route", state({QWEN_MODEL: FALLBACK}, held(DOLPHIN_MODEL))),
                      ("route", state({QWEN_MODEL: FALLBACK})),
                      ("routable", DOLPHIN_MODEL, f"{DOLPHIN_MODEL}@{DOLPHIN}")]
    assert sw.docker.calls == []


def test_dry_run_changes_nothing(sleepy):
    sw = switch_setup({QWEN: False, DOLPHIN: True})
    result = sw.run(sleepy, "dolphin", dry_run=True)
    assert sw.log == [] and sw.docker.calls == []
    assert result.plan.describe()[1] == "wake vllm-dolphin"


def test_unknown_outgoing_is_stopped_not_slept(sleepy):
    sw = switch_setup({QWEN: None, DOLPHIN: True})
    sw.run(sleepy, "dolphin")
    assert sw.log[1:4] == [("stop", "p-vllm-qwen-1"), ("wake", DOLPHIN, 1),
                           ("warm_up", DOLPHIN, DOLPHIN_MODEL)]
    assert not sw.docker.state[QWEN].running


# -- 3. rollback and a member that will not sleep -------------------------------------------

def test_target_that_will_not_wake_is_retired_and_previous_woken(sleepy):
    sw = switch_setup({QWEN: False, DOLPHIN: True}, fail={(DOLPHIN, "wake")})
    with pytest.raises(SwitchFailed) as exc:
        sw.run(sleepy, "dolphin")
    assert exc.value.restored is True
    text = str(exc.value)
    assert "vllm-dolphin did not wake" in text and "boom-wake" in text
    assert "rolled back: vllm-qwen is healthy and routable again" in text
    assert sw.engine_calls() == [
        ("drain", QWEN, 5.0), ("sleep", QWEN, 1),
        ("wake", DOLPHIN, 1),                       # fails
        ("wake", QWEN, 1), ("warm_up", QWEN, QWEN_MODEL)]
    # the failed target leaves the GPU stopped (in no known state, it is not put to sleep)
    assert sw.log.index(("stop", "p-vllm-dolphin-1")) < sw.log.index(("wake", QWEN, 1))
    assert not sw.docker.state[DOLPHIN].running
    states = sw.states()
    assert states[1] == state({DOLPHIN_MODEL: FALLBACK}, held(QWEN_MODEL))  # previous held
    assert states[-1] == state({DOLPHIN_MODEL: FALLBACK})  # the previous member routed
    assert sw.log[-1] == ("routable", QWEN_MODEL, f"{QWEN_MODEL}@{QWEN}")


def test_requests_that_reach_the_outgoing_member_as_it_sleeps_are_served_first(sleepy):
    """One that was on its way when the routing state changed lands in the sleeping engine,
    which would hold it until a wake that may never come: the member is woken to answer
    it and put to sleep again before the target wakes."""
    sw = switch_setup({QWEN: False, DOLPHIN: True})
    sw.engines.stuck[QWEN] = [2, 0]
    sw.run(sleepy, "dolphin")
    assert sw.engine_calls() == [
        ("drain", QWEN, 5.0), ("sleep", QWEN, 1), ("wake", QWEN, 1),
        ("drain", QWEN, 5.0), ("sleep", QWEN, 1),
        ("wake", DOLPHIN, 1), ("warm_up", DOLPHIN, DOLPHIN_MODEL)]


def test_failed_target_is_stopped_whatever_its_engine_says(sleepy):
    sw = switch_setup({QWEN: False, DOLPHIN: True},
                      fail={(DOLPHIN, "wake"), (DOLPHIN, "sleep")})
    with pytest.raises(SwitchFailed) as exc:
        sw.run(sleepy, "dolphin")
    assert exc.value.restored is True
    assert ("stop", "p-vllm-dolphin-1") in sw.log
    assert not sw.docker.state[DOLPHIN].running and sw.docker.state[QWEN].running
    assert sw.log.index(("stop", "p-vllm-dolphin-1")) < sw.log.index(("wake", QWEN, 1))


def test_warm_up_failure_rolls_back_too(sleepy):
    sw = switch_setup({QWEN: False, DOLPHIN: True}, fail={(DOLPHIN, "warm_up")})
    with pytest.raises(SwitchFailed, match="did not answer its warm-up request") as exc:
        sw.run(sleepy, "dolphin")
    assert exc.value.restored is True
    assert sw.states()[-1] == state({DOLPHIN_MODEL: FALLBACK})


def test_previous_that_will_not_wake_either_is_not_restored(sleepy):
    sw = switch_setup({QWEN: False, DOLPHIN: True}, fail={(DOLPHIN, "wake"), (QWEN, "wake")})
    with pytest.raises(SwitchFailed) as exc:
        sw.run(sleepy, "dolphin")
    assert exc.value.restored is False
    text = str(exc.value)
    assert "vllm-dolphin did not wake" in text
    assert "rollback to vllm-qwen ALSO failed" in text and "no healthy member" in text


def test_outgoing_that_will_not_sleep_is_stopped_and_the_switch_succeeds(sleepy):
    sw = switch_setup({QWEN: False, DOLPHIN: True}, fail={(QWEN, "sleep")})
    result = sw.run(sleepy, "dolphin")
    assert sw.log[1:6] == [("drain", QWEN, 5.0), ("sleep", QWEN, 1),
                           ("stop", "p-vllm-qwen-1"),  # the GPU is freed all the same
                           ("wake", DOLPHIN, 1), ("warm_up", DOLPHIN, DOLPHIN_MODEL)]
    assert not sw.docker.state[QWEN].running and sw.docker.state[DOLPHIN].running
    assert result.plan.target == DOLPHIN
    assert sw.states()[-1] == state({QWEN_MODEL: FALLBACK})


def test_outgoing_stopped_for_not_sleeping_is_started_again_on_rollback(sleepy):
    # qwen would not sleep, so it was stopped; dolphin then fails to wake. qwen's engine is
    # gone with its container: the rollback must start the container, not call /wake_up
    sw = switch_setup({QWEN: False, DOLPHIN: True}, fail={(QWEN, "sleep"), (DOLPHIN, "wake")})
    with pytest.raises(SwitchFailed) as exc:
        sw.run(sleepy, "dolphin")
    assert exc.value.restored is True, str(exc.value)
    assert ("start", "p-vllm-qwen-1") in sw.log
    assert sw.docker.state[QWEN].running


def test_no_previous_member_leaves_the_group_empty_but_restored(sleepy):
    sw = switch_setup({DOLPHIN: True}, fail={(DOLPHIN, "wake")})
    with pytest.raises(SwitchFailed, match="no member was running before") as exc:
        sw.run(sleepy, "dolphin")
    assert exc.value.restored is True
    # nothing is active: both models go to their fallbacks
    assert sw.states()[-1] == state({QWEN_MODEL: FALLBACK, DOLPHIN_MODEL: FALLBACK})


# -- 5. plan_up beside sleeping members ------------------------------------------------------

def test_member_may_start_beside_a_sleeping_one(sleepy):
    plan = plan_up(sleepy, ["vllm-dolphin"], [cs(QWEN)], {QWEN: True})
    assert DOLPHIN in plan.services and DOLPHIN_MODEL in plan.expected_models


@pytest.mark.parametrize("asleep", [{QWEN: False}, {QWEN: None}, None])
def test_member_may_not_start_beside_an_awake_or_unknown_one(sleepy, asleep):
    with pytest.raises(PlanError) as exc:
        plan_up(sleepy, ["vllm-dolphin"], [cs(QWEN)], asleep)
    assert "vllm-qwen is running" in str(exc.value)
    assert "`stackctl switch vllm-dolphin`" in str(exc.value)


def test_wanted_member_asleep_is_pointed_to_switch(sleepy):
    with pytest.raises(PlanError) as exc:
        plan_up(sleepy, ["vllm-qwen"], [cs(QWEN), cs(DOLPHIN)], {QWEN: True, DOLPHIN: False})
    assert str(exc.value) == \
        "vllm-qwen sleeps in GPU group 'gpu0': `stackctl switch vllm-qwen` wakes it"


def test_awake_wanted_member_beside_a_sleeper_is_fine(sleepy):
    plan = plan_up(sleepy, ["vllm-dolphin"], [cs(QWEN), cs(DOLPHIN)],
                   {QWEN: True, DOLPHIN: False})
    assert DOLPHIN in plan.services and QWEN not in plan.services


def test_up_leaves_a_running_on_demand_group_to_the_scheduler(edited):
    """The scheduler woke dolphin and put qwen to sleep: `up` (default profiles: qwen)
    neither refuses nor changes the group; on a fresh stack it starts qwen as usual."""
    def on_demand(data):  # type: ignore[no-untyped-def]
        data["gpu_groups"]["gpu0"]["on_demand"] = True
    reg = edited("stack.yaml", on_demand)
    plan = plan_up(reg, [], [cs(QWEN), cs(DOLPHIN)], {QWEN: True, DOLPHIN: False})
    assert QWEN not in plan.services and DOLPHIN not in plan.services
    assert "vllm-qwen" not in plan.profiles
    assert QWEN in plan_up(reg, [], [], {}).services


# -- 6. validate -----------------------------------------------------------------------------

@pytest.fixture
def validate(runner, registry_dir, yaml_edit):
    """validate(file, edit) → (config dir, --json report) of an edited offline copy."""
    def run(file: str | None = None, edit: Callable[[Any], Any] | None = None):
        cfg = registry_dir("offline")
        if file:
            yaml_edit(cfg / file, edit)
        r = runner.invoke(cli, ["validate", "-C", str(cfg), "--json"], catch_exceptions=False)
        assert "Traceback" not in r.output
        return cfg, json.loads(r.stdout)
    return run


def find(problems: list[dict], path: str) -> dict:
    hits = [p for p in problems if p["path"] == path]
    assert len(hits) == 1, (path, problems)
    return hits[0]


@pytest.fixture
def memory(monkeypatch):
    def set_to(gib: float | None) -> None:
        monkeypatch.setattr("stackctl.registry.checks.host_memory_gib", lambda: gib)
    set_to(64.0)
    return set_to


def test_offline_sleep_registry_is_clean(validate, memory):
    _, doc = validate()
    assert doc["ok"] and doc["errors"] == [] and doc["warnings"] == []


def test_unknown_gpu_group_key_gets_did_you_mean(validate, memory):
    def rename(d):
        d["gpu_groups"].insert(0, "gpu1", d["gpu_groups"].pop("gpu0"))
    cfg, doc = validate("stack.yaml", rename)
    p = find(doc["errors"], "gpu_groups.gpu1")
    assert p["file"].endswith("stack.yaml")
    assert p["line"] == line_of(cfg / "stack.yaml", key("gpu_groups"), key("gpu1"))
    assert "no exclusive GPU group 'gpu1'" in p["message"]
    assert "did you mean 'gpu0'" in p["hint"]


def test_sleep_mode_with_a_non_vllm_member_is_an_error_at_its_type(validate, memory):
    cfg, doc = validate("providers.yaml", lambda d: d["providers"]["ollama"]["container"]
                        .__setitem__("gpu", {"count": 0, "exclusive_group": "gpu0",
                                             "weights_gib": 4}))
    p = find(doc["errors"], "providers.ollama.type")
    assert p["file"].endswith("providers.yaml")
    assert p["line"] == line_of(cfg / "providers.yaml", key("ollama"), key("type"))
    assert "'ollama' is in GPU group 'gpu0', which switches with sleep mode" in p["message"]
    assert "only vLLM sleeps" in p["message"] and "switch: restart" in p["hint"]


def test_level_1_without_weights_is_a_warning(validate, memory):
    cfg, doc = validate("providers.yaml", lambda d: d["providers"][DOLPHIN]["container"]["gpu"]
                        .pop("weights_gib"))
    assert doc["errors"] == []
    p = find(doc["warnings"], "providers.vllm-dolphin.container.gpu")
    assert p["line"] == line_of(cfg / "providers.yaml", key(DOLPHIN), key("gpu"))
    assert "vllm-dolphin declare no gpu.weights_gib" in p["message"]


def test_level_2_needs_no_weights(validate, memory):
    def edit(d):
        d["gpu_groups"]["gpu0"]["sleep_level"] = 2
    cfg, doc = validate("stack.yaml", edit)
    assert doc["warnings"] == [] and doc["errors"] == []


def test_level_1_weights_beyond_80_percent_of_host_memory_warn(validate, memory):
    memory(4.5)  # one sleeping member keeps 4 GiB: more than 3.6
    cfg, doc = validate()
    p = find(doc["warnings"], "gpu_groups.gpu0.sleep_level")
    assert p["file"].endswith("stack.yaml")
    assert p["line"] == line_of(cfg / "stack.yaml", key("gpu_groups"), key("gpu0"))
    assert "up to 4 GiB" in p["message"] and "80% of this machine's 4.5 GiB" in p["message"]
    memory(5.0)  # 4 GiB is exactly 80%: fine
    _, doc = validate()
    assert doc["warnings"] == []
    memory(None)  # unreadable: nothing to compare with
    _, doc = validate()
    assert doc["warnings"] == []


def test_non_loopback_bind_address_warns_about_dev_mode(validate, memory):
    def edit(d):
        d["bind_address"] = "0.0.0.0"
    cfg, doc = validate("stack.yaml", edit)
    p = find(doc["warnings"], "gpu_groups.gpu0.switch")
    assert "VLLM_SERVER_DEV_MODE=1" in p["message"] and "0.0.0.0" in p["message"]
    assert "vllm-qwen, vllm-dolphin" in p["message"]


def test_validate_prints_the_sleep_cost_note(runner, registry_dir, memory):
    cfg = registry_dir("offline")
    r = runner.invoke(cli, ["validate", "-C", str(cfg)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "note: GPU group gpu0: sleep level 1: the 1 sleeping member(s) keep up to 4 GiB " \
        "in host memory (this machine: 64 GiB)" in r.stdout


def test_sleep_cost_note_for_level_2(runner, registry_dir, yaml_edit, memory):
    cfg = registry_dir("offline")
    yaml_edit(cfg / "stack.yaml", lambda d: d["gpu_groups"]["gpu0"].__setitem__("sleep_level", 2))
    r = runner.invoke(cli, ["validate", "-C", str(cfg)], catch_exceptions=False)
    assert "note: GPU group gpu0: sleep level 2: a sleeping member drops its weights" in r.stdout


# -- 7. render -------------------------------------------------------------------------------

def test_sleep_members_get_the_flag_once_and_dev_mode(sleepy):
    for name in (QWEN, DOLPHIN):
        svc = provider_service(sleepy, name, sleepy.providers.providers[name])
        assert svc["command"].count("--enable-sleep-mode") == 1
        assert svc["environment"]["VLLM_SERVER_DEV_MODE"] == "1"
        assert svc["command"][:2] == ["--gpu-memory-utilization", "0.9"]  # kept


def test_flag_already_in_the_command_is_not_repeated(edited):
    reg = edited("providers.yaml", lambda d: d["providers"][QWEN]["container"]["command"]
                 .append("--enable-sleep-mode"))
    svc = provider_service(reg, QWEN, reg.providers.providers[QWEN])
    assert svc["command"].count("--enable-sleep-mode") == 1


def test_restart_mode_and_non_members_get_neither(sleepy):
    reg = with_group(sleepy)
    for r, name in ((reg, QWEN), (reg, DOLPHIN), (sleepy, "ollama")):
        svc = provider_service(r, name, r.providers.providers[name])
        assert "--enable-sleep-mode" not in svc.get("command", [])
        assert "VLLM_SERVER_DEV_MODE" not in svc.get("environment", {})
