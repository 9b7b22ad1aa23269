"""stackctl's LiteLLM callback: one JSON line per request through the gateway, on its stdout.

`stackctl generate` copies this file verbatim to `compose/litellm/stackctl_trace.py`, beside
the gateway's config.yaml, whose `litellm_settings.callbacks` names `stackctl_trace.callback`:
the proxy loads it from the config's own folder. It runs inside the gateway image, so it needs
only the standard library and litellm (no stackctl). `stackctl logs --requests` reads these
lines back from the gateway's container log (stackctl/ops/logs.py).

A line is the prefix `stackctl-request ` and one JSON object (`FIELDS`). It never holds the
request's or the response's content, nor a key: only names, numbers, the error's class.

One line per request: a success is logged once, when the answer is complete (the router's
retries and fallbacks before it are not requests of their own); a failure is logged once, by
the proxy's failure hook after every retry and fallback has failed (the per-attempt failure
events are not logged). A request answered by a fallback carries `fallback: true`, the model
asked (`model`) and the model group (`model_group`) and deployment (`deployment`,
`model@provider`) that answered.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping
from typing import Any

PREFIX = "stackctl-request "
VERSION = 1
# every key of a line, in order: the reader relies on them
FIELDS = ("v", "time", "call_id", "status", "model", "model_group", "deployment", "fallback",
          "attempted_fallbacks", "attempted_retries", "latency_ms", "upstream_ms", "tokens_in",
          "tokens_out", "cache_hit", "stream", "http_status", "error")


def success_record(kwargs: Mapping[str, Any], start: Any = None, end: Any = None
                   ) -> dict[str, Any]:
    """The line of a request that was answered, from LiteLLM's success-event arguments."""
    slo = _mapping(kwargs.get("standard_logging_object"))
    meta = _metadata(kwargs)
    group = slo.get("model_group") or meta.get("model_group") or kwargs.get("model")
    t0, t1 = _epoch(slo.get("startTime"), start), _epoch(slo.get("endTime"), end)
    received = _epoch(meta.get("litellm_received_at"), t0)
    return _record(
        call_id=kwargs.get("litellm_call_id") or slo.get("litellm_call_id"), status="success",
        end=t1, model=_asked(meta) or meta.get("original_model_group") or group,
        model_group=group,
        deployment=slo.get("model_id") or _mapping(meta.get("model_info")).get("id"),
        fallbacks=meta.get("attempted_fallbacks"), retries=meta.get("attempted_retries"),
        latency_ms=_ms(received, t1), upstream_ms=_ms(t0, t1),
        tokens_in=_int(slo.get("prompt_tokens")), tokens_out=_int(slo.get("completion_tokens")),
        cache_hit=bool(slo.get("cache_hit") or kwargs.get("cache_hit")),
        stream=bool(slo.get("stream") or kwargs.get("stream")), http_status=200, error=None)


def failure_record(request_data: Mapping[str, Any], exc: BaseException,
                   now: float | None = None) -> dict[str, Any]:
    """The line of a request that failed for good, from the proxy's failure-hook arguments
    (`request_data`: the request's body as the proxy holds it, with its metadata)."""
    end = time.time() if now is None else now
    meta = _metadata(request_data)
    slo = _mapping(request_data.get("standard_logging_object"))
    received = _epoch(meta.get("litellm_received_at"),
                      _epoch(request_data.get("start_time"), slo.get("startTime")))
    group = meta.get("model_group") or request_data.get("model")
    deployment = _mapping(meta.get("model_info")).get("id") or slo.get("model_id")
    return _record(
        call_id=request_data.get("litellm_call_id") or slo.get("litellm_call_id"),
        status="failure", end=end, model=_asked(meta) or meta.get("original_model_group") or
        request_data.get("model") or group, model_group=group, deployment=deployment,
        fallbacks=meta.get("attempted_fallbacks"), retries=meta.get("attempted_retries"),
        latency_ms=_ms(received, end), upstream_ms=None, tokens_in=None, tokens_out=None,
        cache_hit=False, stream=bool(request_data.get("stream")),
        http_status=_status_code(exc), error=type(exc).__name__)


