"""The gateway's Redis cache: what is in it (`stats`, `keys`) and emptying it (`flush`).

LiteLLM keeps everything it writes to Redis under `cache.namespace` + ":" (default
`stackctl:`): a cached response under the SHA-256 of the request (64 hex digits), stored as
`{"timestamp": …, "response": "<the response as JSON>"}` with `cache.ttl`; and its own
short-lived counters (rate limits, `{api_key:…}:tokens`, 60 s). Only keys under the namespace
are ever read or deleted here; other clients' keys in the same Redis are left alone.

Deciding is pure (key kinds, a response's model, TTL spread, /metrics/ → hit counters, the
report); doing goes through an injected redis-py client and a /metrics/ fetcher. The keyspace
is walked by cursor SCAN MATCH on the namespace, bounded for `stats` and `keys`; never KEYS.

Hits and misses come from the gateway when its /metrics/ answers (master key from .env):
`litellm_cache_hits_metric` (responses served from the cache) and `litellm_requests_metric`
(successful responses, hits included), per model, since the gateway started. LiteLLM 1.106
never increments `litellm_cache_misses_metric` (a miss is logged as None, not False), so
misses are requests − hits; where that metric has samples it is used. Redis' keyspace_hits/
misses are server-wide (every key and client, LiteLLM's counters too): shown beside, and as
the headline only when the gateway cannot be asked.
"""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal

from pydantic import BaseModel, Field

from stackctl.errors import PlanError
from stackctl.registry.load import Registry

RESPONSE_KEY = re.compile(r"[0-9a-f]{64}")  # LiteLLM: sha256 hex of the request's cache key
SCAN_COUNT = 1000  # keys SCAN looks at per call (a hint to Redis)
HEAD_BYTES = 8192  # read of a cached value to find its model (GETRANGE: never a whole big value)
HITS, MISSES, REQUESTS = ("litellm_cache_hits_metric", "litellm_cache_misses_metric",
                          "litellm_requests_metric")


class CacheError(PlanError):
    """Redis cannot be asked; the message says what to do, naming secrets by variable only."""


# -- what and where ---------------------------------------------------------------------------

class CacheTarget(BaseModel):
    """The stack's Redis as seen from the host. Never holds the password's value."""

    host: str = Field("127.0.0.1", description="address Redis is published on")
    port: int = Field(description="host port (stack.yaml cache.host_port)")
    namespace: str = Field(description="prefix of the gateway's keys, without the ':'")
    ttl: int = Field(description="seconds LiteLLM gives a cached response (cache.ttl)")
    password_env: str = Field(description="NAME of the variable holding the password")
    env_file: str = Field(description="the stack's .env the password is read from")
    service: str = Field(description="compose service name of the cache")
    project: str = Field(description="compose project name")
    password_from: str = Field("", description="where the password was read: the .env path, "
                               "or 'the environment' (a host variable wins, as in Compose)")

    @property
    def pattern(self) -> str:
        """SCAN MATCH pattern for the namespace (glob characters in it matched literally)."""
        return re.sub(r"([*?\[\]\\])", r"\\\1", self.namespace) + ":*"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def target_of(reg: Registry) -> CacheTarget:
    """The cache of this registry's stack; CacheError when there is none to reach."""
    from stackctl.render.compose import CACHE

    cache = reg.stack.cache
    if not cache.enabled:
        raise CacheError("the cache is disabled in stack.yaml (cache.enabled: false): the "
                         "gateway caches nothing and no Redis runs; set cache.enabled: true "
                         "and run `stackctl up`")
    if cache.host_port is None:
        raise CacheError("Redis is not published on the host (stack.yaml cache.host_port: "
                         "null); give cache.host_port a port (default 6379) and run "
                         "`stackctl up`")
    if not cache.namespace:
        raise CacheError("stack.yaml cache.namespace is empty: the gateway's keys cannot be "
                         "told from other keys in Redis; set cache.namespace (default "
                         "stackctl)")
    return CacheTarget(port=cache.host_port, namespace=cache.namespace, ttl=cache.ttl,
                       password_env=cache.password_env, env_file=str(reg.env_file),
                       service=CACHE, project=reg.stack.project)


def password_of(reg: Registry, target: CacheTarget) -> str:
    """The password Compose hands Redis (host environment first, then .env); notes in
    `target.password_from` where it came from."""
    import os

    from stackctl.store.envfile import EnvFileError, compose_value

    target.password_from = ("the environment" if target.password_env in os.environ
                            else target.env_file)
    try:
        value = compose_value(reg.env_file, target.password_env)
    except EnvFileError as exc:  # its message may quote the line, the secret with it
        where = (re.match(r"(\S+?:\d+):", str(exc)) or [target.env_file] * 2)[1]
        raise CacheError(f"cannot read {target.password_env} from {where}: the file is not "
                         "what Compose reads (`stackctl up` says more)") from None
    except OSError as exc:
        raise CacheError(f"cannot read {target.env_file}: {exc.strerror}") from None
    if not value:
        raise CacheError(f"{target.password_env} is not set in {target.env_file} (nor in "
                         "the environment): the stack was not started from here, or .env "
                         "was replaced; `stackctl up` creates it")
    return value


