"""`bench`: time to first token, latency, tokens/s and requests/s of the stack's models, through
the gateway and straight to their providers, over a concurrency sweep.

Deciding is pure and tested as data: which targets to measure (`plan_targets`), percentiles
and a cell's summary (`summarize`), the knee of a sweep (`knee`), the gateway's overhead
(`overheads`) and the comparison with an earlier run (`compare`). Doing is `run_bench`: it
sends the requests through an injected `send(target, prompt)` (the real one is `HttpSender`,
with requests), one thread per concurrent client.

Definitions (the README and `--help` say the same):
- a *cell* is one model × route × concurrency: `requests` requests sent by `concurrency`
  threads, each starting its next request when its last one is answered; a warm-up request
  per model × route comes first and is not counted; a model's routes take turns at each
  concurrency (gateway c=1, direct c=1, gateway c=2, …) so both see the same machine load;
- latency: from sending the request to the last byte of the answer; TTFT (with `stream`):
  to the first SSE `data:` chunk whose delta has content;
- tokens: the answer's `usage.completion_tokens`; when a stream carries no usage, the
  content chunks counted (about one token each);
- tokens/s per request: median over the answered requests of tokens / latency; aggregate
  tokens/s: all tokens of the cell / its wall time; requests/s: answered requests / wall time;
- the knee of a sweep: walking up the concurrencies, a step *scales* when requests/s rise by
  at least 10 % and p50 latency grows by less than the concurrency's own factor (doubling
  the clients less than doubles the latency). The knee is the highest concurrency reached by
  an unbroken run of scaling steps from the lowest: beyond it more clients only queue. When
  every step scales, the knee is the last concurrency and `beyond_sweep` says the stack was
  not saturated.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from stackctl.registry.catalog import deployments
from stackctl.registry.load import Registry

Route = Literal["gateway", "direct"]
SCALE_GAIN = 1.10  # a scaling step raises requests/s by at least this factor
VERSION = 1


# -- the document -----------------------------------------------------------------------------

class BenchOptions(BaseModel):
    models: list[str] = Field(default_factory=list, description="models as asked for; empty: "
                              "every model whose provider is running")
    direct: bool = Field(False, description="also send each model's requests straight to its "
                         "provider (its host port on 127.0.0.1) to show the gateway's overhead")
    concurrency: list[int] = Field(default_factory=lambda: [1, 2, 4, 8], min_length=1,
                                   description="concurrent clients of each step of the sweep")
    requests: int = Field(20, ge=1, description="requests per model × route × concurrency")
    max_tokens: int = Field(64, ge=1, description="max_tokens of every request")
    stream: bool = Field(False, description="stream the answers (SSE): measures TTFT")
    timeout: float = Field(60, gt=0, description="seconds one request may take")

    @field_validator("concurrency")
    @classmethod
    def _ascending(cls, value: list[int]) -> list[int]:
        if any(c < 1 for c in value):
            raise ValueError("concurrency must be 1 or more")
        return sorted(set(value))


class Target(BaseModel):
    """Where one model's requests go (the key is not part of it: never serialised)."""

    model: str = Field(description="the model as asked for (public name or alias)")
    route: Route
    url: str = Field(description="OpenAI-compatible base URL, ending in /v1")
    backend: str = Field(description="the `model` sent: the public name through the gateway, "
                         "the provider's own name direct")
    provider: str | None = Field(None, description="direct: the provider answering")


class Stats(BaseModel):
    p50: float
    p95: float
    p99: float
    mean: float
    min: float
    max: float


