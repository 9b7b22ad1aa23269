"""stackctl/incontainer/routing_callback.py: the gateway's hold/divert pre-call hook.

The decision as data (`decide`, `parse_state`), the state-file watcher (changes seen, the stat
rate limit, parse only on change, invalid files fail open with one warning per problem), the
hook driven by asyncio (release on a file change, expiry to the fallback, divert, everything
else untouched, the event loop never blocked) and its cost for an unaffected model.
The real engine is in tests/contract/test_gateway_routing.py.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

import pytest

from stackctl.incontainer import routing_callback as rc
from stackctl.incontainer.routing_callback import (
    DIVERT,
    EMPTY,
    EXPIRED,
    PASS,
    WAIT,
    Hold,
    Routing,
    State,
    StateFile,
    decide,
    parse_state,
)

STATE = State(divert={"a": "f", "alias-a": "f"},
              hold={"b": Hold(15.0, "f"), "c": Hold(2.0, None), "a": Hold(1.0, "g")})


# -- the decision ------------------------------------------------------------------------------

@pytest.mark.parametrize(("model", "elapsed", "expected"), [
    ("x", 0.0, (PASS, None)),            # in neither map
    ("alias-a", 0.0, (DIVERT, "f")),     # an alias is matched as written
    ("b", 0.0, (WAIT, None)),
    ("b", 14.99, (WAIT, None)),
    ("b", 15.0, (EXPIRED, "f")),         # `seconds` passed: the fallback
    ("c", 2.5, (EXPIRED, None)),         # no fallback: on unchanged
    ("a", 0.5, (WAIT, None)),            # held wins over divert
    ("a", 1.0, (EXPIRED, "g")),          # and its own fallback, not the divert target
    (None, 0.0, (PASS, None)),
])
def test_decide(model: Any, elapsed: float, expected: tuple[str, str | None]) -> None:
    assert decide(STATE, model, elapsed) == expected


def test_decide_on_the_empty_state_passes() -> None:
    assert decide(EMPTY, "b", 99.0) == (PASS, None)


def test_parse_state() -> None:
    raw = json.dumps({"v": 1, "divert": {"a": "f"},
                      "hold": {"b": {"seconds": 15, "fallback": "f"},
                               "c": {"seconds": 0.5, "fallback": None}}})
    state = parse_state(raw.encode())
    assert state.divert == {"a": "f"}
    assert state.hold == {"b": Hold(15.0, "f"), "c": Hold(0.5, None)}
    assert parse_state('{"v": 1}') == EMPTY


@pytest.mark.parametrize("raw", [
    "", "{", "[]", "null", b"\xff\xfe",
    '{"divert": {}}',                                  # no version
    '{"v": 2, "divert": {}}',                          # another version
    '{"v": true}',
    '{"v": 1, "divert": []}',
    '{"v": 1, "divert": {"a": 3}}',
    '{"v": 1, "divert": {"a": ""}}',
    '{"v": 1, "hold": []}',
    '{"v": 1, "hold": {"a": 15}}',
    '{"v": 1, "hold": {"a": {"fallback": "f"}}}',      # no seconds
    '{"v": 1, "hold": {"a": {"seconds": -1}}}',
    '{"v": 1, "hold": {"a": {"seconds": true}}}',
    '{"v": 1, "hold": {"a": {"seconds": "15"}}}',
    '{"v": 1, "hold": {"a": {"seconds": 1e999}}}',     # inf
    '{"v": 1, "hold": {"a": {"seconds": 1, "fallback": 7}}}',
])
def test_parse_state_refuses(raw: str | bytes) -> None:
    with pytest.raises(ValueError):
        parse_state(raw)


# -- the state file ------------------------------------------------------------------------

class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def write(path: Path, doc: Any) -> None:
    """As stackctl does: a temporary file in the same folder, renamed over (a new inode)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    os.replace(tmp, path)


def watcher(path: Path, warnings: list[str] | None = None,
            clock: Clock | None = None) -> StateFile:
    return StateFile(str(path), interval=0.05, clock=clock or Clock(),
                     warn=(warnings if warnings is not None else []).append)