def model_names(reg: Registry) -> dict[str, str]:
    """The model a cached response names (the provider's, e.g. `ollama_chat/qwen2.5-coder:7b`
    or `qwen2.5-coder:7b`) → the public name clients ask for, where that is unambiguous."""
    from stackctl.registry.catalog import deployments
    from stackctl.render.litellm import PREFIX

    seen: dict[str, set[str]] = {}
    for public, deps in deployments(reg).items():
        for dep in deps:
            kind = reg.providers.providers[dep.provider].type
            for name in (f"{PREFIX[kind]}/{dep.backend}", dep.backend):
                seen.setdefault(name, set()).add(public)
    return {name: next(iter(p)) for name, p in seen.items() if len(p) == 1}


# -- connecting -------------------------------------------------------------------------------

def connect(target: CacheTarget, password: str, timeout: float = 3.0) -> Any:
    """A redis-py client that answered an authenticated PING; CacheError otherwise. One
    retry without backoff (redis-py's default backs off for seconds on a refused port)."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    client = redis.Redis(host=target.host, port=target.port, password=password,
                         socket_timeout=timeout, socket_connect_timeout=timeout,
                         retry=Retry(NoBackoff(), 1))
    with redis_errors(target):
        client.ping()
    return client


@contextmanager
def redis_errors(target: CacheTarget) -> Iterator[None]:
    """redis-py's errors as CacheError, saying what to do."""
    import redis

    try:
        yield
    except redis.AuthenticationError:  # WRONGPASS, or a password where none is set
        raise CacheError(
            f"Redis on {target.address} refused the password in {target.password_env} "
            f"({target.password_from or target.env_file}): the running cache was started "
            "with another one. Restart the stack so both agree: `stackctl down` then "
            "`stackctl up`") from None
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise CacheError(
            f"no Redis answers on {target.address} (service {target.service!r} of stack "
            f"{target.project!r}): start the stack with `stackctl up` "
            f"({str(exc).rstrip('.') or type(exc).__name__})") from None
    except redis.RedisError as exc:  # e.g. a port where something else than Redis answers
        raise CacheError(f"Redis on {target.address}: {exc or type(exc).__name__}") from None


# -- keys -------------------------------------------------------------------------------------

Kind = Literal["response", "other"]


def key_kind(key: str, namespace: str) -> Kind:
    """A cached response (namespace + ':' + sha256 hex), or another of LiteLLM's keys
    (rate-limit and token counters)."""
    rest = key[len(namespace) + 1:] if key.startswith(namespace + ":") else key
    return "response" if RESPONSE_KEY.fullmatch(rest) else "other"


_MODEL_FIELD = re.compile(r'\\*"model\\*"\s*:\s*\\*"([^"\\]+)')


def stored_model(head: bytes) -> str | None:
    """The `model` of a cached response, from the first bytes of its value: the whole JSON
    when it fits, else the first `"model": "…"` (a response lists it before its choices)."""
    import json

    text = head.decode("utf-8", "replace")
    try:
        doc = json.loads(text)
        response = doc.get("response", doc) if isinstance(doc, dict) else None
        response = json.loads(response) if isinstance(response, str) else response
    except ValueError:
        found = _MODEL_FIELD.search(text)
        return found[1] if found else None
    model = response.get("model") if isinstance(response, dict) else None
    return model if isinstance(model, str) and model else None


class KeyInfo(BaseModel):
    key: str
    kind: Kind = Field(description="response: a cached response; other: LiteLLM's counters")
    ttl: int | None = Field(description="seconds left; null: no expiry")
    bytes: int | None = Field(description="MEMORY USAGE (key, value and overhead)")
    model: str | None = Field(None, description="public model name of a cached response "
                              "(the provider's name when the registry has no unique one); "
                              "null: not a response, or not readable")