class Cell(BaseModel):
    model: str
    route: Route
    provider: str | None = Field(None, description="direct: the provider measured")
    concurrency: int
    requests: int = Field(description="requests sent")
    ok: int = Field(description="requests answered with 200 and a complete answer")
    errors: int
    error_samples: list[str] = Field(default_factory=list, description="the first few errors")
    ttft_ms: Stats | None = Field(None, description="time to first token (streaming only)")
    latency_ms: Stats | None = None
    tokens: int = Field(0, description="completion tokens of the answered requests")
    tokens_source: Literal["usage", "chunks", "none"] = "none"
    tokens_per_s_request: float | None = Field(None, description="median per request")
    tokens_per_s: float = Field(0, description="aggregate: tokens / wall time")
    requests_per_s: float = Field(0, description="answered requests / wall time")
    wall_s: float
    served_by: dict[str, int] = Field(default_factory=dict, description="gateway: deployment "
                                      "ids that answered (x-litellm-model-id), with counts")
    knee: bool = Field(False, description="this concurrency is its sweep's knee")

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


class Sweep(BaseModel):
    model: str
    route: Route
    knee: int | None = Field(description="see the module doc; null: fewer than two steps "
                             "with answers, or none at the lowest concurrency")
    beyond_sweep: bool = Field(False, description="every step scaled: not saturated yet")


class Overhead(BaseModel):
    model: str
    concurrency: int
    gateway_p50_ms: float
    direct_p50_ms: float
    diff_ms: float = Field(description="gateway p50 minus direct p50")
    ratio: float | None = Field(description="gateway p50 / direct p50")


class Delta(BaseModel):
    model: str
    route: Route
    concurrency: int
    metric: str
    old: float
    new: float
    change_pct: float | None = Field(description="(new - old) / old; null when old is 0")
    regression: bool


class Comparison(BaseModel):
    file: str
    threshold_pct: float
    deltas: list[Delta]
    regressions: int
    not_compared: list[str] = Field(default_factory=list,
                                    description="cells only one of the two runs has")
    notes: list[str] = Field(default_factory=list, description="options that differ")


class BenchReport(BaseModel):
    version: int = VERSION
    ok: bool
    started_at: str
    gateway: str = Field(description="the gateway's URL (never its key)")
    options: BenchOptions
    targets: list[Target]
    cells: list[Cell]
    sweeps: list[Sweep]
    overhead: list[Overhead]
    notes: list[str] = Field(default_factory=list, description="what was chosen or skipped")
    problems: list[str] = Field(default_factory=list, description="unknown or unreachable "
                                "models, targets whose every request failed")
    comparison: Comparison | None = None


# -- which targets ------------------------------------------------------------------------------

class UnknownModels(ValueError):
    """Models the registry does not serve."""


def aliases(reg: Registry) -> dict[str, str]:
    """alias → public model (the exact matches' aliases the gateway accepts)."""
    deps = deployments(reg)
    return {a: name for name, m in reg.mappings.exact_matches.items() if name in deps
            for a in m.aliases}


def plan_targets(reg: Registry, opts: BenchOptions, gateway_url: str, running: set[str]
                 ) -> tuple[list[Target], list[str]]:
    """Targets in model order (gateway, then direct), and notes saying what was chosen or
    skipped. `running`: providers whose host check passes. Raises UnknownModels."""
    deps = deployments(reg)
    alias_of = aliases(reg)
    providers = reg.providers.providers
    notes: list[str] = []
    if opts.models:
        unknown = [m for m in opts.models if m not in deps and m not in alias_of]
        if unknown:
            from stackctl.hints import did_you_mean

            parts = []
            for m in unknown:
                hint = did_you_mean(m, [*deps, *alias_of])
                parts.append(f"{m!r}" + (f" ({hint})" if hint else ""))
            raise UnknownModels(f"unknown model {', '.join(parts)}; the registry serves: "
                                + ", ".join(deps))
        models = list(dict.fromkeys(opts.models))
    else:
        models = [m for m, members in deps.items() if any(d.provider in running for d in members)]
        idle = [m for m in deps if m not in models]
        notes.append("models whose provider is running: " + (", ".join(models) or "none")
                     + (f" (not benchmarked: {', '.join(idle)}; name them with --model)"
                        if idle else ""))
    targets: list[Target] = []
    for model in models:
        targets.append(Target(model=model, route="gateway", url=f"{gateway_url}/v1",
                              backend=model))
        if not opts.direct:
            continue
        members = deps[alias_of.get(model, model)]
        local = [d for d in members if providers[d.provider].container is not None
                 and providers[d.provider].host_port]
        if not local:
            notes.append(f"{model}: no direct route (its provider "
                         f"{', '.join(d.provider for d in members)} is not a local container; "
                         "bench sends traffic only to 127.0.0.1)")
            continue
        dep = next((d for d in local if d.provider in running), local[0])
        if len(members) > 1:
            notes.append(f"{model}: direct route measures {dep.provider} only "
                         f"(of {', '.join(d.provider for d in members)})")
        port = providers[dep.provider].host_port
        targets.append(Target(model=model, route="direct", url=f"http://127.0.0.1:{port}/v1",
                              backend=dep.backend, provider=dep.provider))
    return targets, notes


