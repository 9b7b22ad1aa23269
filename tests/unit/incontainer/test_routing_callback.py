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


# -- the on-demand scheduler (`scheduler` + `ask`) -------------------------------------------

SOCK = "sched.sock"


def ask_state(ask: dict[str, Any], scheduler: str | None = SOCK, **more: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"v": 1, "ask": ask, **more}
    if scheduler is not None:
        doc["scheduler"] = scheduler
    return doc


def entry(seconds: float = 5, fallback: str | None = "f", awake: bool = False) -> dict[str, Any]:
    return {"seconds": seconds, "fallback": fallback, "awake": awake}


class FakeScheduler:
    """A unix socket server in the test's loop: reads one request line, answers with what
    `answer(request)` returns (bytes; None: never), and notes when the gateway's side closed."""

    def __init__(self, path: Path, answer: Any) -> None:
        self.path, self.answer = path, answer
        self.requests: list[dict[str, Any]] = []
        self.closed: list[float] = []  # when each connection saw EOF (monotonic)
        self.server: asyncio.AbstractServer | None = None

    async def __aenter__(self) -> FakeScheduler:
        self.server = await asyncio.start_unix_server(self._handle, str(self.path))
        return self

    async def __aexit__(self, *exc: Any) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line = await reader.readline()
        if not line:
            writer.close()
            return
        request = json.loads(line)
        self.requests.append(request)

        async def reply() -> None:
            out = await self.answer(request)
            if out is not None:
                writer.write(out)
                await writer.drain()
            await asyncio.Event().wait()  # keep the connection open: the gateway closes it

        replying = asyncio.create_task(reply())
        await reader.read()  # until EOF: the gateway closed its end
        self.closed.append(time.monotonic())
        replying.cancel()
        writer.close()


def answer(doc: Any, after: float = 0.0) -> Any:
    async def run(request: dict[str, Any]) -> bytes | None:
        await asyncio.sleep(after)
        if doc is None:
            return None
        return doc if isinstance(doc, bytes) else json.dumps(doc).encode() + b"\n"
    return run


def test_parse_state_reads_the_scheduler_and_ask() -> None:
    state = parse_state(json.dumps(ask_state(
        {"a": entry(10, "f", True), "b": entry(2.5, None, False)}, divert={"c": "f"})))
    assert state.scheduler == SOCK
    assert state.ask == {"a": rc.Ask(10.0, "f", True), "b": rc.Ask(2.5, None, False)}
    assert state.divert == {"c": "f"}
    assert decide(state, "a", 0.0) == (rc.ASK, None)
    # a file without the keys is read as before
    old = parse_state('{"v": 1, "divert": {"a": "f"}}')
    assert old.scheduler is None and old.ask == {} and old == State(divert={"a": "f"})
    # `ask` without a scheduler: nobody to ask, the entries are inert
    inert = parse_state(json.dumps(ask_state({"a": entry()}, scheduler=None)))
    assert not inert.affects("a") and decide(inert, "a", 0.0) == (PASS, None)


@pytest.mark.parametrize("doc", [
    ask_state({}, scheduler=""),
    ask_state({}, scheduler="run/sched.sock"),          # a '/': not a name in the folder
    ask_state({}, scheduler="/run/sched.sock"),
    ask_state({}, scheduler=".."),
    ask_state({}, scheduler=3),
    {"v": 1, "scheduler": SOCK, "ask": []},
    ask_state({"a": 5}),
    ask_state({"": entry()}),
    ask_state({"a": {"seconds": 5, "fallback": "f"}}),   # no awake
    ask_state({"a": entry() | {"awake": "yes"}}),
    ask_state({"a": entry() | {"seconds": -1}}),
    ask_state({"a": entry() | {"seconds": True}}),
    ask_state({"a": entry() | {"fallback": 7}}),
    ask_state({"a": entry() | {"fallback": ""}}),
])
def test_parse_state_refuses_bad_scheduler_keys(doc: Any) -> None:
    with pytest.raises(ValueError):
        parse_state(json.dumps(doc))


def test_a_bad_ask_key_fails_open_with_one_warning(tmp_path: Path) -> None:
    path, clock, warnings = tmp_path / "gpu-routing.json", Clock(), []
    write(path, ask_state({"a": entry() | {"awake": 1}}, divert={"b": "f"}))
    sf = watcher(path, warnings, clock)
    for _ in range(5):
        assert sf.current() is EMPTY
        clock.now += 0.06
    assert len(warnings) == 1 and "invalid: ask of 'a': 'awake'" in warnings[0], warnings


