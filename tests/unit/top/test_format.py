"""format.py and view.py: values and panels as text."""

from __future__ import annotations

import pytest
from rich.console import Console

from stackctl.top import format as fmt
from stackctl.top import view


@pytest.mark.parametrize(("used", "total", "expected"), [
    (12, 24, "█████░░░░░ 12.0/24 GiB"), (0, 24, "░░░░░░░░░░ 0.0/24 GiB"),
    (30, 24, "██████████ 30.0/24 GiB OVER"), (None, 24, "?????????? ?/24 GiB"),
    (5, None, "")])
def test_bar(used, total, expected):
    assert fmt.bar(used, total, width=10) == expected


def test_numbers():
    assert (fmt.ms(None), fmt.ms(12.4), fmt.ms(1_234)) == ("-", "12ms", "1.23s")
    assert (fmt.rate(None), fmt.rate(1.25), fmt.rate(250.4)) == ("-", "1.2", "250")
    assert (fmt.count(3.0), fmt.count(2.5e6)) == ("3", "2.5e+06")
    assert fmt.window(None) == "since the gateway started" and fmt.window(59.6) == "last 60s"


@pytest.mark.parametrize(("seconds", "expected"), [
    (0, "0s ago"), (59, "59s ago"), (95, "1m ago"), (3_700, "1h ago"), (200_000, "2d ago"),
    (-5, "0s ago")])
def test_age(seconds, expected):
    assert fmt.age(1000 - seconds, 1000) == expected


def test_clock_is_local_time():  # the conftest fixes TZ=UTC
    assert fmt.clock(0) == "00:00:00"


def _text(renderable) -> str:
    console = Console(width=120, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_panels_of_a_switch(scenario):
    snap = scenario("switching")
    groups = _text(view.groups(snap))
    assert "switching → vllm-dolphin (its requests are held)" in groups
    assert "◐ vllm-dolphin loading" in " ".join(groups.split())
    assert "█" in groups and "21.6/24 GiB" in groups
    models = _text(view.models(snap))
    assert "Models (last 60s, from prometheus)" in models and "qwen-coder-vllm" in models
    assert "Models (last 30s, from gateway)" in _text(view.models(scenario("healthy")))
    assert "warning  GpuGroupNoActiveMember" in _text(view.alerts(snap))
    switches = _text(view.switches(snap))
    assert "1m ago" in switches and "rolled back" in switches and "stackctl top" in switches


def test_panels_without_prometheus(scenario):
    snap = scenario("gateway_down")
    assert "Prometheus does not run" in _text(view.alerts(snap))
    assert _text(view.models(snap)).splitlines()[0].strip() == "Models"


def test_panels_when_down(scenario):
    snap = scenario("engine_down")
    assert "engine DOWN" in _text(view.header(snap, 1))
    assert "not known: no Docker engine answers" in _text(view.alerts(snap))
    assert "no figures" in _text(view.models(snap))
    assert _text(view.banners(snap)).count("⚠") == 2