# -- statistics -------------------------------------------------------------------------------

def percentile(values: Iterable[float], q: float) -> float:
    """The q-th percentile (0–100), linear between closest ranks (numpy's default)."""
    xs = sorted(values)
    if not xs:
        raise ValueError("percentile of no values")
    pos = (len(xs) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def stats(values: list[float]) -> Stats | None:
    if not values:
        return None
    return Stats(p50=_r(percentile(values, 50)), p95=_r(percentile(values, 95)),
                 p99=_r(percentile(values, 99)), mean=_r(sum(values) / len(values)),
                 min=_r(min(values)), max=_r(max(values)))


def _r(x: float) -> float:
    return round(x, 2)


@dataclass(frozen=True)
class Sample:
    """One request's outcome; times in seconds."""

    ok: bool
    latency: float = 0.0
    ttft: float | None = None
    tokens: int | None = None
    tokens_source: Literal["usage", "chunks", "none"] = "none"
    error: str | None = None
    served_by: str | None = None


def summarize(target: Target, concurrency: int, samples: list[Sample], wall: float) -> Cell:
    good = [s for s in samples if s.ok]
    bad = [s for s in samples if not s.ok]
    wall = max(wall, 1e-9)
    tokens = sum(s.tokens or 0 for s in good)
    sources = {s.tokens_source for s in good}
    source = ("chunks" if "chunks" in sources else "usage" if "usage" in sources else "none")
    per_request = [s.tokens / s.latency for s in good if s.tokens and s.latency > 0]
    served: dict[str, int] = {}
    for s in good:
        if s.served_by:
            served[s.served_by] = served.get(s.served_by, 0) + 1
    return Cell(
        model=target.model, route=target.route, provider=target.provider,
        concurrency=concurrency, requests=len(samples), ok=len(good), errors=len(bad),
        error_samples=list(dict.fromkeys(s.error or "?" for s in bad))[:3],
        ttft_ms=stats([s.ttft * 1000 for s in good if s.ttft is not None]),
        latency_ms=stats([s.latency * 1000 for s in good]),
        tokens=tokens, tokens_source=source,
        tokens_per_s_request=_r(percentile(per_request, 50)) if per_request else None,
        tokens_per_s=_r(tokens / wall), requests_per_s=_r(len(good) / wall),
        wall_s=round(wall, 3), served_by=served)


def scales(prev: Cell, cur: Cell) -> bool:
    """A step of the sweep scales: requests/s rise ≥ 10 % and p50 latency grows by less than
    the concurrency's factor."""
    if not (prev.latency_ms and cur.latency_ms and prev.requests_per_s > 0):
        return False
    more_throughput = cur.requests_per_s >= prev.requests_per_s * SCALE_GAIN - 1e-9
    growth = cur.latency_ms.p50 / prev.latency_ms.p50 if prev.latency_ms.p50 > 0 else float("inf")
    return more_throughput and growth < cur.concurrency / prev.concurrency


def knee(cells: list[Cell]) -> tuple[int | None, bool]:
    """(the knee's concurrency, every step scaled) of one model × route's sweep."""
    sweep = sorted(cells, key=lambda c: c.concurrency)
    if sum(1 for c in sweep if c.ok) < 2 or not sweep[0].ok:
        return None, False
    best = sweep[0]
    for cur in sweep[1:]:
        if not scales(best, cur):
            return best.concurrency, False
        best = cur
    return best.concurrency, True


def sweeps(cells: list[Cell]) -> list[Sweep]:
    """The knee of every model × route, marked on its cell (in place)."""
    out = []
    for (model, route), group in itertools.groupby(cells, key=lambda c: (c.model, c.route)):
        group = list(group)
        at, beyond = knee(group)
        for c in group:
            c.knee = c.concurrency == at
        out.append(Sweep(model=model, route=route, knee=at, beyond_sweep=beyond))
    return out


def overheads(cells: list[Cell]) -> list[Overhead]:
    """Gateway p50 against direct p50 for each model × concurrency measured both ways."""
    direct = {(c.model, c.concurrency): c for c in cells if c.route == "direct" and c.latency_ms}
    out = []
    for c in cells:
        d = direct.get((c.model, c.concurrency))
        if c.route != "gateway" or d is None or c.latency_ms is None or d.latency_ms is None:
            continue
        g, p = c.latency_ms.p50, d.latency_ms.p50
        out.append(Overhead(model=c.model, concurrency=c.concurrency, gateway_p50_ms=g,
                            direct_p50_ms=p, diff_ms=_r(g - p),
                            ratio=round(g / p, 3) if p > 0 else None))
    return out


# -- comparison -------------------------------------------------------------------------------

# metric → (value of a cell, True when higher is worse)
METRICS: dict[str, tuple[Callable[[Cell], float | None], bool]] = {
    "ttft_p50_ms": (lambda c: c.ttft_ms.p50 if c.ttft_ms else None, True),
    "latency_p50_ms": (lambda c: c.latency_ms.p50 if c.latency_ms else None, True),
    "latency_p95_ms": (lambda c: c.latency_ms.p95 if c.latency_ms else None, True),
    "tokens_per_s": (lambda c: c.tokens_per_s if c.ok else None, False),
    "requests_per_s": (lambda c: c.requests_per_s if c.ok else None, False),
    "error_rate": (lambda c: c.error_rate, True),
}


def load_report(text: str) -> BenchReport:
    """An earlier `bench --json` document; ValueError saying what is wrong."""
    from pydantic import ValidationError

    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc})") from None
    if not isinstance(data, dict) or "cells" not in data:
        raise ValueError("not a `stackctl bench --json` document (no \"cells\")")
    if data.get("version") != VERSION:
        raise ValueError(f"document version {data.get('version')!r}; this stackctl reads "
                         f"version {VERSION}")
    try:
        return BenchReport.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ValueError(f"{where}: {first['msg']}") from None


