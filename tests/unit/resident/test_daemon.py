"""The resident scheduler's daemon on its real sockets, with the offline registry's gpu0 on
demand and a fake engine (`World`): what the gateway's routing callback and `stackctl
switch` see through the sockets, and what the daemon asks the engine to do."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from stackctl.errors import PlanError
from stackctl.registry.load import load_registry
from stackctl.resident import client
from stackctl.resident.daemon import Daemon
from stackctl.resident.paths import gateway_socket
from stackctl.switching.policy import GroupState
from stackctl.switching.scheduler import HEAT_HALF_LIFE
from tests.fakes.effects import FakeEffects

QWEN, DOLPHIN = "vllm-qwen", "vllm-dolphin"
QWEN_MODEL, DOLPHIN_MODEL, FALLBACK = "qwen-coder-vllm", "dolphin-uncensored-vllm", \
    "qwen2.5-coder:7b"


class World:
    """The GPU group as the engine holds it; every change's Effects acts on it."""

    def __init__(self, **states: str):
        self.states = dict(states)
        self.calls: list[tuple] = []
        self.fail: dict[tuple[str, str | None], str] = {}
        self.gate = threading.Event()  # set: changes may proceed
        self.gate.set()
        self.confirmed: list[dict] = []
        self.inside: dict[str, int] = {}  # requests an engine holds (its metrics)
        self.ask: Callable[[str], dict] | None = None  # confirm asks as the gateway would

    def effects(self, reg, docker, opts, say):  # type: ignore[no-untyped-def]
        return WorldEffects(self)


class WorldEffects(FakeEffects):
    def __init__(self, world: World):
        super().__init__(GroupState("gpu0", dict(world.states), "sleep"), fail=world.fail)
        self.world, self.calls = world, world.calls

    def observe(self, group: str) -> GroupState:
        return GroupState("gpu0", dict(self.world.states), "sleep")

    def sleep(self, member: str):  # type: ignore[no-untyped-def]
        out = super().sleep(member)
        self.world.states[member] = "asleep"
        return out

    def confirm(self, member: str) -> None:
        """As the real one: requests through the gateway, whose callback asks the
        scheduler about the member's model while the change is still under way."""
        super().confirm(member)
        if self.world.ask is not None:
            model = {QWEN: QWEN_MODEL, DOLPHIN: DOLPHIN_MODEL}[member]
            self.world.confirmed.append(self.world.ask(model))

    def wake(self, member: str):  # type: ignore[no-untyped-def]
        self.world.gate.wait(10)
        out = super().wake(member)
        self.world.states[member] = "awake"
        return out


