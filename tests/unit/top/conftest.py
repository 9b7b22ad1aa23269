"""Fixtures of the `stackctl top` tests.

    tz_utc     (autouse) TZ=UTC: the screen's clock reads the same on every machine
    reg        the offline example's registry, its gpu0 group given a 24 GiB budget
    scenario   scenario(name) → the Snapshot of "healthy", "switching" (figures from
               Prometheus), "gateway_down" or "engine_down": two readings 30 s apart through
               the real Collector and fake Sources (tests/fakes/top.py), the last at the
               fixed clock NOW
"""

from __future__ import annotations

import dataclasses
import time

import pytest

from stackctl.docker.adapter import EngineUnreachable
from stackctl.registry.load import load_registry
from stackctl.registry.models import GpuGroup
from stackctl.targets.compose_status import AlertStatus
from stackctl.top.collect import Collector
from stackctl.top.snapshot import Snapshot
from tests.fakes.top import NOW, FakeSources, Load, exposition, record, stack_status
from tests.paths import CONFIGS


@pytest.fixture(autouse=True)
def tz_utc(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def reg():
    reg = load_registry(CONFIGS["offline"])
    groups = {"gpu0": GpuGroup(switch="sleep", sleep_level=1, hold=10, memory_gib=24)}
    return dataclasses.replace(reg, stack=reg.stack.model_copy(update={"gpu_groups": groups}))


def loads(scale: int) -> dict[str, Load]:
    """Each model's load after `scale` units of traffic (latencies spread over buckets)."""
    return {
        "qwen-coder-vllm": Load(latencies=[0.08, 0.2, 0.4, 0.9, 1.5] * 8 * scale,
                                ttfts=[0.03, 0.06, 0.09] * 4 * scale, failed=scale - 1,
                                output_tokens=2400 * scale),
        "smollm2": Load(latencies=[0.02, 0.04, 0.3] * 5 * scale, ttfts=[0.01] * 3 * scale,
                        output_tokens=900 * scale),
        "dolphin-uncensored-vllm": Load(latencies=[1.2, 3.5] * scale,
                                        rerouted={"held": 2 * (scale - 1)} if scale > 1 else {},
                                        output_tokens=300 * scale),
    }


SWITCHES = [record(NOW - 95, "vllm-dolphin", "vllm-qwen", seconds=0.9),
            record(NOW - 3_700, "vllm-qwen", "vllm-dolphin", success=False, rolled_back=True,
                   seconds=31.2, reason="stackctl top")]


# Prometheus runs during the switch (an alert fires): the figures come from it
PROMETHEUS_DURING_SWITCH = {
    "requests": {"qwen-coder-vllm": 52.0, "smollm2": 14.0, "dolphin-uncensored-vllm": 6.0},
    "rps": {"qwen-coder-vllm": 0.87, "smollm2": 0.23, "dolphin-uncensored-vllm": 0.1},
    "errors": {}, "p50": {"qwen-coder-vllm": 0.31, "smollm2": 0.04},
    "p95": {"qwen-coder-vllm": 1.6, "smollm2": 0.4}, "ttft": {"qwen-coder-vllm": 0.06},
    "tokens": {"qwen-coder-vllm": 74.0, "smollm2": 21.0},
    "rerouted": {"dolphin-uncensored-vllm": 6.0}, "in_flight": {"": 5.0},
    "waiting": {"vllm-qwen": 0.0, "vllm-dolphin": 0.0}}


@pytest.fixture
def scenario(reg):
    def make(name: str) -> Snapshot:
        down = ConnectionError("refused")
        prometheus = None
        if name == "healthy":
            status = stack_status(reg, {"vllm-dolphin": "asleep"}, alerts=[])
            first, last, routing = exposition(loads(1)), exposition(loads(2), in_flight=3), {}
        elif name == "switching":
            status = stack_status(reg, {"vllm-qwen": "asleep", "vllm-dolphin": "loading"},
                                  alerts=[AlertStatus(name="GpuGroupNoActiveMember",
                                                      severity="warning",
                                                      summary="gpu0 has no awake member",
                                                      since="2026-11-30T00:00:00Z")])
            first, last = exposition(loads(1)), exposition(loads(2), in_flight=5)
            routing = {"v": 1, "divert": {}, "hold": {"dolphin-uncensored-vllm": {
                "seconds": 10, "fallback": "qwen-coder-vllm"}}}
            prometheus = PROMETHEUS_DURING_SWITCH
        elif name == "gateway_down":
            status = stack_status(reg, {"vllm-dolphin": "asleep"}, gateway_up=False)
            first = last = down  # type: ignore[assignment]
            routing = {}
        elif name == "engine_down":
            status = EngineUnreachable("no Docker engine answers (Cannot connect to the Docker "
                                       "daemon); scripts/ensure-docker.sh starts one")
            first = last = down  # type: ignore[assignment]
            routing = {}
        else:
            raise ValueError(name)
        src = FakeSources(status, first, routing=routing, switches=SWITCHES, now=NOW - 30,
                          prometheus=prometheus)
        collector = Collector(reg, src)
        collector.collect()
        src.now, src._metrics = NOW, last
        return collector.collect()
    return make