def compare(old: BenchReport, new: BenchReport, threshold_pct: float = 10.0,
            floor_ms: float = 1.0, file: str = "") -> Comparison:
    """Each metric of each cell both runs have. A regression: the metric got worse by more
    than `threshold_pct` percent (for times also by more than `floor_ms`, so a 1.2 → 1.5 ms
    jitter is not one); for the error rate, any rise."""
    key = lambda c: (c.model, c.route, c.concurrency)  # noqa: E731
    before = {key(c): c for c in old.cells}
    after = {key(c): c for c in new.cells}
    deltas = []
    for k, cur in after.items():
        prev = before.get(k)
        if prev is None:
            continue
        for metric, (value, higher_worse) in METRICS.items():
            a, b = value(prev), value(cur)
            if a is None or b is None:
                continue
            change = (b - a) / a * 100 if a else None
            worse = (b - a) if higher_worse else (a - b)
            if metric == "error_rate":
                regression = worse > 0
            else:
                regression = worse > 0 and (change is None or abs(change) > threshold_pct)
                if metric.endswith("_ms"):
                    regression = regression and worse > floor_ms
            deltas.append(Delta(model=k[0], route=k[1], concurrency=k[2], metric=metric,
                                old=round(a, 4), new=round(b, 4),
                                change_pct=None if change is None else round(change, 1),
                                regression=regression))
    label = lambda k: f"{k[0]} {k[1]} c={k[2]}"  # noqa: E731
    missing = [label(k) + " (only in the old run)" for k in before if k not in after]
    missing += [label(k) + " (new)" for k in after if k not in before]
    notes = [f"{f}: {getattr(old.options, f)} then, {getattr(new.options, f)} now"
             for f in ("max_tokens", "stream", "requests")
             if getattr(old.options, f) != getattr(new.options, f)]
    return Comparison(file=file, threshold_pct=threshold_pct, deltas=deltas,
                      regressions=sum(d.regression for d in deltas), not_compared=missing,
                      notes=notes)


