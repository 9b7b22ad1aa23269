"""collect(): a Snapshot from fake sources, tested as data."""

from __future__ import annotations

import pytest

from stackctl.docker.adapter import EngineUnreachable
from stackctl.top.collect import Collector, History, collect, member_state
from tests.fakes.top import GATEWAY, NOW, FakeSources, Load, exposition, stack_status


def _group(snap, name="gpu0"):
    return next(g for g in snap.groups if g.name == name)


def test_healthy_stack(scenario):
    snap = scenario("healthy")
    assert snap.engine and snap.gateway.up and snap.gateway.metrics
    assert snap.banners == []
    g = _group(snap)
    assert [(m.name, m.state) for m in g.members] == [("vllm-qwen", "awake"),
                                                       ("vllm-dolphin", "asleep")]
    # a vLLM member claims --gpu-memory-utilization 0.9 of the 24 GiB budget; asleep: nothing
    assert g.memory_gib == 24 and g.used_gib == pytest.approx(21.6)
    assert g.switching_to is None
    assert snap.window_s == 30
    qwen = next(m for m in snap.models if m.model == "qwen-coder-vllm")
    # the failed request is one of the requests too (LiteLLM counts it with its status code)
    assert qwen.requests == 41 and qwen.rps == pytest.approx(41 / 30)
    assert qwen.errors == 1
    assert qwen.tokens_per_s == pytest.approx(2400 / 30)
    assert 250 < qwen.p50_ms <= 500 and 1000 < qwen.p95_ms <= 2000
    assert snap.gateway.in_flight == 3
    assert [s.reason for s in snap.switches] == ["stackctl switch", "stackctl top"]
    assert snap.alerts == []


def test_a_switch_in_progress_is_seen_from_the_held_model(scenario):
    snap = scenario("switching")
    g = _group(snap)
    assert g.switching_to == "vllm-dolphin"
    assert [(m.name, m.state, m.held) for m in g.members] == [
        ("vllm-qwen", "asleep", False), ("vllm-dolphin", "loading", True)]
    assert g.used_gib == pytest.approx(21.6)  # the loading member claims its memory
    assert snap.figures_from == "prometheus" and snap.window_s == 60
    dolphin = next(m for m in snap.models if m.model == "dolphin-uncensored-vllm")
    assert dolphin.rerouted == 6 and dolphin.p50_ms is None
    assert [m.waiting for m in g.members] == [0, 0]
    assert [a.name for a in snap.alerts] == ["GpuGroupNoActiveMember"]


def test_gateway_down_says_so(scenario):
    snap = scenario("gateway_down")
    assert snap.engine and not snap.gateway.up and not snap.gateway.metrics
    assert snap.models == [] and snap.window_s is None
    assert len(snap.banners) == 1 and snap.banners[0].startswith("Gateway down")


def test_engine_down_still_shows_the_registry(scenario):
    snap = scenario("engine_down")
    assert not snap.engine and "Cannot connect" in snap.engine_problem
    assert [m.state for m in _group(snap).members] == ["unknown", "unknown"]
    assert _group(snap).used_gib is None
    assert snap.alerts is None
    assert snap.banners[0].startswith("No Docker engine answers (Cannot connect")
    assert snap.banners[0].endswith("Members' states are unknown.")
    assert snap.banners[1].startswith("Gateway down")


def test_metrics_refused(reg):
    src = FakeSources(stack_status(reg, {}), 401)
    snap = Collector(reg, src).collect()
    assert snap.gateway.up and not snap.gateway.metrics
    assert "refused the master key (401)" in snap.banners[0]


def test_two_awake_members_get_a_banner(reg):
    src = FakeSources(stack_status(reg, {}), exposition({}))
    snap = Collector(reg, src).collect()
    assert "2 members awake (vllm-qwen, vllm-dolphin)" in snap.banners[0]


def test_one_request_per_refresh_beyond_status(reg):
    """top adds only /metrics (with the key) to what `status` asks."""
    src = FakeSources(stack_status(reg, {}), exposition({"m": Load([0.1])}))
    c = Collector(reg, src, metrics_every=0)
    for _ in range(3):
        c.collect()
    assert src.asked == [f"{GATEWAY}/metrics/"] * 3


def test_the_gateway_is_read_every_5s(reg):
    src = FakeSources(stack_status(reg, {}), exposition({"m": Load([0.1])}), now=NOW)
    c = Collector(reg, src)
    ages = []
    for t in range(11):  # one refresh a second
        src.now = NOW + t
        ages.append(c.collect().figures_age_s)
    assert len(src.asked) == 3  # at 0, 5 and 10 s
    assert ages == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0]


def test_a_gateway_seen_down_is_read_at_once(reg):
    src = FakeSources(stack_status(reg, {}), exposition({"m": Load([0.1])}), now=NOW)
    c = Collector(reg, src)
    c.collect()
    src._status, src._metrics = stack_status(reg, {}, gateway_up=False), ConnectionError()
    src.now = NOW + 1
    snap = c.collect()
    assert len(src.asked) == 2 and not snap.gateway.up and snap.models == []


def test_the_window_keeps_a_minute_of_readings(reg):
    src = FakeSources(stack_status(reg, {}), exposition({"m": Load([0.1] * 10)}), now=NOW)
    history = History()
    for t in range(0, 125, 5):
        src.now = NOW + t
        snap = collect(reg, src, history, window=60)
    assert snap.window_s == 60
    assert history.readings[0].at == NOW + 60 and history.readings[-1].at == NOW + 120


def test_a_gateway_restart_counts_from_zero(reg):
    src = FakeSources(stack_status(reg, {}), exposition({"m": Load([0.1] * 50)}), now=NOW)
    c = Collector(reg, src)
    c.collect()
    src.now, src._metrics = NOW + 10, exposition({"m": Load([0.1] * 4)})
    snap = c.collect()
    assert snap.models[0].requests == 4


@pytest.mark.parametrize(("state", "ready", "asleep", "expected"), [
    ("running", True, False, "awake"), ("running", False, False, "loading"),
    ("running", True, True, "asleep"), ("exited", False, False, "stopped"),
    ("absent", False, False, "stopped")])
def test_member_state(reg, state, ready, asleep, expected):
    svc = stack_status(reg, {}).services[1].model_copy(update={"state": state, "ready": ready})
    assert member_state(svc, asleep) == expected
    assert member_state(None, False) == "stopped"


def test_engine_error_other_than_unreachable(reg):
    from stackctl.docker.adapter import DockerError

    snap = Collector(reg, FakeSources(DockerError("docker ps: boom"), 200)).collect()
    assert not snap.engine and snap.banners[0] == "Docker did not answer: docker ps: boom"
    assert isinstance(EngineUnreachable("x"), DockerError)