def test_changes_are_seen_after_the_stat_interval(tmp_path: Path) -> None:
    path, clock = tmp_path / "gpu-routing.json", Clock()
    write(path, {"v": 1, "divert": {"a": "f"}})
    sf = watcher(path, clock=clock)
    assert sf.current().divert == {"a": "f"} and sf.stats == 1

    write(path, {"v": 1, "hold": {"a": {"seconds": 3, "fallback": None}}})
    for _ in range(100):  # within 50 ms: no stat, the old state
        clock.now += 0.0004
        assert sf.current().divert == {"a": "f"}
    assert sf.stats == 1
    clock.now += 0.02
    assert sf.current().hold == {"a": Hold(3.0, None)} and sf.current().divert == {}
    assert sf.stats == 2


def test_parses_only_when_the_file_changed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                           ) -> None:
    parsed: list[bytes] = []
    real = rc.parse_state
    monkeypatch.setattr(rc, "parse_state", lambda raw: parsed.append(raw) or real(raw))
    path, clock = tmp_path / "gpu-routing.json", Clock()
    write(path, {"v": 1, "divert": {"a": "f"}})
    sf = watcher(path, clock=clock)
    for _ in range(20):
        sf.current()
        clock.now += 0.06
    assert sf.stats == 20 and len(parsed) == 1 and sf.version == 1
    write(path, {"v": 1, "divert": {"a": "f"}})  # same bytes, a new inode: read again
    sf.current()
    assert len(parsed) == 2 and sf.current().divert == {"a": "f"}


@pytest.mark.parametrize("content", ["{not json", '{"v": 1, "hold": {"a": 15}}', "[]"])
def test_an_invalid_file_fails_open_with_one_warning(tmp_path: Path, content: str) -> None:
    path, clock, warnings = tmp_path / "gpu-routing.json", Clock(), []
    write(path, {"v": 1, "divert": {"a": "f"}})
    sf = watcher(path, warnings, clock)
    assert sf.current().divert == {"a": "f"}
    write(path, content)
    for _ in range(50):
        clock.now += 0.06
        assert sf.current() is EMPTY
    assert len(warnings) == 1, warnings
    assert "invalid" in warnings[0] and str(path) in warnings[0]


def test_one_warning_per_distinct_problem(tmp_path: Path) -> None:
    path, clock, warnings = tmp_path / "gpu-routing.json", Clock(), []
    sf = watcher(path, warnings, clock)
    for content in (None, None, "{", "{", "[]", "[]", None):
        if content is None:
            path.unlink(missing_ok=True)
        else:
            write(path, content)
        for _ in range(3):
            clock.now += 0.06
            assert sf.current() is EMPTY
    assert [w.split(": ", 1)[1].split(";")[0] for w in warnings] == [
        "missing", "invalid: not JSON (JSONDecodeError)", "invalid: not a JSON object"]
    write(path, {"v": 1})  # good again: a later problem is news again
    clock.now += 0.06
    sf.current()
    path.unlink()
    clock.now += 0.06
    sf.current()
    assert len(warnings) == 4 and "missing" in warnings[-1]


def test_an_unreadable_file_fails_open(tmp_path: Path) -> None:
    path, warnings = tmp_path / "gpu-routing.json", []
    path.mkdir()  # stat-able, not readable as a file (a mode-000 file is readable by root)
    assert watcher(path, warnings).current() is EMPTY
    assert len(warnings) == 1 and "unreadable (IsADirectoryError" in warnings[0], warnings