# -- doing ------------------------------------------------------------------------------------

TOPICS = ("the sea", "a lighthouse", "bread", "a cat", "winter", "a train", "the moon", "rain",
          "a library", "mountains", "a garden", "coffee", "a bridge", "snow", "a violin")


def prompt(run: str, i: int) -> str:
    """Request i's prompt: varied (and tagged with the run), so no cache answers it."""
    return f"[{run}-{i}] Write a few sentences about {TOPICS[i % len(TOPICS)]}."


class HttpSender:
    """One chat completion per call, with a requests.Session per thread (keep-alive)."""

    def __init__(self, opts: BenchOptions, key: str | None):
        self.opts, self._key = opts, key
        self._local = threading.local()

    def _session(self) -> Any:
        import requests

        s = getattr(self._local, "session", None)
        if s is None:
            s = self._local.session = requests.Session()
        return s

    def __call__(self, target: Target, text: str) -> Sample:
        import requests

        body: dict[str, Any] = {"model": target.backend, "max_tokens": self.opts.max_tokens,
                                "messages": [{"role": "user", "content": text}]}
        headers = {}
        if target.route == "gateway":
            body["cache"] = {"no-cache": True}  # LiteLLM's per-request cache bypass
            if self._key:
                headers["Authorization"] = f"Bearer {self._key}"
        if self.opts.stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        start = time.perf_counter()
        try:
            r = self._session().post(f"{target.url}/chat/completions", json=body,
                                     headers=headers, timeout=self.opts.timeout,
                                     stream=self.opts.stream)
            served = r.headers.get("x-litellm-model-id")
            if not r.ok:
                return Sample(False, time.perf_counter() - start,
                              error=f"HTTP {r.status_code}: {_short(r.text)}")
            if self.opts.stream:
                return read_stream(r.iter_lines(chunk_size=None), start, time.perf_counter,
                                   served)
            data = r.json()
            latency = time.perf_counter() - start
        except requests.RequestException as exc:
            return Sample(False, time.perf_counter() - start, error=_short(type(exc).__name__
                                                                            + f": {exc}"))
        except ValueError as exc:
            return Sample(False, time.perf_counter() - start, error=f"bad JSON: {exc}")
        tokens = ((data or {}).get("usage") or {}).get("completion_tokens")
        if not (data or {}).get("choices"):
            return Sample(False, latency, error=f"no choices in the answer: {_short(str(data))}")
        return Sample(True, latency, tokens=tokens,
                      tokens_source="usage" if tokens is not None else "none", served_by=served)


def read_stream(lines: Iterable[bytes], start: float, clock: Callable[[], float],
                served: str | None = None) -> Sample:
    """An OpenAI SSE stream: TTFT at the first data chunk with content; tokens from a usage
    chunk, else the content chunks counted; complete only with `data: [DONE]` or a
    finish_reason."""
    ttft = None
    chunks = 0
    usage = None
    finished = False
    for raw in lines:
        line = raw.decode("utf-8", "replace").strip() if isinstance(raw, bytes) else raw.strip()
        if not line.startswith("data:"):
            continue
        payload = line[5:].strip()
        if payload == "[DONE]":
            finished = True
            break
        try:
            chunk = json.loads(payload)
        except ValueError:
            return Sample(False, clock() - start, ttft, error=f"bad SSE chunk: {_short(payload)}")
        if "error" in chunk:
            return Sample(False, clock() - start, ttft,
                          error=f"error in stream: {_short(json.dumps(chunk['error']))}")
        if chunk.get("usage"):
            usage = chunk["usage"].get("completion_tokens", usage)
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            if delta.get("content") or delta.get("reasoning_content"):
                chunks += 1
                if ttft is None:
                    ttft = clock() - start
            if choice.get("finish_reason"):
                finished = True
    latency = clock() - start
    if not finished:
        return Sample(False, latency, ttft, error="stream ended before [DONE]")
    if usage is not None:
        return Sample(True, latency, ttft, usage, "usage", served_by=served)
    return Sample(True, latency, ttft, chunks, "chunks" if chunks else "none", served_by=served)


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


