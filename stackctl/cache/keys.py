"""The keys under the namespace: what each one is (a cached response or one of LiteLLM's
counters, and which model), walked by cursor SCAN, described in pipelined round trips."""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import BaseModel, Field

from stackctl.cache.client import redis_errors
from stackctl.cache.target import CacheTarget

RESPONSE_KEY = re.compile(r"[0-9a-f]{64}")  # LiteLLM: sha256 hex of the request's cache key
SCAN_COUNT = 1000  # keys SCAN looks at per call (a hint to Redis)
HEAD_BYTES = 8192  # read of a cached value to find its model (GETRANGE: never a whole big value)

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
