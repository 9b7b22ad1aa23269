"""An earlier `bench --json` run against this one (pure): which metrics of which cells got
worse by more than the threshold."""

from __future__ import annotations

import json
from collections.abc import Callable

from pydantic import ValidationError

from stackctl.bench.report import VERSION, BenchReport, Cell, Comparison, Delta

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