Send = Callable[[Target, str], Sample]
Progress = Callable[[str, int], None]  # (event, amount): "cell" with its label, "done" per request


def run_cell(target: Target, concurrency: int, n: int, send: Send, run: str, first: int,
             advance: Callable[[], None] = lambda: None, stop: threading.Event | None = None,
             clock: Callable[[], float] = time.perf_counter) -> Cell:
    """`n` requests by `concurrency` threads (at most n); prompts first … first+n-1."""
    stop = stop or threading.Event()
    counter = itertools.count()
    lock = threading.Lock()
    samples: list[Sample] = []

    def worker() -> None:
        while not stop.is_set():
            with lock:
                i = next(counter)
            if i >= n:
                return
            s = send(target, prompt(run, first + i))
            with lock:
                samples.append(s)
            advance()

    threads = [threading.Thread(target=worker, daemon=True, name=f"bench-{k}")
               for k in range(min(concurrency, n))]
    t0 = clock()
    for t in threads:
        t.start()
    try:
        for t in threads:
            while t.is_alive():
                t.join(0.2)
    except KeyboardInterrupt:
        stop.set()
        raise
    return summarize(target, concurrency, samples, clock() - t0)


def run_bench(targets: list[Target], opts: BenchOptions, send: Send,
              on_cell: Callable[[str], None] = lambda label: None,
              advance: Callable[[], None] = lambda: None,
              stop: threading.Event | None = None) -> tuple[list[Cell], list[str]]:
    """Model after model: the warm-up of each of its routes, then at each concurrency one cell
    per route in turn, so gateway and direct see the same machine load (a drifting load
    would otherwise show up as gateway overhead). Returns the cells (per model, route,
    concurrency) and the problems: a target whose warm-up failed is not measured, one whose
    every request failed is named."""
    run = uuid.uuid4().hex[:6]
    cells: list[Cell] = []
    problems: list[str] = []
    counter = 0
    by_model: dict[str, list[Target]] = {}
    for t in targets:
        by_model.setdefault(t.model, []).append(t)

    def where(t: Target) -> str:
        return f"{t.model} via {t.route}" + (f" ({t.provider})" if t.provider else "")

    for group in by_model.values():
        live = []
        for target in group:
            on_cell(f"{where(target)}: warm-up")
            warm = send(target, prompt(run, counter))
            counter += 1
            advance()
            if warm.ok:
                live.append(target)
                continue
            problems.append(f"{where(target)}: unreachable ({warm.error}); not measured")
            for _ in range(len(opts.concurrency) * opts.requests):
                advance()
        measured: dict[int, list[Cell]] = {id(t): [] for t in live}
        for c in opts.concurrency:
            for target in live:
                on_cell(f"{where(target)} c={c}")
                measured[id(target)].append(
                    run_cell(target, c, opts.requests, send, run, counter, advance, stop))
                counter += opts.requests
        for target in live:
            mine = measured[id(target)]
            if not any(c.ok for c in mine):
                first = next((e for c in mine for e in c.error_samples), "?")
                problems.append(f"{where(target)}: every request failed (e.g. {first})")
            cells += mine
    return cells, problems


__all__ = ["BenchOptions", "BenchReport", "Cell", "Sample", "Target", "compare", "knee",
           "load_report", "overheads", "percentile", "plan_targets", "run_bench", "summarize",
           "sweeps"]
