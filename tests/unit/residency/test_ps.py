"""`stackctl ps` as data: rows from facts, the text, and the collection from top's fake
Sources and a gateway log."""

from __future__ import annotations

import dataclasses
import json

import pytest

from stackctl.docker.adapter import EngineUnreachable
from stackctl.registry.load import load_registry
from stackctl.registry.models import GpuGroup
from stackctl.residency.collect import collect, last_used, switched_in
from stackctl.residency.rows import Facts, loaded_at, rows
from stackctl.residency.show import duration, render
from tests.fakes.top import NOW, FakeSources, exposition, record, stack_status
from tests.paths import CONFIGS


@pytest.fixture
def reg():
    """The offline example, its gpu0 group given a 24 GiB budget."""
    reg = load_registry(CONFIGS["offline"])
    groups = {"gpu0": GpuGroup(switch="sleep", hold=10, memory_gib=24)}
    return dataclasses.replace(reg, stack=reg.stack.model_copy(update={"gpu_groups": groups}))


def log_line(at: float, deployment: str, status: str = "success") -> str:
    doc = {"time": at, "status": status, "model": deployment.split("@")[0],
           "deployment": deployment}
    return "litellm-1  | stackctl-request " + json.dumps(doc)


def test_rows_as_data(reg):
    st = stack_status(reg, {"vllm-dolphin": "asleep"})
    facts = Facts(now=NOW, status=st, held_models={"dolphin-uncensored-vllm"},
                  held_counts={"dolphin-uncensored-vllm": 3.0},
                  last_used={"vllm-qwen": NOW - 40, "vllm-dolphin": NOW - 4000},
                  loaded_at={"vllm-qwen": NOW - 100}, pins={"vllm-qwen"})
    got = {r.name: r for r in rows(reg, facts)}
    assert list(got)[:2] == ["vllm-qwen", "vllm-dolphin"]  # the group's members first
    qwen, dolphin = got["vllm-qwen"], got["vllm-dolphin"]
    assert (qwen.group, qwen.mode, qwen.state, qwen.pinned) == ("gpu0", "sleep", "awake", True)
    # vLLM claims --gpu-memory-utilization (its default 0.9) of the budget
    assert (qwen.memory_gib, qwen.group_memory_gib) == (21.6, 24)
    assert (qwen.idle_s, qwen.waiting, qwen.held) == (40.0, 0.0, False)
    # asleep: no idle time; its requests are held (a load under way)
    assert (dolphin.state, dolphin.idle_s, dolphin.waiting, dolphin.held) == (
        "asleep", None, 3.0, True)
    assert dolphin.last_used == NOW - 4000
    others = [r for r in got.values() if r.group is None]
    assert {r.name for r in others} == {"llama_cpp", "ollama"}
    assert all(r.mode is None and r.group_memory_gib is None for r in others)


def test_idle_counts_from_the_later_of_load_and_last_use(reg):
    st = stack_status(reg, {})
    facts = Facts(now=NOW, status=st, last_used={"vllm-qwen": NOW - 500},
                  loaded_at={"vllm-qwen": NOW - 30})
    assert next(r for r in rows(reg, facts) if r.name == "vllm-qwen").idle_s == 30.0


def test_without_an_engine_every_state_is_unknown(reg):
    got = rows(reg, Facts(now=NOW, status=None))
    assert {r.state for r in got} == {"unknown"} and all(r.waiting is None for r in got)


def test_last_used_reads_answered_requests_only():
    lines = ["noise", log_line(NOW - 9, "qwen-coder-vllm@vllm-qwen"),
             log_line(NOW - 5, "qwen-coder-vllm@vllm-qwen"),
             log_line(NOW - 1, "dolphin-uncensored-vllm@vllm-dolphin", "failure")]
    assert last_used(lines) == {"vllm-qwen": NOW - 5}


def test_loaded_at_is_the_later_of_the_last_switch_and_the_container_start(reg):
    st = stack_status(reg, {})
    services = {s.name: s for s in st.services}
    services["vllm-qwen"].up_seconds = 600  # its container started 10 min ago, woken since
    services["ollama"].up_seconds = 50
    switched = switched_in([record(NOW - 60, "vllm-dolphin", "vllm-qwen"),
                            record(NOW - 30, "vllm-qwen", "vllm-dolphin", success=False)])
    assert switched == {"vllm-qwen": NOW - 60}
    got = loaded_at(st, switched, NOW)
    assert (got["vllm-qwen"], got["ollama"]) == (NOW - 60, NOW - 50)


def test_collect_reads_the_held_gauge_the_routing_state_and_the_log(reg):
    metrics = exposition({}) + ('stackctl_gateway_held_requests{requested_model='
                                '"dolphin-uncensored-vllm",pid="100"} 2.0\n')
    src = FakeSources(stack_status(reg, {"vllm-dolphin": "asleep"}), metrics,
                      routing={"hold": {"dolphin-uncensored-vllm": {"seconds": 10}}},
                      switches=[record(NOW - 60, "vllm-dolphin", "vllm-qwen")])
    table = collect(reg, src, lambda: [log_line(NOW - 20, "qwen-coder-vllm@vllm-qwen")],
                    {"vllm-qwen"})
    got = {r.name: r for r in table.rows}
    assert table.engine and table.metrics and table.problems == []
    assert (got["vllm-dolphin"].waiting, got["vllm-dolphin"].held) == (2.0, True)
    assert (got["vllm-qwen"].idle_s, got["vllm-qwen"].pinned) == (20.0, True)
    assert src.asked == ["http://127.0.0.1:4000/metrics/"]


def test_collect_says_what_it_could_not_read(reg):
    src = FakeSources(EngineUnreachable("no Docker engine answers"), ConnectionError("x"))
    table = collect(reg, src, lambda: [], set())
    assert not table.engine and not table.metrics
    assert table.problems == [
        "no Docker engine answers: members' states are unknown",
        "requests waiting not known: the gateway's /metrics did not answer (ConnectionError)"]


def test_the_text(reg):
    st = stack_status(reg, {"vllm-dolphin": "asleep"})
    facts = Facts(now=NOW, status=st, held_models={"dolphin-uncensored-vllm"},
                  held_counts={"dolphin-uncensored-vllm": 3.0},
                  last_used={"vllm-qwen": NOW - 40}, loaded_at={"vllm-qwen": NOW - 100},
                  pins={"vllm-qwen"})
    from stackctl.residency.rows import PsTable

    text = render(PsTable(project="p", taken_at=NOW, engine=True, metrics=True,
                          rows=rows(reg, facts), problems=["a note"]))
    lines = text.splitlines()
    assert lines[0].split() == ["NAME", "GROUP", "STATE", "PINNED", "MEMORY", "IDLE", "LAST",
                                "USED", "WAITING", "MODELS"]
    assert lines[1].split() == ["vllm-qwen", "gpu0", "awake", "yes", "21.6/24", "GiB", "40s",
                                "40s", "ago", "0", "qwen-coder-vllm"]
    assert lines[2].split()[:9] == ["vllm-dolphin", "gpu0", "asleep", "-", "21.6/24", "GiB", "-",
                                    "-", "3"]
    assert "(held)" in lines[2] and lines[-1] == "note: a note"


@pytest.mark.parametrize(("s", "text"), [(None, "-"), (5, "5s"), (125, "2m"), (3600, "1h"),
                                         (3900, "1h5m"), (200000, "2d")])
def test_durations(s, text):
    assert duration(s) == text
