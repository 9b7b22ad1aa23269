"""`cache stats`: one reading (Redis' INFO, a bounded SCAN of the namespace, a sample's
TTL/size/model, the gateway's counters) and the report made of it (`summarize`, pure)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, Field

from stackctl.cache.client import redis_errors
from stackctl.cache.keys import SCAN_COUNT, KeyInfo, Kind, describe, key_kind, scan
from stackctl.cache.metrics import GatewayHits, gateway_hits, parse_metrics
from stackctl.cache.target import CacheError, CacheTarget


class TtlSpread(BaseModel):
    count: int = Field(description="keys measured")
    min: int | None = None
    median: int | None = None
    max: int | None = None
    no_expiry: int = Field(0, description="keys without a TTL (never expire)")


def ttl_spread(ttls: list[int | None]) -> TtlSpread:
    """min/median/max of the TTLs that expire; None counts as no expiry."""
    expiring = sorted(t for t in ttls if t is not None)
    if not expiring:
        return TtlSpread(count=len(ttls), no_expiry=len(ttls))
    return TtlSpread(count=len(ttls), min=expiring[0], median=statistics.median_low(expiring),
                     max=expiring[-1], no_expiry=len(ttls) - len(expiring))


class RedisInfo(BaseModel):
    version: str
    used_memory: int = Field(description="bytes Redis uses, all keys (INFO memory)")
    used_memory_human: str
    maxmemory: int = Field(description="0: no limit")
    maxmemory_policy: str
    evicted_keys: int
    expired_keys: int
    keys: int = Field(description="keys in the database, every namespace (DBSIZE)")
    keyspace_hits: int = Field(description="server-wide: every key and client")
    keyspace_misses: int = Field(description="server-wide: every key and client")
    ratio: float | None = Field(description="keyspace_hits / (hits + misses), server-wide")


def redis_info(client: Any) -> RedisInfo:
    pipe = client.pipeline(transaction=False)
    pipe.info("server")
    pipe.info("memory")
    pipe.info("stats")
    pipe.dbsize()
    server, memory, stats, dbsize = pipe.execute()
    hits, misses = int(stats.get("keyspace_hits", 0)), int(stats.get("keyspace_misses", 0))
    return RedisInfo(version=str(server.get("redis_version", "?")), keys=int(dbsize),
                     **{k: memory.get(k, 0) for k in ("used_memory", "maxmemory")},
                     **{k: str(memory.get(k, "?"))
                        for k in ("used_memory_human", "maxmemory_policy")},
                     **{k: stats.get(k, 0) for k in ("evicted_keys", "expired_keys")},
                     keyspace_hits=hits, keyspace_misses=misses,
                     ratio=round(hits / (hits + misses), 4) if hits + misses else None)


class ModelRow(BaseModel):
    model: str = Field(description="public model name ('?': not readable from the value)")
    entries: int = Field(0, description="cached responses in the sample")
    bytes: int = Field(0, description="their MEMORY USAGE")
    hits: int | None = Field(None, description="gateway: responses served from the cache")
    requests: int | None = Field(None, description="gateway: successful responses")


class NamespaceStats(BaseModel):
    namespace: str
    keys: int = Field(description="keys under the namespace (a lower bound unless complete)")
    responses: int = Field(description="of which cached responses")
    other: int = Field(description="of which LiteLLM's counters (rate limits, tokens)")
    complete: bool = Field(description="SCAN walked the whole database (else: --scan-limit)")
    sampled: int = Field(description="keys whose TTL, size and model were read (--sample)")
    sample_bytes: int = Field(description="MEMORY USAGE of the sampled keys")
    bytes: int = Field(description="estimated MEMORY USAGE of the namespace (sample mean "
                       "per kind × keys; exact when every key was sampled)")
    ttl: TtlSpread = Field(description="TTL of the sampled cached responses, seconds")


class HitSummary(BaseModel):
    source: Literal["gateway", "redis"]
    hits: int
    misses: int
    ratio: float | None
    scope: str = Field(description="what the figures count")


class CacheStats(BaseModel):
    target: CacheTarget
    redis: RedisInfo
    namespace: NamespaceStats
    gateway: GatewayHits
    hits: HitSummary = Field(description="the gateway's figures, else Redis' server-wide")
    models: list[ModelRow]
    at: float = Field(description="Unix time of the reading")
    seconds: float = Field(description="time the reading took")


class StatsOptions(BaseModel):
    sample: int = Field(200, ge=0, description="keys of each kind whose TTL/size/model are read")
    scan_limit: int = Field(100_000, ge=1, description="keys SCAN may walk through; beyond "
                            "it, counts are a lower bound")


def summarize(target: CacheTarget, info: RedisInfo, kinds: list[Kind], complete: bool,
              sampled: list[KeyInfo], gateway: GatewayHits, at: float = 0.0,
              seconds: float = 0.0) -> CacheStats:
    """The report, from what was read (`kinds`: of every key the SCAN found). Pure."""
    count = {"response": kinds.count("response"), "other": kinds.count("other")}
    per_kind: dict[str, list[int]] = {"response": [], "other": []}
    for k in sampled:
        per_kind[k.kind].append(k.bytes or 0)
    estimate = sum(round(statistics.fmean(sizes) * count[kind]) if sizes else 0
                   for kind, sizes in per_kind.items())
    responses = [k for k in sampled if k.kind == "response"]
    ns = NamespaceStats(namespace=target.namespace, keys=len(kinds),
                        responses=count["response"], other=count["other"], complete=complete,
                        sampled=len(sampled), sample_bytes=sum(k.bytes or 0 for k in sampled),
                        bytes=estimate, ttl=ttl_spread([k.ttl for k in responses]))
    rows: dict[str, ModelRow] = {}
    for k in responses:
        row = rows.setdefault(k.model or "?", ModelRow(model=k.model or "?"))
        row.entries += 1
        row.bytes += k.bytes or 0
    if gateway.available:
        for model, h in gateway.models.items():
            row = rows.setdefault(model, ModelRow(model=model))
            row.hits, row.requests = h.hits, h.requests
        headline = HitSummary(source="gateway", hits=gateway.hits, misses=gateway.misses,
                              ratio=gateway.ratio,
                              scope="the gateway's responses since it started (LiteLLM "
                                    "/metrics/): a hit is a response served from the cache")
    else:
        headline = HitSummary(source="redis", hits=info.keyspace_hits,
                              misses=info.keyspace_misses, ratio=info.ratio,
                              scope="Redis server-wide (INFO stats keyspace_hits/misses): "
                                    "every key and client, LiteLLM's counters too")
    return CacheStats(target=target, redis=info, namespace=ns, gateway=gateway, hits=headline,
                      models=sorted(rows.values(), key=lambda r: (r.model == "?", r.model)),
                      at=at, seconds=seconds)


def collect_stats(client: Any, target: CacheTarget, names: dict[str, str],
                  metrics: Callable[[], str] | None, opts: StatsOptions,
                  clock: Callable[[], float] = time.time) -> CacheStats:
    """One reading: Redis' INFO, a bounded SCAN of the namespace, a sample's TTL/size/model,
    and the gateway's counters (`metrics`; None or a CacheError: Redis' figures only)."""
    start = time.perf_counter()
    with redis_errors(target):
        info = redis_info(client)
        found, complete = scan(client, target.pattern,
                               max_calls=max(1, -(-opts.scan_limit // SCAN_COUNT)))
        kinds = [key_kind(k.decode("utf-8", "backslashreplace"), target.namespace)
                 for k in found]
        by_kind: dict[str, list[bytes]] = {"response": [], "other": []}
        for key, kind in zip(found, kinds, strict=True):
            by_kind[kind].append(key)
        pick = by_kind["response"][:opts.sample] + by_kind["other"][:opts.sample]
        sampled = describe(client, pick, target.namespace, names) if pick else []
    if metrics is None:
        gateway = GatewayHits(available=False, reason="not asked")
    else:
        try:
            gateway = gateway_hits(parse_metrics(metrics()))
        except CacheError as exc:
            gateway = GatewayHits(available=False, reason=str(exc))
    return summarize(target, info, kinds, complete, sampled, gateway, at=clock(),
                     seconds=round(time.perf_counter() - start, 3))