def scheduled(tmp_path: Path, ask: dict[str, Any], warnings: list[str] | None = None,
              **kw: Any) -> tuple[Routing, list[tuple[str, int]], list[tuple[str, str, float]],
                                  list[tuple[str, str, str]]]:
    path = tmp_path / "gpu-routing.json"
    write(path, ask_state(ask, **kw))
    depth: list[tuple[str, int]] = []
    waits: list[tuple[str, str, float]] = []
    counted: list[tuple[str, str, str]] = []
    sf = StateFile(str(path), interval=0.01,
                   warn=(warnings if warnings is not None else []).append)
    r = Routing(sf, poll=0.05, holding=lambda m, d: depth.append((m, d)),
                held_for=lambda m, a, s: waits.append((m, a, s)),
                count=lambda *c: counted.append(c))
    return r, depth, waits, counted


def test_the_scheduler_says_go_at_once(tmp_path: Path) -> None:
    r, depth, waits, counted = scheduled(tmp_path, {"a": entry()})

    async def main() -> FakeScheduler:
        async with FakeScheduler(tmp_path / SOCK, answer({"go": True})) as fake:
            for stream in (True, False):
                data = request("a", stream=stream, metadata={"k": 1})
                await r.pre_call(data, "acompletion")
                assert data == request("a", stream=stream, metadata={"k": 1})  # untouched
            await asyncio.sleep(0.05)
            return fake

    fake = asyncio.run(main())
    assert [(q["v"], q["model"], q["stream"]) for q in fake.requests] == [
        (1, "a", True), (1, "a", False)]
    assert all(len(q["id"]) == 32 and int(q["id"], 16) >= 0 for q in fake.requests)
    assert fake.requests[0]["id"] != fake.requests[1]["id"]
    assert sorted(fake.requests[0]) == ["id", "model", "probe", "stream", "v", "waited"]
    assert all(0 <= q["waited"] < 0.05 for q in fake.requests)  # asked as it arrived
    assert [q["probe"] for q in fake.requests] == [False, False]
    assert len(fake.closed) == 2  # one connection per request, closed after the reply
    assert depth == [] and waits == [] and counted == []


def test_stackctl_own_requests_are_asked_about_as_probes(tmp_path: Path) -> None:
    r, *_ = scheduled(tmp_path, {"a": entry()})

    async def main() -> FakeScheduler:
        async with FakeScheduler(tmp_path / SOCK, answer({"go": True})) as fake:
            for meta in ({rc.PROBE_KEY: True}, {rc.PROBE_KEY: "yes"}, None):
                await r.pre_call(request("a", metadata=meta) if meta else request("a"),
                                 "acompletion")
            return fake

    # only the exact marker: anything else is a client's request, and demand
    assert [q["probe"] for q in asyncio.run(main()).requests] == [True, False, False]

def test_the_scheduler_says_go_after_a_wait(tmp_path: Path) -> None:
    r, depth, waits, counted = scheduled(tmp_path, {"a": entry(5, "f")})

    async def main() -> tuple[dict[str, Any], float]:
        async with FakeScheduler(tmp_path / SOCK, answer({"go": True}, after=0.3)):
            data = request("a")
            t0 = time.monotonic()
            task = asyncio.create_task(r.pre_call(data, "acompletion"))
            await asyncio.sleep(0.15)
            assert depth == [("a", 1)]  # waiting beyond the instant answer: held
            await task
            return data, time.monotonic() - t0

    data, took = asyncio.run(main())
    assert 0.3 <= took < 1.0, took
    assert data["model"] == "a"
    info = data["metadata"]["stackctl_routing"]
    assert info["asked"] == "a" and info["action"] == "held" and 280 <= info["held_ms"] < 1000
    assert depth == [("a", 1), ("a", -1)]
    assert [(m, a) for m, a, _ in waits] == [("a", "held")] and waits[0][2] >= 0.3
    assert counted == [("a", "a", "held")]


