"""The gateway's own cache figures: LiteLLM's /metrics/ counters → hits, misses and
requests, in total and per public model (parsing is pure; the fetch is `gateway_metrics`)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Literal

import requests
from pydantic import BaseModel, Field

from stackctl.cache.target import CacheError
from stackctl.registry.load import Registry
from stackctl.store.envfile import EnvFileError, compose_value

HITS, MISSES, REQUESTS = ("litellm_cache_hits_metric", "litellm_cache_misses_metric",
                          "litellm_requests_metric")


class Sample(BaseModel):
    name: str
    labels: dict[str, str]
    value: float


_LINE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+-?[0-9]+)?")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text: str) -> list[Sample]:
    """Prometheus text exposition → samples (comments and unparsable lines skipped)."""
    out = []
    for line in text.splitlines():
        m = _LINE.fullmatch(line.strip())
        if not m:  # blank, # HELP / # TYPE, or not a sample
            continue
        try:
            value = float(m[3])
        except ValueError:
            continue
        labels = {k: re.sub(r"\\(.)", lambda e: "\n" if e[1] == "n" else e[1], v)
                  for k, v in _LABEL.findall(m[2] or "")}
        out.append(Sample(name=m[1], labels=labels, value=value))
    return out


class ModelHits(BaseModel):
    hits: int = 0
    requests: int = Field(0, description="successful responses, from the cache or not")


class GatewayHits(BaseModel):
    available: bool = Field(description="the gateway's /metrics/ answered")
    reason: str | None = Field(None, description="why not, when it did not")
    hits: int = 0
    misses: int = 0
    requests: int = 0
    ratio: float | None = Field(None, description="hits / (hits + misses); null: no request")
    misses_from: Literal["metric", "requests-hits"] | None = Field(
        None, description="litellm_cache_misses_metric, or (LiteLLM 1.106, which leaves it "
                          "empty) requests − hits")
    since: float | None = Field(None, description="gateway start (Unix time), counting since")
    models: dict[str, ModelHits] = Field(default_factory=dict, description="public model →")


def _public(labels: dict[str, str]) -> str:
    """stackctl names each deployment `public@provider` (model_info.id)."""
    model_id = labels.get("model_id", "")
    if "@" in model_id:
        return model_id.rsplit("@", 1)[0]
    return labels.get("model") or labels.get("requested_model") or "?"


def gateway_hits(samples: list[Sample]) -> GatewayHits:
    """LiteLLM's counters → hits, misses and requests, in total and per public model."""
    models: dict[str, ModelHits] = {}
    misses, missed_seen, since = 0.0, False, None
    for s in samples:
        name = s.name.removesuffix("_total")
        if name == HITS:
            models.setdefault(_public(s.labels), ModelHits()).hits += int(s.value)
        elif name == REQUESTS:
            models.setdefault(_public(s.labels), ModelHits()).requests += int(s.value)
        elif name == MISSES:
            misses += s.value
            missed_seen = True
        elif s.name == "process_start_time_seconds":
            since = s.value
    hits = sum(m.hits for m in models.values())
    requests = sum(m.requests for m in models.values())
    missed = int(misses) if missed_seen else max(requests - hits, 0)
    lookups = hits + missed
    return GatewayHits(available=True, hits=hits, misses=missed, requests=requests,
                       ratio=round(hits / lookups, 4) if lookups else None,
                       misses_from="metric" if missed_seen else "requests-hits",
                       since=since, models=dict(sorted(models.items())))


def gateway_metrics(reg: Registry, timeout: float = 5.0) -> Callable[[], str]:
    """A callable returning the gateway's /metrics/ text; it raises CacheError with the
    reason when the gateway cannot be asked (the stats then fall back to Redis' counters).
    LiteLLM's first /metrics/ answer took 1.8 s on a loaded 2-core machine, later ones 10 ms."""
    name = reg.stack.gateway.master_key_env
    url = f"http://127.0.0.1:{reg.stack.gateway.host_port}/metrics/"

    def fetch() -> str:
        try:
            key = compose_value(reg.env_file, name)
        except (EnvFileError, OSError):
            key = None
        if not key:
            raise CacheError(f"{name} is not set in {reg.env_file.name}")
        try:
            r = requests.get(url, headers={"Authorization": f"Bearer {key}"}, timeout=timeout)
        except requests.Timeout:
            raise CacheError(f"the gateway did not answer on {url} within {timeout:g}s") from None
        except requests.RequestException:
            raise CacheError(f"the gateway does not answer on {url}") from None
        if r.status_code in (401, 403):
            raise CacheError(f"the gateway refused {name} on {url}")
        if not r.ok:
            raise CacheError(f"GET {url} answered {r.status_code}")
        return r.text
    return fetch
