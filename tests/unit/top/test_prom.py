"""prom.py: the figures from Prometheus, and its queries use only names LiteLLM exports."""

from __future__ import annotations

import pytest

from stackctl.top import prom
from stackctl.top.collect import Collector
from tests.fakes.top import GATEWAY, PROMETHEUS, FakeSources, exposition, stack_status
from tests.monitoring_queries import problems

ANSWERS = {"requests": {"a": 30.0, "b": 6.0}, "rps": {"a": 0.5, "b": 0.1},
           "errors": {"a": 1.0}, "p50": {"a": 0.2}, "p95": {"a": 0.9, "b": 1.5},
           "ttft": {"a": 0.05}, "tokens": {"a": 42.0}, "rerouted": {"b": 2.0},
           "in_flight": {"": 3.0}, "waiting": {"vllm-qwen": 4.0}}


@pytest.mark.parametrize("expr", [*prom.QUERIES.values(), prom.WAITING])
def test_queries_use_real_names(expr):
    assert problems(expr) == []


def test_figures_from_prometheus_add_nothing_to_the_gateway(reg):
    src = FakeSources(stack_status(reg, {"vllm-dolphin": "asleep"}, alerts=[]),
                      exposition({}), prometheus=ANSWERS)
    snap = Collector(reg, src).collect()
    assert snap.figures_from == "prometheus" and snap.window_s == 60
    assert not any(u.startswith(GATEWAY) for u in src.asked)
    assert len(src.asked) == len(prom.QUERIES) + 1  # and the members' queues
    qwen = snap.groups[0].members[0]
    assert (qwen.name, qwen.waiting) == ("vllm-qwen", 4)
    a, b = snap.models
    assert (a.model, a.requests, a.rps, a.errors, a.p50_ms, a.p95_ms, a.ttft_p50_ms,
            a.tokens_per_s) == ("a", 30, 0.5, 1, 200, 900, 50, 42)
    assert (b.model, b.p50_ms, b.tokens_per_s, b.rerouted) == ("b", None, None, 2)
    assert snap.gateway.in_flight == 3 and snap.gateway.up


def test_a_failing_query_falls_back_to_the_gateway(reg):
    partial = {k: v for k, v in ANSWERS.items() if k != "ttft"}
    src = FakeSources(stack_status(reg, {}, alerts=[]), exposition({}), prometheus=partial)
    snap = Collector(reg, src).collect()
    assert snap.figures_from == "gateway" and src.asked[-1] == f"{GATEWAY}/metrics/"


def test_prometheus_not_running_is_not_asked(reg):
    src = FakeSources(stack_status(reg, {}, alerts=None), exposition({}), prometheus=ANSWERS)
    Collector(reg, src).collect()
    assert not any(u.startswith(PROMETHEUS) for u in src.asked)


def test_nan_is_no_value():
    def get(url, headers, timeout):
        return 200, ('{"status":"success","data":{"result":[{"metric":{"requested_model":"a"},'
                     '"value":[1,"NaN"]}]}}')
    assert prom.query(get, PROMETHEUS, "x", 1) == {}
