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

Modules: `target` (which Redis, its password, the registry's model names), `client`
(connecting, redis-py's errors as CacheError), `keys` (what a key is, listing them),
`metrics` (the gateway's /metrics/ → hit counters), `stats` (one reading and its report),
`flush` (emptying the namespace).
"""
