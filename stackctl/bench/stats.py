"""Statistics of a sweep (pure): percentiles, one cell's summary of its samples, the knee of
a sweep and the gateway's overhead against the direct route."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from stackctl.bench.report import Cell, Overhead, Stats, Sweep, Target

SCALE_GAIN = 1.10  # a scaling step raises requests/s by at least this factor


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
