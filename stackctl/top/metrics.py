"""The gateway's Prometheus metrics as per-model figures: parse the text exposition, fold
it into one `Reading` per model, and turn two readings into rates and quantiles.

Pure: no I/O, no clock. The names are LiteLLM's (tests/monitoring_queries.py lists what a
real 1.106 proxy exports) and the routing callback's; quantiles are interpolated within a
bucket the way Prometheus' histogram_quantile does, so `top` and the dashboards agree.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

REQUESTS = "litellm_proxy_total_requests_metric_total"
FAILED = "litellm_proxy_failed_requests_metric_total"
LATENCY = "litellm_request_total_latency_metric"
TTFT = "litellm_llm_api_time_to_first_token_metric"
OUTPUT_TOKENS = "litellm_output_tokens_metric_total"
IN_FLIGHT = "litellm_in_flight_requests"
REROUTED = "stackctl_gateway_rerouted_requests_total"  # incontainer/routing_callback.py
HELD = "stackctl_gateway_held_requests"  # the same: requests held now (`stackctl ps`)
MODEL_LABELS = ("requested_model", "model_group", "model")  # the first one present names it

_SAMPLE = re.compile(r"^([A-Za-z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'([A-Za-z_]\w*)="((?:[^"\\]|\\.)*)"')
_WANTED = (REQUESTS, FAILED, LATENCY, TTFT, OUTPUT_TOKENS, IN_FLIGHT, REROUTED, HELD)


def parse(text: str) -> list[tuple[str, dict[str, str], float]]:
    """(name, labels, value) of each sample top uses; every other line is skipped unparsed
    (LiteLLM exports dozens of families, each with many labels: most of the text)."""
    out = []
    for line in text.splitlines():
        if not line.startswith(_WANTED):
            continue
        m = _SAMPLE.match(line)
        if m is None:
            continue
        try:
            value = float(m.group(3))
        except ValueError:
            continue
        labels = {k: v.replace('\\"', '"').replace("\\\\", "\\")
                  for k, v in _LABEL.findall(m.group(2) or "")}
        out.append((m.group(1), labels, value))
    return out


@dataclass
class Histogram:
    buckets: dict[float, float] = field(default_factory=dict)  # upper bound → cumulative count
    count: float = 0.0

    def add(self, le: float, value: float) -> None:
        self.buckets[le] = self.buckets.get(le, 0.0) + value

    def minus(self, older: Histogram) -> Histogram:
        if self.count < older.count:  # the gateway restarted: its counters began again
            return self
        return Histogram({le: v - older.buckets.get(le, 0.0) for le, v in self.buckets.items()},
                         self.count - older.count)

    def quantile(self, q: float) -> float | None:
        """Prometheus' histogram_quantile: linear within the bucket holding the rank; the
        highest finite bound when the rank falls in +Inf; None without observations."""
        bounds = sorted(self.buckets)
        if not bounds or self.count <= 0:
            return None
        total = self.buckets.get(math.inf, self.count)
        if total <= 0:
            return None
        rank, lower, below = q * total, 0.0, 0.0
        for le in bounds:
            cum = self.buckets[le]
            if cum >= rank:
                if math.isinf(le):
                    return lower
                if cum == below:
                    return le
                return lower + (le - lower) * (rank - below) / (cum - below)
            lower, below = le, cum
        return lower


@dataclass
class ModelCounters:
    requests: float = 0.0
    failed: float = 0.0
    output_tokens: float = 0.0
    rerouted: float = 0.0
    latency: Histogram = field(default_factory=Histogram)
    ttft: Histogram = field(default_factory=Histogram)


@dataclass
class Reading:
    """One scrape of /metrics, folded per model (summed over every other label: keys,
    teams, workers' pids, status codes)."""

    at: float
    models: dict[str, ModelCounters] = field(default_factory=dict)
    in_flight: float | None = None
    held: dict[str, float] = field(default_factory=dict)  # model → requests held now


def model_of(labels: dict[str, str]) -> str | None:
    return next((labels[k] for k in MODEL_LABELS if labels.get(k)), None)


def read(text: str, at: float) -> Reading:
    r = Reading(at)
    for name, labels, value in parse(text):
        if name == IN_FLIGHT:
            r.in_flight = (r.in_flight or 0.0) + value  # one series per worker (pid)
            continue
        model = model_of(labels)
        if model is None:
            continue
        if name == HELD:  # a gauge, not a model's request figures
            r.held[model] = r.held.get(model, 0.0) + value
            continue
        c = r.models.setdefault(model, ModelCounters())
        if name == REQUESTS:
            c.requests += value
        elif name == FAILED:
            c.failed += value
        elif name == OUTPUT_TOKENS:
            c.output_tokens += value
        elif name == REROUTED:
            c.rerouted += value
        else:
            hist = c.latency if name.startswith(LATENCY) else c.ttft
            if name.endswith("_bucket") and "le" in labels:
                hist.add(float(labels["le"]), value)
            elif name.endswith("_count"):
                hist.count += value
    return r


@dataclass(frozen=True)
class ModelFigures:
    model: str
    requests: float
    rps: float | None
    errors: float
    p50_ms: float | None
    p95_ms: float | None
    ttft_p50_ms: float | None
    tokens_per_s: float | None
    rerouted: float


def _delta(new: float, old: float) -> float:
    return new if new < old else new - old  # a reset counts from zero


def figures(now: Reading, before: Reading | None) -> list[ModelFigures]:
    """Per-model figures over (before, now]; without `before`, since the gateway started
    (no rates). Models sorted by requests, busiest first."""
    dt = now.at - before.at if before is not None else None
    out = []
    for model, c in now.models.items():
        old = before.models.get(model, ModelCounters()) if before is not None else ModelCounters()
        lat, ttft = c.latency.minus(old.latency), c.ttft.minus(old.ttft)
        requests = _delta(c.requests, old.requests)
        tokens = _delta(c.output_tokens, old.output_tokens)
        out.append(ModelFigures(
            model=model, requests=requests,
            rps=requests / dt if dt else None,
            errors=_delta(c.failed, old.failed),
            p50_ms=_ms(lat.quantile(0.5)), p95_ms=_ms(lat.quantile(0.95)),
            ttft_p50_ms=_ms(ttft.quantile(0.5)),
            tokens_per_s=tokens / dt if dt else None,
            rerouted=_delta(c.rerouted, old.rerouted)))
    return sorted(out, key=lambda f: (-f.requests, f.model))


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)