def test_the_default_path_is_beside_the_module(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(rc.ENV_FILE, raising=False)
    assert rc.default_path() == str(Path(rc.__file__).resolve().parent / "gpu-routing.json")
    monkeypatch.setenv(rc.ENV_FILE, "/elsewhere/state.json")
    assert rc.default_path() == "/elsewhere/state.json"


# -- the hook ------------------------------------------------------------------------------

def routing(path: Path, warnings: list[str] | None = None) -> Routing:
    sf = StateFile(str(path), interval=0.01,
                   warn=(warnings if warnings is not None else []).append)
    return Routing(sf, poll=0.01)


def request(model: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}


def test_a_held_request_is_released_when_the_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "gpu-routing.json"
    write(path, {"v": 1, "hold": {"a": {"seconds": 30, "fallback": "f"}}})
    r = routing(path)

    async def main() -> tuple[dict[str, Any], float]:
        data = request("a", stream=True, metadata={"user": "kept"})
        t0 = time.monotonic()
        task = asyncio.create_task(r.pre_call(data, "acompletion"))
        await asyncio.sleep(0.3)
        assert not task.done()
        assert data["model"] == "a"
        write(path, {"v": 1})
        assert await asyncio.wait_for(task, 2) is None
        return data, time.monotonic() - t0

    data, took = asyncio.run(main())
    assert 0.3 <= took < 0.6, took
    assert data["model"] == "a" and data["stream"] is True
    assert data["metadata"]["user"] == "kept"
    info = data["metadata"]["stackctl_routing"]
    assert info["asked"] == "a" and info["action"] == "held"
    assert 280 <= info["held_ms"] < 600, info


def test_a_released_request_is_decided_again(tmp_path: Path) -> None:
    path = tmp_path / "gpu-routing.json"
    write(path, {"v": 1, "hold": {"a": {"seconds": 30, "fallback": "g"}}})
    r = routing(path)

    async def main() -> dict[str, Any]:
        data = request("a")
        task = asyncio.create_task(r.pre_call(data, "atext_completion"))
        await asyncio.sleep(0.1)
        write(path, {"v": 1, "divert": {"a": "f"}})  # released into a divert
        await asyncio.wait_for(task, 2)
        return data

    data = asyncio.run(main())
    assert data["model"] == "f"
    info = data["metadata"]["stackctl_routing"]
    assert info["action"] == "diverted" and info["held_ms"] >= 80, info


def test_a_hold_expires_to_the_fallback(tmp_path: Path) -> None:
    path = tmp_path / "gpu-routing.json"
    write(path, {"v": 1, "hold": {"a": {"seconds": 0.25, "fallback": "f"},
                                  "b": {"seconds": 0.25, "fallback": None}}})
    r = routing(path)

    async def main() -> tuple[dict[str, Any], dict[str, Any], float]:
        a, b = request("a"), request("b")
        t0 = time.monotonic()
        await asyncio.gather(r.pre_call(a, "acompletion"), r.pre_call(b, "acompletion"))
        return a, b, time.monotonic() - t0

    a, b, took = asyncio.run(main())
    assert 0.25 <= took < 0.5, took
    assert a["model"] == "f" and b["model"] == "b"  # no fallback: on unchanged
    for data, asked in ((a, "a"), (b, "b")):
        info = data["metadata"]["stackctl_routing"]
        assert info["asked"] == asked and info["action"] == "hold_expired", info
        assert 250 <= info["held_ms"] < 500, info


def test_divert_is_at_once(tmp_path: Path) -> None:
    path = tmp_path / "gpu-routing.json"
    write(path, {"v": 1, "divert": {"a": "f", "f": "z"}})
    data = request("a")
    t0 = time.monotonic()
    asyncio.run(routing(path).pre_call(data, "acompletion"))
    assert time.monotonic() - t0 < 0.05
    assert data["model"] == "f"  # not chained on to "z"
    assert data["metadata"]["stackctl_routing"] == {"asked": "a", "action": "diverted",
                                                    "held_ms": 0}


@pytest.mark.parametrize(("model", "call_type"), [
    ("x", "acompletion"),         # in neither map
    ("a", "aembedding"),          # not a completion
    ("a", "aresponses"),
])
def test_other_requests_are_untouched(tmp_path: Path, model: str, call_type: str) -> None:
    path = tmp_path / "gpu-routing.json"
    write(path, {"v": 1, "divert": {"a": "f"}, "hold": {"b": {"seconds": 9, "fallback": "f"}}})
    data = request(model, metadata={"k": 1})
    before = json.loads(json.dumps(data))
    assert asyncio.run(routing(path).pre_call(data, call_type)) is None
    assert data == before


def test_no_file_means_untouched_and_one_warning(tmp_path: Path) -> None:
    warnings: list[str] = []
    r = routing(tmp_path / "absent.json", warnings)

    async def main() -> list[dict[str, Any]]:
        out = []
        for _ in range(20):
            out.append(request("a"))
            await r.pre_call(out[-1], "acompletion")
            await asyncio.sleep(0.015)
        return out

    assert all(d == request("a") for d in asyncio.run(main()))
    assert len(warnings) == 1 and "missing" in warnings[0]


def test_a_hook_error_lets_the_request_through(tmp_path: Path) -> None:
    path = tmp_path / "gpu-routing.json"
    write(path, {"v": 1, "divert": {"a": "f"}})
    warnings: list[str] = []
    r = routing(path, warnings)
    r.state_file.current = lambda: 1 / 0  # type: ignore[method-assign]
    for _ in range(3):
        data = request("a")
        assert asyncio.run(r.pre_call(data, "acompletion")) is None
        assert data == request("a")
    assert len(warnings) == 1 and "ZeroDivisionError" in warnings[0]


def test_a_hold_does_not_block_the_event_loop(tmp_path: Path) -> None:
    path = tmp_path / "gpu-routing.json"
    write(path, {"v": 1, "hold": {"a": {"seconds": 0.3, "fallback": "f"}}})
    r = routing(path)

    async def main() -> list[float]:
        held = [asyncio.create_task(r.pre_call(request("a"), "acompletion")) for _ in range(50)]
        gaps, last = [], time.monotonic()
        while not all(t.done() for t in held):
            await asyncio.sleep(0.002)
            now = time.monotonic()
            gaps.append(now - last)
            last = now
        return gaps

    gaps = asyncio.run(main())
    assert len(gaps) > 50 and max(gaps) < 0.05, (len(gaps), max(gaps))


def _median_ns(run: Any, n: int = 3000) -> float:
    samples = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        run()
        samples.append(time.perf_counter_ns() - t0)
    return statistics.median(samples)


def _drive(coro: Any) -> None:
    """Run a coroutine that does not suspend, without an event loop's scheduling cost."""
    try:
        coro.send(None)
    except StopIteration:
        return
    raise AssertionError("the hook suspended for an unaffected model")


def test_an_unaffected_model_costs_under_20_microseconds(tmp_path: Path) -> None:
    path = tmp_path / "gpu-routing.json"
    write(path, {"v": 1, "divert": {f"d{i}": "f" for i in range(50)},
                 "hold": {f"h{i}": {"seconds": 9, "fallback": None} for i in range(50)}})
    r = Routing(StateFile(str(path)))  # the real 50 ms stat interval (stats included)
    data = request("x")
    median = _median_ns(lambda: _drive(r.pre_call(data, "acompletion")))
    assert median < 20_000, f"{median / 1000:.1f} µs"
    assert data == request("x")


def test_the_proxy_loads_the_callback_like_litellm(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """As `get_instance_fn` loads `stackctl_routing.callback`: the file executed from the
    config's folder (not imported as a package), then `getattr(module, "callback")`."""
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "true")
    monkeypatch.delenv(rc.ENV_FILE, raising=False)
    shutil.copy(rc.__file__, tmp_path / "stackctl_routing.py")
    write(tmp_path / "gpu-routing.json", {"v": 1, "divert": {"a": "f"}})
    spec = importlib.util.spec_from_file_location("stackctl_routing",
                                                  tmp_path / "stackctl_routing.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cb = module.callback
    assert cb is module.callback

    from litellm.integrations.custom_logger import CustomLogger

    assert isinstance(cb, CustomLogger)
    # what ProxyLogging.pre_call_hook checks before awaiting a callback's hook
    assert "async_pre_call_hook" in vars(type(cb))
    assert type(cb).async_pre_call_hook is not CustomLogger.async_pre_call_hook
    assert cb.routing.state_file.path == str(tmp_path / "gpu-routing.json")

    data = request("a")
    kwargs = {"user_api_key_dict": None, "cache": None, "call_type": "acompletion"}
    assert asyncio.run(cb.async_pre_call_hook(data=data, **kwargs)) is None
    assert data["model"] == "f"
    other = request("x")
    median = _median_ns(lambda: _drive(cb.async_pre_call_hook(data=other, **kwargs)))
    assert median < 20_000, f"{median / 1000:.1f} µs"


def test_each_rerouted_request_is_counted_for_the_gateway_metric(tmp_path: Path) -> None:
    """LiteLLM counts only its router's fallbacks: a diverted or held request is counted by
    the hook (stackctl_gateway_rerouted_requests_total), once, with what answers it."""
    path = tmp_path / "gpu-routing.json"
    write(path, {"v": 1, "divert": {"a": "f"}, "hold": {"b": {"seconds": 0.05, "fallback": "f"}}})
    counted: list[tuple[str, str, str]] = []
    r = Routing(StateFile(str(path), interval=0.01, warn=lambda m: None), poll=0.01,
                count=lambda *c: counted.append(c))

    async def main() -> None:
        for model in ("a", "b", "x"):
            await r.pre_call(request(model), "acompletion")

    asyncio.run(main())
    assert counted == [("a", "f", "diverted"), ("b", "f", "hold_expired")]  # "x": untouched


def test_held_requests_are_a_queue_depth_and_their_waits_a_histogram(tmp_path: Path) -> None:
    """Queue depth (+1 when a request starts waiting, -1 when it leaves, also cancelled) and
    how long each held request waited, by how it left; a diverted one never waited."""
    path = tmp_path / "gpu-routing.json"
    write(path, {"v": 1, "divert": {"a": "f"}, "hold": {"b": {"seconds": 0.05, "fallback": "f"},
                                                         "c": {"seconds": 30, "fallback": None}}})
    depth: list[tuple[str, int]] = []
    waits: list[tuple[str, str, float]] = []
    r = Routing(StateFile(str(path), interval=0.01, warn=lambda m: None), poll=0.01,
                holding=lambda m, d: depth.append((m, d)),
                held_for=lambda m, a, s: waits.append((m, a, s)))

    async def main() -> None:
        for model in ("a", "b"):
            await r.pre_call(request(model), "acompletion")
        task = asyncio.create_task(r.pre_call(request("c"), "acompletion"))
        await asyncio.sleep(0.05)
        assert depth[-1] == ("c", 1)
        task.cancel()  # the client went away
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert depth == [("b", 1), ("b", -1), ("c", 1), ("c", -1)]
    assert [(m, a) for m, a, _ in waits] == [("b", "hold_expired")]
    assert waits[0][2] >= 0.05


def test_the_queue_meters_register_with_prometheus_client() -> None:
    from unittest import mock

    from prometheus_client import CollectorRegistry, Gauge, Histogram

    from stackctl.incontainer import routing_callback as rc

    registry = CollectorRegistry()
    with mock.patch("prometheus_client.Gauge", lambda *a, **k: Gauge(*a, registry=registry, **k)), \
            mock.patch("prometheus_client.Histogram",
                       lambda *a, **k: Histogram(*a, registry=registry, **k)):
        holding, held_for = rc._hold_meters()
    holding("m", 1)
    holding("m", 1)
    holding("m", -1)
    held_for("m", "held", 0.3)
    assert registry.get_sample_value(rc.HELD_METRIC, {"requested_model": "m"}) == 1
    assert registry.get_sample_value(rc.HOLD_METRIC + "_count",
                                     {"requested_model": "m", "action": "held"}) == 1
    assert registry.get_sample_value(rc.HOLD_METRIC + "_bucket", {
        "requested_model": "m", "action": "held", "le": "0.5"}) == 1
