"""`stackctl bench` (issue 10) as data: percentiles, summaries, the knee of a sweep, the
gateway's overhead, the comparison with an earlier run, the SSE reader, the targets the
registry yields, the runner with a fake `send`, and the command with its HTTP faked.
Nothing here reaches a gateway or a port."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from stackctl.bench.compare import compare, load_report
from stackctl.bench.plan import UnknownModels, plan_targets
from stackctl.bench.report import BenchOptions, BenchReport, Cell, Stats, Target
from stackctl.bench.run import run_bench, run_cell
from stackctl.bench.sender import HttpSender, read_stream
from stackctl.bench.stats import Sample, knee, overheads, percentile, stats, summarize, sweeps
from stackctl.cli import cli
from stackctl.registry.load import load_registry

GW = Target(model="m", route="gateway", url="http://127.0.0.1:4000/v1", backend="m")
DIRECT = Target(model="m", route="direct", url="http://127.0.0.1:8080/v1", backend="m-b",
                provider="p")


def cell(c: int, rps: float, p50: float | None, *, route: str = "gateway", model: str = "m",
         errors: int = 0, ok: int = 10, ttft: float | None = None, tps: float = 50.0) -> Cell:
    lat = Stats(p50=p50, p95=p50 * 1.5, p99=p50 * 2, mean=p50, min=p50, max=p50 * 2) \
        if p50 is not None else None
    tt = Stats(p50=ttft, p95=ttft, p99=ttft, mean=ttft, min=ttft, max=ttft) if ttft else None
    return Cell(model=model, route=route, concurrency=c, requests=ok + errors, ok=ok,
                errors=errors, latency_ms=lat, ttft_ms=tt, tokens_per_s=tps,
                requests_per_s=rps, wall_s=1.0)


def report(cells: list[Cell], **options) -> BenchReport:
    return BenchReport(ok=True, started_at="2026-01-01T00:00:00+00:00",
                       gateway="http://127.0.0.1:4000", options=BenchOptions(**options),
                       targets=[], cells=cells, sweeps=[], overhead=[])


# -- statistics -------------------------------------------------------------------------------

def test_percentile_is_linear_between_ranks_like_numpy():
    xs = list(range(1, 11))
    assert percentile(xs, 50) == 5.5
    assert percentile(xs, 95) == pytest.approx(9.55)
    assert percentile(xs, 99) == pytest.approx(9.91)
    assert percentile(xs, 0) == 1 and percentile(xs, 100) == 10
    assert percentile([7.0], 99) == 7.0
    assert percentile([3, 1, 2], 50) == 2  # unsorted input
    with pytest.raises(ValueError):
        percentile([], 50)
    assert stats([]) is None
    s = stats([10.0, 20.0, 30.0, 40.0])
    assert s is not None and s.p50 == 25 and s.p50 <= s.p95 <= s.p99 <= s.max == 40


def test_summarize_counts_tokens_errors_and_rates():
    samples = [Sample(True, 0.5, tokens=10, tokens_source="usage", served_by="m@p"),
               Sample(True, 1.0, tokens=20, tokens_source="usage", served_by="m@p"),
               Sample(True, 2.0, tokens=20, tokens_source="usage", served_by="m@q"),
               Sample(False, 0.1, error="HTTP 500: boom"),
               Sample(False, 0.1, error="HTTP 500: boom")]
    c = summarize(GW, 2, samples, wall=2.5)
    assert (c.requests, c.ok, c.errors) == (5, 3, 2)
    assert c.error_samples == ["HTTP 500: boom"]
    assert c.latency_ms is not None and c.latency_ms.p50 == 1000 and c.latency_ms.min == 500
    assert c.ttft_ms is None  # not streamed
    assert c.tokens == 50 and c.tokens_source == "usage"
    assert c.tokens_per_s == 20.0  # 50 tokens / 2.5 s
    assert c.tokens_per_s_request == 20.0  # median of 20, 20, 10 tokens/s
    assert c.requests_per_s == 1.2  # answered only
    assert c.served_by == {"m@p": 2, "m@q": 1}
    assert c.error_rate == 0.4


def test_summarize_streamed_chunks_and_all_failed():
    c = summarize(GW, 1, [Sample(True, 1.0, ttft=0.2, tokens=8, tokens_source="chunks"),
                            Sample(True, 1.0, ttft=0.4, tokens=8, tokens_source="usage")], 2.0)
    assert c.tokens_source == "chunks"  # any estimate makes the cell an estimate
    assert c.ttft_ms is not None and c.ttft_ms.p50 == pytest.approx(300)
    dead = summarize(GW, 4, [Sample(False, error="ConnectionError: refused")] * 3, 0.0)
    assert dead.ok == 0 and dead.latency_ms is None and dead.requests_per_s == 0
    assert dead.tokens_per_s_request is None


# -- the knee ---------------------------------------------------------------------------------

@pytest.mark.parametrize("points, expected", [
    # throughput doubles until 4, then flat: knee 4
    ([(1, 10, 100), (2, 19, 105), (4, 36, 110), (8, 37, 215)], (4, False)),
    # every step scales: the last one, not saturated
    ([(1, 10, 100), (2, 19, 105), (4, 36, 110)], (4, True)),
    # the first step already brings < 10 %: knee at the lowest
    ([(1, 10, 100), (2, 10.5, 190), (4, 30, 130)], (1, False)),
    # +20 % requests/s but latency grew more than the concurrency factor: not scaling
    ([(1, 10, 100), (2, 12, 201)], (1, False)),
    # exactly +10 % counts as scaling
    ([(1, 10, 100), (2, 11, 150)], (2, True)),
    # one step only: no knee
    ([(1, 10, 100)], (None, False)),
    # a step with no answers stops the run of scaling steps
    ([(1, 10, 100), (2, 19, 105), (4, 0, None), (8, 80, 100)], (2, False)),
])
def test_knee(points, expected):
    cells = [cell(c, rps, p50, ok=10 if p50 else 0, errors=0 if p50 else 10)
             for c, rps, p50 in points]
    assert knee(cells) == expected


def test_sweeps_mark_the_knee_per_model_and_route():
    cells = [cell(1, 10, 100), cell(2, 19, 105), cell(4, 19.5, 200),
             cell(1, 20, 50, route="direct"), cell(2, 21, 90, route="direct"),
             cell(1, 5, 100, model="n")]
    out = sweeps(cells)
    assert [(s.model, s.route, s.knee, s.beyond_sweep) for s in out] == [
        ("m", "gateway", 2, False), ("m", "direct", 1, False), ("n", "gateway", None, False)]
    assert [c.knee for c in cells] == [False, True, False, True, False, False]


def test_overhead_is_gateway_minus_direct_p50():
    cells = [cell(1, 10, 120), cell(2, 10, 150), cell(1, 10, 100, route="direct"),
             cell(1, 10, 80, model="n")]
    (ov,) = overheads(cells)
    assert (ov.model, ov.concurrency, ov.diff_ms, ov.ratio) == ("m", 1, 20, 1.2)


# -- comparison -------------------------------------------------------------------------------

def regressions(cmp) -> set[tuple[str, int, str]]:
    return {(d.route, d.concurrency, d.metric) for d in cmp.deltas if d.regression}


def test_compare_flags_what_got_worse_beyond_the_threshold():
    old = report([cell(1, 10, 100, ttft=20), cell(2, 18, 110), cell(1, 30, 40, route="direct")])
    new = report([cell(1, 10.5, 112, ttft=20.5),        # p50 +12 %: regression
                  cell(2, 15, 108, tps=40),               # requests/s −17 %, tokens/s −20 %
                  cell(4, 20, 150)], max_tokens=16)       # new cell
    cmp = compare(old, new, threshold_pct=10, file="old.json")
    assert regressions(cmp) == {("gateway", 1, "latency_p50_ms"),
                                ("gateway", 1, "latency_p95_ms"),
                                ("gateway", 2, "requests_per_s"),
                                ("gateway", 2, "tokens_per_s")}
    assert cmp.regressions == 4 and cmp.file == "old.json"
    better = next(d for d in cmp.deltas if d.concurrency == 2 and d.metric == "latency_p50_ms")
    assert not better.regression and better.change_pct == pytest.approx(-1.8)
    assert cmp.not_compared == ["m direct c=1 (only in the old run)", "m gateway c=4 (new)"]
    assert cmp.notes == ["max_tokens: 64 then, 16 now"]
    # a looser threshold lets +12 % and −17 % pass, not −20 %
    assert regressions(compare(old, new, threshold_pct=19)) == {("gateway", 2, "tokens_per_s")}


def test_compare_floor_for_times_and_any_new_error():
    old = report([cell(1, 100, 1.2, ttft=1.0)])
    assert compare(old, report([cell(1, 100, 1.6, ttft=1.5)])).regressions == 0  # < 1 ms
    cmp = compare(old, report([cell(1, 100, 1.2, ttft=1.0, errors=1, ok=9)]))
    assert regressions(cmp) == {("gateway", 1, "error_rate")}
    same = compare(old, old)
    assert same.regressions == 0 and all(d.change_pct == 0 for d in same.deltas
                                         if d.change_pct is not None)


def test_load_report_round_trip_and_bad_files():
    doc = report([cell(1, 10, 100)])
    again = load_report(doc.model_dump_json())
    assert again.cells[0].latency_ms == doc.cells[0].latency_ms
    for text, says in (("{", "not JSON"), ("[]", "not a `stackctl bench --json`"),
                       ('{"ok": true}', "no \"cells\""),
                       ('{"version": 9, "cells": []}', "version 9"),
                       ('{"version": 1, "cells": [{"model": 1}]}', "ok: Field required")):
        with pytest.raises(ValueError, match=says.replace("(", r"\(").replace(")", r"\)")):
            load_report(text)


# -- the SSE reader ---------------------------------------------------------------------------

def chunk(content: str | None = None, finish: str | None = None, usage: dict | None = None
          ) -> bytes:
    data: dict = {"choices": [] if content is None and finish is None else
                  [{"index": 0, "delta": {"content": content} if content else {},
                    "finish_reason": finish}]}
    if usage:
        data["usage"] = usage
    return b"data: " + json.dumps(data).encode()


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        self.t += 0.1
        return self.t


def test_read_stream_ttft_at_first_content_and_usage_tokens():
    lines = [b"", b": keep-alive", chunk(""),  # role chunk: no content yet
             chunk("Hel"), b"", chunk("lo"), chunk(finish="length"),
             chunk(usage={"completion_tokens": 5}), b"data: [DONE]"]
    s = read_stream(iter(lines), 0.0, Clock(), served="m@p")
    assert s.ok and s.ttft == pytest.approx(0.1) and s.latency == pytest.approx(0.2)
    assert (s.tokens, s.tokens_source, s.served_by) == (5, "usage", "m@p")


def test_read_stream_without_usage_counts_chunks_and_catches_broken_streams():
    s = read_stream(iter([chunk("a"), chunk("b"), chunk("c"), b"data: [DONE]"]), 0, Clock())
    assert s.ok and (s.tokens, s.tokens_source) == (3, "chunks")
    cut = read_stream(iter([chunk("a")]), 0, Clock())
    assert not cut.ok and "before [DONE]" in (cut.error or "")
    err = read_stream(iter([b'data: {"error": {"message": "overloaded"}}']), 0, Clock())
    assert not err.ok and "overloaded" in (err.error or "")
    bad = read_stream(iter([b"data: {nope"]), 0, Clock())
    assert not bad.ok and "bad SSE chunk" in (bad.error or "")


# -- HttpSender with a fake session -----------------------------------------------------------

class FakeResponse:
    def __init__(self, status: int = 200, body: dict | None = None,
                 lines: list[bytes] | None = None, headers: dict | None = None):
        self.status_code, self.ok = status, status < 400
        self._body, self._lines = body, lines or []
        self.headers = headers or {}
        self.text = json.dumps(body) if body is not None else ""

    def json(self) -> dict | None:
        return self._body

    def iter_lines(self, chunk_size=None):  # noqa: ANN001
        return iter(self._lines)


class FakeSession:
    def __init__(self, response: FakeResponse):
        self.response, self.calls = response, []

    def post(self, url, json, headers, timeout, stream):  # noqa: ANN001, A002
        self.calls.append({"url": url, "json": json, "headers": headers, "timeout": timeout,
                           "stream": stream})
        return self.response


def sender(opts: BenchOptions, response: FakeResponse) -> tuple[HttpSender, FakeSession]:
    s = HttpSender(opts, key="sk-secret")
    session = FakeSession(response)
    s._local.session = session
    return s, session


def test_sender_gateway_bypasses_the_cache_and_sends_the_key_direct_does_neither():
    answer = {"choices": [{"message": {"content": "hi"}}], "usage": {"completion_tokens": 7}}
    send, session = sender(BenchOptions(max_tokens=16, timeout=5),
                           FakeResponse(body=answer, headers={"x-litellm-model-id": "m@p"}))
    s = send(GW, "hello")
    assert s.ok and s.tokens == 7 and s.tokens_source == "usage" and s.served_by == "m@p"
    call = session.calls[0]
    assert call["url"] == "http://127.0.0.1:4000/v1/chat/completions"
    assert call["json"]["cache"] == {"no-cache": True} and call["json"]["max_tokens"] == 16
    assert call["headers"] == {"Authorization": "Bearer sk-secret"}
    assert call["timeout"] == 5 and call["stream"] is False and "stream" not in call["json"]
    send(DIRECT, "hello")
    call = session.calls[1]
    assert call["url"] == "http://127.0.0.1:8080/v1/chat/completions"
    assert call["json"]["model"] == "m-b" and "cache" not in call["json"]
    assert call["headers"] == {}


def test_sender_streams_with_usage_and_reports_http_errors():
    send, session = sender(BenchOptions(stream=True), FakeResponse(
        lines=[chunk("a"), chunk(finish="stop"), b"data: [DONE]"]))
    s = send(GW, "x")
    assert s.ok and s.ttft is not None and s.tokens == 1
    body = session.calls[0]["json"]
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert session.calls[0]["stream"] is True
    send, _ = sender(BenchOptions(), FakeResponse(401, body={"error": "bad key"}))
    s = send(GW, "x")
    assert not s.ok and s.error and s.error.startswith("HTTP 401")
    send, _ = sender(BenchOptions(), FakeResponse(body={"choices": []}))
    assert not send(GW, "x").ok


# -- the runner with a fake send --------------------------------------------------------------

class FakeSend:
    """Answers after `delay`; counts calls and the most requests in flight at once."""

    def __init__(self, delay: float = 0.01, fail: set[str] = frozenset(), warm_ok: bool = True):
        self.delay, self.fail, self.warm_ok = delay, fail, warm_ok
        self.calls: list[tuple[str, str]] = []
        self.inflight = self.most = 0
        self.lock = threading.Lock()

    def __call__(self, target: Target, prompt: str) -> Sample:
        with self.lock:
            self.calls.append((target.route, prompt))
            self.inflight += 1
            self.most = max(self.most, self.inflight)
        time.sleep(self.delay)
        with self.lock:
            self.inflight -= 1
        if target.route in self.fail and (len(self.calls) > 1 or not self.warm_ok):
            return Sample(False, self.delay, error="HTTP 503: down")
        return Sample(True, self.delay, tokens=4, tokens_source="usage")


def test_run_cell_keeps_concurrency_clients_busy():
    send = FakeSend(delay=0.03)
    c = run_cell(GW, 4, 12, send, "run", 0)
    assert (c.requests, c.ok, c.concurrency) == (12, 12, 4)
    assert send.most == 4
    prompts = [p for _, p in send.calls]
    assert len(set(prompts)) == 12 and prompts[0].startswith("[run-")
    assert run_cell(GW, 8, 3, FakeSend(), "r", 0).requests == 3  # never more than asked


def test_run_bench_warm_up_not_counted_and_problems_named():
    opts = BenchOptions(concurrency=[2, 1], requests=3)
    assert opts.concurrency == [1, 2]
    send = FakeSend()
    advanced = []
    cells, problems = run_bench([GW, DIRECT], opts, send, advance=lambda: advanced.append(1))
    assert problems == []
    assert [(c.route, c.concurrency, c.requests) for c in cells] == [
        ("gateway", 1, 3), ("gateway", 2, 3), ("direct", 1, 3), ("direct", 2, 3)]
    assert len(send.calls) == 2 * (1 + 2 * 3)  # one warm-up per target, not in any cell
    # warm-ups first, then the routes take turns at each concurrency (same machine load)
    order = [route for route, _ in send.calls]
    assert order == ["gateway", "direct"] + (["gateway"] * 3 + ["direct"] * 3) * 2
    assert len(advanced) == len(send.calls)
    assert len({p for _, p in send.calls}) == len(send.calls)  # every prompt differs

    # warm-up fails: not measured; every request fails: named
    cells, problems = run_bench([GW, DIRECT], opts, FakeSend(fail={"direct"}, warm_ok=False))
    assert [c.route for c in cells] == ["gateway", "gateway"]
    assert problems == ["m via direct (p): unreachable (HTTP 503: down); not measured"]
    cells, problems = run_bench([DIRECT], opts, FakeSend(fail={"direct"}))
    assert len(cells) == 2 and all(c.ok == 0 for c in cells)
    assert problems == ["m via direct (p): every request failed (e.g. HTTP 503: down)"]


def test_run_cell_stops_on_ctrl_c():
    stop = threading.Event()
    stop.set()
    c = run_cell(GW, 2, 10, FakeSend(), "r", 0, stop=stop)
    assert c.requests == 0


# -- targets from the registry ----------------------------------------------------------------

@pytest.fixture
def offline(registry_dir) -> Path:
    return registry_dir("offline", with_output=True)


def test_targets_default_to_models_whose_provider_runs(offline):
    reg = load_registry(offline)
    gw = "http://127.0.0.1:4000"
    targets, notes = plan_targets(reg, BenchOptions(direct=True), gw, {"llama_cpp", "ollama"})
    assert [(t.model, t.route, t.url, t.backend, t.provider) for t in targets] == [
        ("smollm2", "gateway", "http://127.0.0.1:4000/v1", "smollm2", None),
        ("smollm2", "direct", "http://127.0.0.1:8080/v1", "smollm2", "llama_cpp"),
        ("qwen2.5-coder:7b", "gateway", "http://127.0.0.1:4000/v1", "qwen2.5-coder:7b", None),
        ("qwen2.5-coder:7b", "direct", "http://127.0.0.1:11434/v1", "qwen2.5-coder:7b",
         "ollama")]
    assert notes == ["models whose provider is running: smollm2, qwen2.5-coder:7b (not "
                     "benchmarked: qwen-coder-vllm, dolphin-uncensored-vllm; name them with "
                     "--model)"]
    targets, _ = plan_targets(reg, BenchOptions(), gw, set())
    assert targets == []


def test_targets_named_alias_unknown_and_remote(offline, yaml_edit):
    def mappings(d):
        d["exact_matches"]["smollm2"]["aliases"] = ["tiny"]
        d["exact_matches"]["gpt-x"] = {"provider": "cloud"}

    def providers(d):
        d["providers"]["cloud"] = {"type": "openai", "base_url": "https://api.example.com/v1",
                                   "env_var": "CLOUD_KEY", "models": [{"name": "gpt-x"}]}
    yaml_edit(offline / "model-mappings.yaml", mappings)
    yaml_edit(offline / "providers.yaml", providers)
    reg = load_registry(offline)
    opts = BenchOptions(models=["tiny", "gpt-x", "qwen-coder-vllm"], direct=True)
    targets, notes = plan_targets(reg, opts, "http://gw", set())
    assert [(t.model, t.route, t.backend) for t in targets] == [
        ("tiny", "gateway", "tiny"), ("tiny", "direct", "smollm2"),
        ("gpt-x", "gateway", "gpt-x"),
        ("qwen-coder-vllm", "gateway", "qwen-coder-vllm"),
        ("qwen-coder-vllm", "direct", "qwen-coder-vllm")]
    assert targets[-1].url == "http://127.0.0.1:8001/v1"  # vLLM stub's host port
    assert notes == ["gpt-x: no direct route (its provider cloud is not a local container; "
                     "bench sends traffic only to 127.0.0.1)"]
    with pytest.raises(UnknownModels, match=r"unknown model 'smolm2' \(did you mean "
                                              r"'smollm2'\?\); the registry serves: smollm2"):
        plan_targets(reg, BenchOptions(models=["smolm2"]), "http://gw", set())


# -- the command ------------------------------------------------------------------------------

KEY = "sk-bench-test-secret"


@pytest.fixture
def fake_http(offline, monkeypatch):
    """The offline registry with a key in .env, a live gateway, llama_cpp running, and a
    sender whose answers the test sets (`state["latency"]`, `state["fail"]`)."""
    (offline.parent / ".env").write_text(f"LITELLM_MASTER_KEY={KEY}\n")
    monkeypatch.delenv("LITELLM_MASTER_KEY", raising=False)
    state = {"latency": 0.05, "fail": False, "live": True, "keys": []}

    class Sender:
        def __init__(self, opts, key):
            state["keys"].append(key)
            self.opts = opts

        def __call__(self, target, prompt):
            if state["fail"]:
                return Sample(False, 0.01, error="ConnectionError: refused")
            latency = state["latency"] + (0.01 if target.route == "gateway" else 0.0)
            time.sleep(latency)  # the cell's wall time (requests/s) comes from real time
            return Sample(True, latency,
                          ttft=0.01 if self.opts.stream else None, tokens=16,
                          tokens_source="usage", served_by=f"{target.model}@llama_cpp"
                          if target.route == "gateway" else None)

    monkeypatch.setattr("stackctl.cli.bench.HttpSender", Sender)
    monkeypatch.setattr("stackctl.gateway.client.Gateway.live", lambda self, timeout=1: state["live"])
    monkeypatch.setattr("stackctl.cli.bench.checks", lambda reg: {
        "llama_cpp": lambda: True, "ollama": lambda: False, "vllm-qwen": lambda: False})
    state["config"] = offline
    return state


def bench(runner, state, *args: str):
    return runner.invoke(cli, ["bench", "-C", str(state["config"]), *args],
                         catch_exceptions=False)


def test_bench_json_gateway_and_direct(runner, fake_http):
    r = bench(runner, fake_http, "--direct", "-c", "1,2", "-n", "4", "--stream", "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["ok"] is True and doc["problems"] == []
    assert doc["notes"][0].startswith("models whose provider is running: smollm2 ")
    assert [(c["model"], c["route"], c["concurrency"], c["ok"]) for c in doc["cells"]] == [
        ("smollm2", "gateway", 1, 4), ("smollm2", "gateway", 2, 4),
        ("smollm2", "direct", 1, 4), ("smollm2", "direct", 2, 4)]
    c = doc["cells"][0]
    assert c["tokens_per_s"] > 0 and c["latency_ms"]["p50"] <= c["latency_ms"]["p95"]
    assert c["ttft_ms"]["p50"] == 10
    assert [o["concurrency"] for o in doc["overhead"]] == [1, 2]
    assert doc["overhead"][0]["diff_ms"] == pytest.approx(10)
    assert {s["route"] for s in doc["sweeps"]} == {"gateway", "direct"}
    assert fake_http["keys"] == [KEY] and KEY not in r.output  # used, never printed


def test_bench_text_table_marks_the_knee(runner, fake_http):
    r = bench(runner, fake_http, "-m", "smollm2", "--direct", "-c", "1,2", "-n", "2")
    assert r.exit_code == 0, r.output
    assert "◀ knee" in r.output and "gateway overhead smollm2 c=1: p50 +10.0 ms" in r.output
    assert "smollm2 direct: llama_cpp at http://127.0.0.1:8080/v1 as 'smollm2'" in r.output
    assert KEY not in r.output and "answered by" not in r.output
    r = bench(runner, fake_http, "-m", "smollm2", "-c", "1", "-n", "2", "-v")
    assert r.exit_code == 0, r.output
    assert "smollm2 gateway c=1: answered by smollm2@llama_cpp ×2" in r.output


def test_bench_compare_flags_a_regression(runner, fake_http, tmp_path):
    r = bench(runner, fake_http, "-m", "smollm2", "-c", "1", "-n", "3", "--json")
    assert r.exit_code == 0, r.output
    before = tmp_path / "before.json"
    before.write_text(r.stdout)
    r = bench(runner, fake_http, "-m", "smollm2", "-c", "1", "-n", "3", "--compare",
              str(before), "--threshold", "50")  # same answers; real time has some jitter
    assert r.exit_code == 0, r.output
    assert "(threshold 50%): 0 regression(s) in 5 metrics" in r.output
    fake_http["latency"] = 0.2  # 4 × slower
    r = bench(runner, fake_http, "-m", "smollm2", "-c", "1", "-n", "3", "--compare",
              str(before), "--json")
    assert r.exit_code == 1, r.output
    doc = json.loads(r.stdout)
    assert doc["ok"] is False and doc["comparison"]["regressions"] >= 2
    assert {d["metric"] for d in doc["comparison"]["deltas"] if d["regression"]} >= {
        "latency_p50_ms", "requests_per_s"}
    r = bench(runner, fake_http, "-m", "smollm2", "-c", "1", "-n", "3", "--compare",
              str(before), "--threshold", "1000")
    assert r.exit_code == 0, r.output


def test_bench_failures_exit_1_with_a_clear_message(runner, fake_http, tmp_path):
    r = bench(runner, fake_http, "-m", "smolm2")
    assert r.exit_code == 1, r.output
    assert "unknown model 'smolm2' (did you mean 'smollm2'?)" in r.output
    bad = tmp_path / "bad.json"
    bad.write_text('{"hello": 1}')
    r = bench(runner, fake_http, "--compare", str(bad))
    assert r.exit_code == 1 and "--compare" in r.output and "no \"cells\"" in r.output
    fake_http["fail"] = True
    r = bench(runner, fake_http, "-m", "smollm2", "-c", "1", "-n", "2", "--json")
    assert r.exit_code == 1, r.output
    doc = json.loads(r.stdout)
    assert doc["problems"] == ["smollm2 via gateway: unreachable (ConnectionError: refused); "
                               "not measured"]
    fake_http["live"] = False
    r = bench(runner, fake_http, "-n", "2")
    assert r.exit_code == 1 and "does not answer /health/liveliness" in r.output


def test_bench_usage_errors_and_missing_key(runner, fake_http):
    for args in (("-c", "1,x"), ("-c", "0,2"), ("-n", "0")):
        r = bench(runner, fake_http, *args)
        assert r.exit_code == 2, (args, r.output)
    assert "comma-separated list of whole numbers" in bench(runner, fake_http, "-c", "a").output
    # a --compare file that is not there is "an unreadable --compare file" of the epilog:
    # 1, said before anything is measured, with how to make one (#21)
    r = bench(runner, fake_http, "--compare", "missing.json")
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert "--compare missing.json: no such file (write one with `stackctl bench --json > " \
           "before.json`" in r.output
    assert bench(runner, fake_http, "--compare", "/").exit_code == 1
    (fake_http["config"].parent / ".env").write_text("")
    r = bench(runner, fake_http, "--json")
    assert r.exit_code == 1, r.output
    assert "LITELLM_MASTER_KEY is not set" in r.output
    assert json.loads(r.stdout)["ok"] is False


def test_bench_help_lists_exit_codes(runner):
    r = runner.invoke(cli, ["bench", "--help"], catch_exceptions=False)
    assert r.exit_code == 0
    assert "Exit codes:" in r.output and "regression" in r.output
