"""metrics.py: the exposition parsed, folded per model, and two readings as figures."""

from __future__ import annotations

import math

import pytest

from stackctl.top import metrics
from stackctl.top.metrics import Histogram, figures, parse, read
from tests.fakes.top import Load, exposition


def test_parse_keeps_only_the_families_top_uses():
    text = ('# HELP x y\npython_gc_objects_collected_total{generation="0"} 5\n'
            'litellm_proxy_total_requests_metric_total{requested_model="a \\"b\\"",x="1"} 3.0\n'
            'litellm_in_flight_requests 2\nlitellm_in_flight_requests{pid="1"} NaNx\n')
    assert parse(text) == [
        ("litellm_proxy_total_requests_metric_total", {"requested_model": 'a "b"', "x": "1"}, 3.0),
        ("litellm_in_flight_requests", {}, 2.0)]


def test_read_sums_over_keys_and_workers():
    r = read(exposition({"m": Load([0.1, 0.2, 0.3, 0.4], output_tokens=40, failed=1)},
                        keys=2, workers=3, in_flight=4), at=0)
    c = r.models["m"]
    assert c.requests == 5 and c.failed == 1 and c.output_tokens == 40
    assert c.latency.count == 4 and c.latency.buckets[math.inf] == 4
    assert r.in_flight == 4


@pytest.mark.parametrize(("q", "expected"), [(0.5, 0.1), (0.25, 0.075), (0.75, 0.175), (1.0, 0.25)])
def test_quantile_interpolates_like_prometheus(q, expected):
    # 4 observations: 2 in (0.05, 0.1], 2 in (0.1, 0.25]
    h = Histogram({0.05: 0, 0.1: 2, 0.25: 4, math.inf: 4}, count=4)
    assert h.quantile(q) == pytest.approx(expected)


def test_quantile_edges():
    assert Histogram().quantile(0.5) is None
    assert Histogram({0.1: 0, math.inf: 0}, 0).quantile(0.5) is None
    # all above the highest finite bound: that bound, as histogram_quantile says
    assert Histogram({0.1: 0, 1.0: 0, math.inf: 3}, 3).quantile(0.5) == 1.0


def test_figures_over_a_window_and_since_start():
    before = read(exposition({"m": Load([0.1] * 10, output_tokens=100)}), at=100)
    now = read(exposition({"m": Load([0.1] * 10 + [2.0] * 10, output_tokens=300),
                           "new": Load([0.02])}), at=110)
    got = {f.model: f for f in figures(now, before)}
    assert got["m"].requests == 10 and got["m"].rps == 1.0
    assert got["m"].tokens_per_s == 20.0
    assert 1000 < got["m"].p50_ms <= 2000  # only the window's slow requests
    assert got["new"].requests == 1  # absent before: counted from zero
    since = figures(now, None)
    assert [f.model for f in since] == ["m", "new"] and since[0].rps is None
    assert since[0].requests == 20


def test_model_label_precedence():
    assert metrics.model_of({"model": "b", "requested_model": "a"}) == "a"
    assert metrics.model_of({"model_group": "g", "model": "b"}) == "g"
    assert metrics.model_of({"requested_model": ""}) is None