def line(record: Mapping[str, Any]) -> str:
    """`stackctl-request {json}`: one line, compact JSON."""
    return PREFIX + json.dumps(record, separators=(",", ":"))


def _record(*, call_id: Any, status: str, end: float | None, model: Any, model_group: Any,
            deployment: Any, fallbacks: Any, retries: Any, latency_ms: float | None,
            upstream_ms: float | None, tokens_in: int | None, tokens_out: int | None,
            cache_hit: bool, stream: bool, http_status: int | None, error: str | None
            ) -> dict[str, Any]:
    asked, group = _str(model), _str(model_group)
    attempted = _int(fallbacks) or 0
    # answered by another model group than the one the router started with: a fallback (a
    # model_group_alias keeps the alias as its model group, so an alias alone is not one)
    fallback = attempted > 0 or (asked is not None and group is not None and asked != group)
    values = (VERSION, round(end if end is not None else time.time(), 3), _str(call_id), status,
              asked, group, _str(deployment), fallback, attempted, _int(retries) or 0,
              latency_ms, upstream_ms, tokens_in, tokens_out, cache_hit, stream, http_status,
              error)
    return dict(zip(FIELDS, values, strict=True))


def _asked(meta: Mapping[str, Any]) -> Any:
    """The model the client asked for, when the routing callback (routing_callback.py) sent
    the request to another one: a fallback too, though not the router's."""
    routed = meta.get("stackctl_routing")
    return routed.get("asked") if isinstance(routed, Mapping) else None


def _ms(start: float | None, end: float | None) -> float | None:
    if start is None or end is None:
        return None
    return round(max(0.0, end - start) * 1000, 1)


def _metadata(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The router's metadata of a call: `litellm_params.metadata` (success events), else the
    request's own `metadata`/`litellm_metadata` (the proxy's request data); merged."""
    params = _mapping(kwargs.get("litellm_params"))
    out: dict[str, Any] = {}
    for source in (kwargs.get("metadata"), kwargs.get("litellm_metadata"),
                   params.get("metadata"), params.get("litellm_metadata")):
        for key, value in _mapping(source).items():
            if value is not None:
                out[key] = value
    return out


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _epoch(value: Any, fallback: Any) -> float | None:
    for v in (value, fallback):
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return float(v)
        if hasattr(v, "timestamp"):  # a datetime
            try:
                return float(v.timestamp())
            except (OverflowError, OSError, ValueError):
                continue
    return None


def _status_code(exc: BaseException) -> int | None:
    for attr in ("status_code", "code"):
        value = getattr(exc, attr, None)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.isdigit():
            return int(value)
    return None


def _emit(record: Mapping[str, Any]) -> None:
    try:
        sys.stdout.write(line(record) + "\n")
        sys.stdout.flush()
    except Exception:  # a log line must never fail a request
        pass


def _make_callback() -> Any:
    from litellm.integrations.custom_logger import CustomLogger

    class StackctlTrace(CustomLogger):  # type: ignore[misc]
        """Prints `success_record`/`failure_record` lines; never raises into LiteLLM."""

        async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):  # type: ignore[no-untyped-def]
            try:
                _emit(success_record(kwargs, start_time, end_time))
            except Exception:
                pass

        def log_success_event(self, kwargs, response_obj, start_time, end_time):  # type: ignore[no-untyped-def]
            pass  # the async event covers the proxy's calls; logging both would double them

        async def async_post_call_failure_hook(self, request_data, original_exception,  # type: ignore[no-untyped-def]
                                               user_api_key_dict, traceback_str=None):
            try:
                _emit(failure_record(request_data, original_exception))
            except Exception:
                pass
            return None

    return StackctlTrace()


_callback: Any = None


def __getattr__(name: str) -> Any:
    """`callback`, the instance the proxy loads, is built on first access: importing this
    module (stackctl's unit tests, `stackctl logs`) does not import litellm."""
    global _callback
    if name == "callback":
        if _callback is None:
            _callback = _make_callback()
        return _callback
    raise AttributeError(name)