def describe(client: Any, keys: list[bytes], namespace: str,
             names: dict[str, str]) -> list[KeyInfo]:
    """TTL, size and (for responses) model of each key, in two pipelined round trips.
    Keys that vanished meanwhile (expired) are left out."""
    decoded = [k.decode("utf-8", "backslashreplace") for k in keys]
    kinds = [key_kind(k, namespace) for k in decoded]
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.ttl(key)
        pipe.memory_usage(key)
    answers = pipe.execute(raise_on_error=False)
    heads: dict[int, Any] = {}
    responses = [i for i, kind in enumerate(kinds) if kind == "response"]
    if responses:
        pipe = client.pipeline(transaction=False)
        for i in responses:
            pipe.getrange(keys[i], 0, HEAD_BYTES - 1)
        heads = dict(zip(responses, pipe.execute(raise_on_error=False), strict=True))
    out = []
    for i, key in enumerate(decoded):
        ttl, size = answers[2 * i], answers[2 * i + 1]
        if ttl == -2 or size is None:  # gone between SCAN and now
            continue
        head = heads.get(i)  # the registry's public name, else the stored one as it is
        stored = stored_model(head) if isinstance(head, bytes) else None
        model = names.get(stored, stored) if stored else None
        out.append(KeyInfo(key=key, kind=kinds[i], ttl=None if ttl == -1 else _int(ttl),
                           bytes=_int(size), model=model))
    return out


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) else None


def scan(client: Any, pattern: str, max_keys: int | None = None,
         max_calls: int | None = None) -> tuple[list[bytes], bool]:
    """Keys matching `pattern` by cursor SCAN: (keys, complete). Stops once `max_keys`
    matched or after `max_calls` SCAN calls; complete: the cursor went all the way round."""
    keys: list[bytes] = []
    cursor, calls = 0, 0
    while True:
        cursor, page = client.scan(cursor=cursor, match=pattern, count=SCAN_COUNT)
        calls += 1
        keys.extend(page)
        if cursor == 0:
            return keys, True
        if (max_keys is not None and len(keys) >= max_keys) or \
                (max_calls is not None and calls >= max_calls):
            return keys, False


class KeyListing(BaseModel):
    namespace: str
    keys: list[KeyInfo] = Field(description="responses first, newest (most TTL left) first")
    more: bool = Field(description="more keys exist under the namespace than listed")


def list_keys(client: Any, target: CacheTarget, names: dict[str, str],
              limit: int) -> KeyListing:
    with redis_errors(target):
        found, complete = scan(client, target.pattern, max_keys=limit + 1)
        infos = describe(client, found[:limit], target.namespace, names)
    infos.sort(key=lambda k: (k.kind != "response", -(k.ttl if k.ttl is not None else 1 << 62)))
    return KeyListing(namespace=target.namespace, keys=infos,
                      more=len(found) > limit or not complete)


# -- statistics -------------------------------------------------------------------------------

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
    import requests

    from stackctl.store.envfile import EnvFileError, compose_value

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


# -- flush ------------------------------------------------------------------------------------

class FlushResult(BaseModel):
    namespace: str
    found: int = Field(description="keys under the namespace before flushing")
    deleted: int = Field(description="keys UNLINKed (not those that expired meanwhile)")
    left_in_db: int = Field(description="keys left in the database afterwards (DBSIZE): "
                            "other clients' keys, and any the gateway wrote meanwhile")
    seconds: float
    note: str = Field(description="what it cannot reach: the gateway's in-memory copies")


def memory_note(target: CacheTarget) -> str:
    """LiteLLM 1.106 caches through a DualCache: each gateway worker keeps an in-memory copy
    (up to 200 responses, same TTL) in front of Redis that no endpoint drops (/cache/delete
    reaches Redis only; /cache/flushall is FLUSHALL of all Redis). A repeat after the flush
    was a hit in 25 of 25 manual trials (tests/integration/test_cache.py)."""
    from stackctl.render.compose import GATEWAY

    return (f"the gateway may still answer recent requests from its own memory (LiteLLM keeps "
            f"up to 200 responses per worker, for cache.ttl) until it restarts: "
            f"docker restart {target.project}-{GATEWAY}-1")


def count(client: Any, target: CacheTarget) -> int:
    """Keys under the namespace (a full cursor SCAN)."""
    with redis_errors(target):
        return len(scan(client, target.pattern)[0])


def flush(client: Any, target: CacheTarget, found: int = 0, batch: int = 500) -> FlushResult:
    """UNLINK every key under the namespace, a SCAN page at a time (at most `batch` keys per
    UNLINK); keys outside it are never touched."""
    start = time.perf_counter()
    deleted, cursor = 0, 0
    prefix = (target.namespace + ":").encode()
    with redis_errors(target):
        while True:
            cursor, page = client.scan(cursor=cursor, match=target.pattern, count=SCAN_COUNT)
            page = [k for k in page if k.startswith(prefix)]  # MATCH did it; be certain
            for i in range(0, len(page), batch):
                deleted += int(client.unlink(*page[i:i + batch]))
            if cursor == 0:
                break
        left = int(client.dbsize())
    return FlushResult(namespace=target.namespace, found=found, deleted=deleted,
                       left_in_db=left, seconds=round(time.perf_counter() - start, 3),
                       note=memory_note(target))