@pytest.mark.parametrize(("reply", "model", "action"), [
    ({"divert": "g"}, "g", "diverted"),
    ({"divert": None}, "a", None),          # on unchanged, nothing recorded
])
def test_the_scheduler_diverts(tmp_path: Path, reply: Any, model: str, action: str | None
                               ) -> None:
    r, depth, _, counted = scheduled(tmp_path, {"a": entry(5, "f")})

    async def main() -> dict[str, Any]:
        async with FakeScheduler(tmp_path / SOCK, answer(reply)):
            data = request("a")
            await r.pre_call(data, "acompletion")
            return data

    data = asyncio.run(main())
    assert data["model"] == model
    if action is None:
        assert "metadata" not in data and counted == []
    else:
        assert data["metadata"]["stackctl_routing"] == {"asked": "a", "action": action,
                                                        "held_ms": 0}
        assert counted == [("a", model, action)]
    assert depth == []


@pytest.mark.parametrize(("after", "held"), [(0.0, False), (0.3, True)])
def test_the_scheduler_rejects(tmp_path: Path, after: float, held: bool) -> None:
    r, depth, waits, counted = scheduled(tmp_path, {"a": entry(5, "f")})

    async def main() -> tuple[dict[str, Any], rc.Rejected]:
        reply = {"reject": True, "retry_after": 2.5, "message": "queue full for a"}
        async with FakeScheduler(tmp_path / SOCK, answer(reply, after=after)):
            data = request("a")
            with pytest.raises(rc.Rejected) as caught:
                await r.pre_call(data, "acompletion")
            return data, caught.value

    data, exc = asyncio.run(main())
    assert exc.retry_after == 3 and exc.message == "queue full for a" and exc.model == "a"
    assert data["model"] == "a"
    assert data["metadata"]["stackctl_routing"]["action"] == "rejected"
    assert counted == [("a", "", "rejected")]
    assert [(m, a) for m, a, _ in waits] == ([("a", "rejected")] if held else [])
    assert depth == ([("a", 1), ("a", -1)] if held else [])


@pytest.mark.parametrize(("fallback", "model"), [("f", "f"), (None, "a")])
def test_no_reply_within_seconds_goes_to_the_fallback(tmp_path: Path, fallback: str | None,
                                                      model: str) -> None:
    r, depth, waits, counted = scheduled(tmp_path, {"a": entry(0.4, fallback)})

    async def main() -> tuple[dict[str, Any], float, FakeScheduler, float]:
        async with FakeScheduler(tmp_path / SOCK, answer(None)) as fake:
            data = request("a")
            t0 = time.monotonic()
            await r.pre_call(data, "acompletion")
            done = time.monotonic()
            for _ in range(100):
                if fake.closed:
                    break
                await asyncio.sleep(0.01)
            return data, done - t0, fake, done

    data, took, fake, done = asyncio.run(main())
    assert 0.4 <= took < 1.0, took
    assert data["model"] == model
    info = data["metadata"]["stackctl_routing"]
    assert info["action"] == "hold_expired" and 380 <= info["held_ms"] < 1000, info
    assert counted == [("a", model, "hold_expired")]
    assert [(m, a) for m, a, _ in waits] == [("a", "hold_expired")]
    assert depth == [("a", 1), ("a", -1)]
    assert len(fake.closed) == 1 and fake.closed[0] - done < 0.5  # it sees EOF at once


def test_a_cancelled_request_closes_the_connection_at_once(tmp_path: Path) -> None:
    r, depth, _, counted = scheduled(tmp_path, {"a": entry(30, "f")})

    async def main() -> tuple[FakeScheduler, float]:
        async with FakeScheduler(tmp_path / SOCK, answer(None)) as fake:
            task = asyncio.create_task(r.pre_call(request("a"), "acompletion"))
            await asyncio.sleep(0.2)
            assert fake.requests and not fake.closed
            cancelled = time.monotonic()
            task.cancel()  # the client went away
            with pytest.raises(asyncio.CancelledError):
                await task
            for _ in range(100):
                if fake.closed:
                    break
                await asyncio.sleep(0.01)
            return fake, cancelled

    fake, cancelled = asyncio.run(main())
    assert len(fake.closed) == 1 and fake.closed[0] - cancelled < 0.5
    assert depth == [("a", 1), ("a", -1)] and counted == []


def _refusing_socket(path: Path) -> Any:
    """A socket file nobody listens on (connection refused)."""
    import socket

    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    return s


@pytest.mark.parametrize("how", ["missing", "refused", "eof", "invalid", "half line",
                                 "unknown reply"])