@pytest.fixture
def reg(registry_dir, yaml_edit, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("STACKCTL_STATE_DIR", str(tmp_path / "state"))
    cfg = registry_dir("offline")

    def on_demand(data):  # type: ignore[no-untyped-def]
        data["gpu_groups"]["gpu0"].update(on_demand=True, hold=20, max_queue=2,
                                          min_residency="30s")
    yaml_edit(cfg / "stack.yaml", on_demand)
    return load_registry(cfg)


class Running:
    def __init__(self, reg, world: World):  # type: ignore[no-untyped-def]
        self.reg, self.world = reg, world
        self.daemon = Daemon(reg, lambda: None, effects=world.effects,  # type: ignore[arg-type,return-value]
                             observe_every=0.2, in_flight=lambda m: world.inside.get(m, 0))
        self.gateway = gateway_socket(reg.output_dir)
        self.gateway.parent.mkdir(parents=True, exist_ok=True)
        self.loop = asyncio.new_event_loop()
        self.stop = asyncio.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self.loop.run_until_complete(self.daemon.run(
            self.gateway, client.control_socket(self.reg.config_dir), self.stop))

    def __enter__(self) -> Running:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not client.control_socket(self.reg.config_dir).exists():
            assert time.monotonic() < deadline, "the daemon did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(10)

    def ask(self, model: str, rid: str = "r1", timeout: float = 10,  # type: ignore[no-untyped-def]
            waited: float = 0.0, probe: bool = False):
        """What the gateway's callback does: one line out, one answer back."""
        s = client.connect(self.gateway, timeout)
        assert s is not None, "nothing listens on the gateway's socket"
        with s:
            s.sendall(json.dumps({"v": 1, "model": model, "id": rid, "stream": False,
                                  "waited": waited, "probe": probe}).encode() + b"\n")
            return json.loads(s.makefile("rb").readline())


@pytest.fixture
def running(reg) -> Iterator:  # type: ignore[no-untyped-def]
    def make(**states: str) -> Running:
        return Running(reg, World(**states))
    return make


def test_request_for_the_awake_member_goes_at_once(running):
    with running(**{QWEN: "awake", DOLPHIN: "asleep"}) as r:
        assert r.ask(QWEN_MODEL) == {"go": True}
    assert [c for c in r.world.calls if c[0] in ("wake", "sleep")] == []


def test_request_for_a_sleeping_member_is_held_until_it_is_awake(running):
    with running(**{QWEN: "awake", DOLPHIN: "asleep"}) as r:
        t = time.monotonic()
        assert r.ask(DOLPHIN_MODEL) == {"go": True}
        assert time.monotonic() - t < 5
        assert r.world.states == {QWEN: "asleep", DOLPHIN: "awake"}
    verbs = [c[:2] for c in r.world.calls if c[0] in ("sleep", "wake", "confirm")]
    assert verbs == [("sleep", QWEN), ("wake", DOLPHIN), ("confirm", DOLPHIN)]


def test_the_change_own_confirmation_requests_go_through(running):
    """After the change routes the target, its requests go at once — the confirmation's
    among them — though the change is not over: no deadlock until routable_timeout."""
    with running(**{QWEN: "awake", DOLPHIN: "asleep"}) as r:
        r.world.ask = lambda model: r.ask(model, "confirm", timeout=5)
        t = time.monotonic()
        assert r.ask(DOLPHIN_MODEL) == {"go": True}
        assert time.monotonic() - t < 4  # released once routed, before the confirmation
        deadline = time.monotonic() + 4
        while not r.world.confirmed and time.monotonic() < deadline:
            time.sleep(0.01)
        assert r.world.confirmed == [{"go": True}]


def test_a_member_serving_requests_is_not_evicted_before_min_residency(running):
    """qwen, loaded just now, has a request in flight (its engine's metrics): dolphin's
    request waits; once qwen's request ends, dolphin is loaded."""
    with running(**{QWEN: "awake", DOLPHIN: "asleep"}) as r:
        r.world.inside[QWEN] = 1
        answers: list[dict] = []
        t = threading.Thread(target=lambda: answers.append(r.ask(DOLPHIN_MODEL)))
        t.start()
        time.sleep(1.0)
        assert answers == [] and r.world.states[QWEN] == "awake"
        r.world.inside[QWEN] = 0
        t.join(5)
        assert answers == [{"go": True}]
        assert r.world.states == {QWEN: "asleep", DOLPHIN: "awake"}


def test_its_log_says_why_a_request_waited(running, capfd):
    with running(**{QWEN: "awake", DOLPHIN: "asleep"}) as r:
        for i in range(3):
            assert r.ask(QWEN_MODEL, f"q{i}") == {"go": True}
        assert r.ask(DOLPHIN_MODEL) == {"go": True}
    log = capfd.readouterr().err
    load = next(line for line in log.splitlines() if "demand: loading" in line)
    # "2026-12-06T23:01:49.765 demand: loading vllm-dolphin (1 held, the first for 0.01s);
    #  evicting vllm-qwen (asked 0.0s ago, 3.0 lately, 3.0 over minutes)": times in ms, the
    #  eviction's why
    assert load[19] == "." and load[20:23].isdigit()
    assert f"loading {DOLPHIN} (1 held, the first for " in load
    # its three requests of a moment ago, barely faded
    assert re.search(rf"evicting {QWEN} \(asked \d+\.\ds ago, (2\.[5-9]|3\.0) lately, "
                     r"3\.0 over minutes\)", load)
    assert "1 held request(s) go, the first after " in log


def test_a_request_held_by_a_switch_counts_from_when_it_arrived(running, capfd):
    """Requests held at the gateway while a switch runs ask together once it ends: counted
    then, a moment's burst outweighed a member asked all along (live, hl 1 s)."""
    with running(**{QWEN: "awake", DOLPHIN: "asleep"}) as r:
        assert r.ask(QWEN_MODEL, "q0", waited=3 * HEAT_HALF_LIFE) == {"go": True}
        assert r.ask(DOLPHIN_MODEL) == {"go": True}
    load = next(line for line in capfd.readouterr().err.splitlines()
                if "demand: loading" in line)
    # asked 3 half-lives ago: 1/8 of a request now, and still one over the last minutes
    assert re.search(rf"evicting {QWEN} \(asked {3 * HEAT_HALF_LIFE:.1f}s ago, 0\.1 lately, "
                     r"1\.0 over minutes\)", load), load

def test_a_switch_confirmation_is_answered_but_not_counted_as_demand(running, capfd):
    with running(**{QWEN: "awake", DOLPHIN: "asleep"}) as r:
        for i in range(6):  # a switch's confirmation: 3 requests per gateway worker
            assert r.ask(QWEN_MODEL, f"c{i}", probe=True) == {"go": True}
        assert r.ask(DOLPHIN_MODEL) == {"go": True}
    load = next(line for line in capfd.readouterr().err.splitlines()
                if "demand: loading" in line)
    assert f"evicting {QWEN} (never asked)" in load, load

def test_requests_past_the_queue_cap_get_429_with_retry_after(running):
    world_states = {QWEN: "awake", DOLPHIN: "asleep"}
    with running(**world_states) as r:
        r.world.gate.clear()  # the wake takes until the test lets it go
        answers: dict[str, dict] = {}

        def ask(rid: str) -> None:
            answers[rid] = r.ask(DOLPHIN_MODEL, rid)
        threads = [threading.Thread(target=ask, args=(f"r{i}",)) for i in range(4)]
        for t in threads:
            t.start()
            time.sleep(0.1)
        deadline = time.monotonic() + 5
        while len(answers) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        r.world.gate.set()
        for t in threads:
            t.join(10)
    rejected = [a for a in answers.values() if a.get("reject")]
    assert len(rejected) == 2  # max_queue 2: the first two wait, the others do not
    assert all(a["retry_after"] >= 1 and DOLPHIN in a["message"] for a in rejected)
    assert sum(a == {"go": True} for a in answers.values()) == 2


def test_a_member_that_fails_to_load_sends_its_requests_to_the_fallback(running):
    with running(**{QWEN: "awake", DOLPHIN: "asleep"}) as r:
        r.world.fail[("wake", DOLPHIN)] = "did not wake"
        assert r.ask(DOLPHIN_MODEL) == {"divert": FALLBACK}
        # not tried again at once: the next request goes to the fallback straight away
        before = len(r.world.calls)
        assert r.ask(DOLPHIN_MODEL, "r2") == {"divert": FALLBACK}
        assert len(r.world.calls) == before
        assert r.world.states[QWEN] == "awake"  # rolled back


def test_a_member_asleep_with_requests_inside_is_woken_to_answer_them(running):
    """A request reached qwen as it fell asleep and the scheduler was killed before it
    could wake it: the next look at the group finds it (its metrics) and loads it."""
    world = {QWEN: "asleep", DOLPHIN: "awake"}
    with running(**world) as r:
        r.world.inside[QWEN] = 1
        deadline = time.monotonic() + 5
        while r.world.states[QWEN] != "awake" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert r.world.states == {QWEN: "awake", DOLPHIN: "asleep"}
        r.world.inside.clear()


def test_pins_made_while_it_runs_are_followed(running):
    from stackctl.residency.pins import pins_path, set_pinned
    from stackctl.store.lock import state_dir

    with running(**{QWEN: "awake", DOLPHIN: "asleep"}) as r:
        set_pinned(pins_path(state_dir(), r.reg.stack.project), QWEN, True)
        deadline = time.monotonic() + 5
        while not r.daemon.book.specs["gpu0"].members[QWEN].pinned:
            assert time.monotonic() < deadline, "the pin was not read"
            time.sleep(0.02)
        assert not r.daemon.book.specs["gpu0"].members[DOLPHIN].pinned


def test_client_that_goes_away_is_dropped(running):
    with running(**{QWEN: "awake", DOLPHIN: "asleep"}) as r:
        r.world.gate.clear()
        s = client.connect(r.gateway, 5)
        assert s is not None
        s.sendall(json.dumps({"v": 1, "model": DOLPHIN_MODEL, "id": "gone"}).encode() + b"\n")
        deadline = time.monotonic() + 5
        while "gone" not in r.daemon.book.waiting and time.monotonic() < deadline:
            time.sleep(0.01)
        assert "gone" in r.daemon.book.waiting
        s.close()
        while "gone" in r.daemon.book.waiting and time.monotonic() < deadline:
            time.sleep(0.01)
        assert "gone" not in r.daemon.book.waiting
        r.world.gate.set()


def test_switch_command_runs_in_the_scheduler(running):
    with running(**{QWEN: "awake", DOLPHIN: "asleep"}) as r:
        said: list[str] = []
        answer = client.switch(r.reg.config_dir, "dolphin", 60, None, said.append)
        assert answer is not None and answer["ok"], answer
        assert answer["result"]["plan"]["target"] == DOLPHIN
        # rendered there, as the command renders its own switch
        assert answer["lines"][0].startswith("switched GPU group 'gpu0' to vllm-dolphin in ")
        assert answer["document"]["steps"][0].startswith("let vllm-qwen's requests finish")
        assert r.world.states == {QWEN: "asleep", DOLPHIN: "awake"}
        # the daemon knows: a request for dolphin now goes at once
        assert r.ask(DOLPHIN_MODEL) == {"go": True}
        bad = client.switch(r.reg.config_dir, "nosuch", 60, None, said.append)
        assert bad is not None and not bad["ok"] and "nosuch" in bad["error"]


def test_load_and_unload_run_in_the_scheduler_which_then_knows_the_group(running):
    """`stackctl unload` of the awake member while the scheduler runs: it sleeps, and a
    request for it is held and loads it again — never sent to an engine asleep."""
    from stackctl.residency.client import ChangeOptions, SchedulerClient, client_for

    with running(**{QWEN: "awake", DOLPHIN: "asleep"}) as r:
        c = client_for(r.reg, lambda: None)  # type: ignore[arg-type,return-value]
        assert isinstance(c, SchedulerClient)
        gone = c.unload(ChangeOptions(model="qwen"))
        assert gone.action == "unload" and not gone.noop and gone.plan["verb"] == "sleep"
        assert r.world.states[QWEN] == "asleep"
        assert r.daemon.book.residency[QWEN].state == "asleep"
        loaded = c.load(ChangeOptions(model="dolphin"))
        assert loaded.member == DOLPHIN and r.world.states[DOLPHIN] == "awake"
        assert r.ask(DOLPHIN_MODEL) == {"go": True}
        assert r.ask(QWEN_MODEL, "r2") == {"go": True}  # held, then loaded on demand
        assert r.world.states == {QWEN: "awake", DOLPHIN: "asleep"}
        with pytest.raises(PlanError, match="nosuch"):
            c.load(ChangeOptions(model="nosuch"))


def test_no_scheduler_no_answer(reg):
    assert client.switch(reg.config_dir, "dolphin", 60, None, print) is None


def test_sockets_are_removed_when_it_stops(running):
    with running(**{QWEN: "awake", DOLPHIN: "asleep"}) as r:
        assert r.gateway.exists()
        assert oct(r.gateway.stat().st_mode & 0o777) == "0o666"
        assert oct(client.control_socket(r.reg.config_dir).stat().st_mode & 0o777) == "0o600"
    assert not r.gateway.exists()
    assert not client.control_socket(r.reg.config_dir).exists()


def test_long_socket_paths_work(reg, tmp_path, monkeypatch):
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    monkeypatch.setenv("STACKCTL_STATE_DIR", str(deep))
    assert len(str(client.control_socket(reg.config_dir))) > 108
    r = Running(reg, World(**{QWEN: "awake", DOLPHIN: "asleep"}))
    with r:
        assert r.ask(QWEN_MODEL) == {"go": True}
        answer = client.switch(reg.config_dir, "dolphin", 60, None, lambda s: None)
        assert answer is not None and answer["ok"]


def test_paths_are_the_ones_the_callback_uses(reg):
    state_file_folder = reg.output_dir / "litellm"
    assert gateway_socket(reg.output_dir) == state_file_folder / "stackctl-scheduler.sock"
    assert isinstance(gateway_socket(reg.output_dir), Path)