def test_an_unreachable_scheduler_fails_open_by_awake(tmp_path: Path, how: str) -> None:
    warnings: list[str] = []
    r, depth, waits, counted = scheduled(
        tmp_path, {"a": entry(5, "f", awake=True), "b": entry(5, "f", awake=False),
                   "c": entry(5, None, awake=False)}, warnings)
    replies = {"eof": None, "invalid": b"{nope\n", "half line": b'{"go": tr',
               "unknown reply": b'{"go": false}\n'}

    async def run_all() -> list[dict[str, Any]]:
        out = []
        for model in ("a", "b", "c") * 3:
            out.append(request(model))
            await r.pre_call(out[-1], "acompletion")
        return out

    async def main() -> list[dict[str, Any]]:
        if how == "missing":
            return await run_all()
        if how == "refused":
            s = _refusing_socket(tmp_path / SOCK)
            try:
                return await run_all()
            finally:
                s.close()
        reply = replies[how]

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readline()
            if reply is not None:
                writer.write(reply)
            writer.close()  # EOF (after a half or bad line, or none)

        server = await asyncio.start_unix_server(handle, str(tmp_path / SOCK))
        async with server:
            return await run_all()

    out = asyncio.run(main())
    assert [d["model"] for d in out] == ["a", "f", "c"] * 3  # awake: on; asleep: the fallback
    assert "metadata" not in out[0] and "metadata" not in out[2]
    assert out[1]["metadata"]["stackctl_routing"] == {"asked": "b", "action": "diverted",
                                                      "held_ms": 0}
    assert counted == [("b", "f", "diverted")] * 3
    assert len(warnings) == 1, warnings  # one per distinct problem, not per request
    assert str(tmp_path / SOCK) in warnings[0]
    assert depth == [] and waits == []


def test_hold_comes_first_then_the_scheduler_is_asked(tmp_path: Path) -> None:
    path = tmp_path / "gpu-routing.json"
    r, depth, waits, _ = scheduled(tmp_path, {"a": entry(5, "f")},
                                   hold={"a": {"seconds": 30, "fallback": None}})

    async def main() -> tuple[dict[str, Any], FakeScheduler]:
        async with FakeScheduler(tmp_path / SOCK, answer({"divert": "g"})) as fake:
            data = request("a")
            task = asyncio.create_task(r.pre_call(data, "acompletion"))
            await asyncio.sleep(0.2)
            assert not fake.requests  # a switch is running: held, not asked yet
            write(path, ask_state({"a": entry(5, "f")}))
            await asyncio.wait_for(task, 2)
            return data, fake

    data, fake = asyncio.run(main())
    assert [q["model"] for q in fake.requests] == ["a"]
    # it says how long the switch held it: the scheduler counts it as asked then
    assert 0.2 <= fake.requests[0]["waited"] < 2
    assert data["model"] == "g"
    assert data["metadata"]["stackctl_routing"]["action"] == "diverted"
    assert depth == [("a", 1), ("a", -1)]  # one held request throughout
    assert [(m, a) for m, a, _ in waits] == [("a", "diverted")]


def test_the_socket_is_in_the_state_files_folder(tmp_path: Path) -> None:
    r, *_ = scheduled(tmp_path, {"a": entry()})
    state = r.state_file.current()
    assert r.scheduler_path(state) == str(tmp_path / SOCK)


def test_a_rejection_is_a_429_with_retry_after_in_the_proxy(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    """The hook raises litellm's ProxyException: code 429 (its exception handler's status)
    and a Retry-After header (kept by handle_llm_api_exception)."""
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "true")
    monkeypatch.setenv(rc.ENV_FILE, str(tmp_path / "gpu-routing.json"))
    write(tmp_path / "gpu-routing.json", ask_state({"a": entry()}))
    spec = importlib.util.spec_from_file_location("stackctl_routing", rc.__file__)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # its meters are registered once per process (the loader test above did)
    module._hold_meters = lambda: ((lambda m, d: None), (lambda m, a, s: None))
    module._counter = lambda: (lambda *c: None)
    cb = module.callback

    from litellm.proxy._types import ProxyException

    async def main() -> ProxyException:
        reply = {"reject": True, "retry_after": 7, "message": "a is busy"}
        async with FakeScheduler(tmp_path / SOCK, answer(reply)):
            with pytest.raises(ProxyException) as caught:
                await cb.async_pre_call_hook(user_api_key_dict=None, cache=None,
                                             data=request("a"), call_type="acompletion")
            return caught.value

    exc = asyncio.run(main())
    assert exc.code == "429" and exc.headers == {"Retry-After": "7"}
    assert exc.message == "a is busy" and exc.type == "rate_limit_error"
