"""The real `send` of a bench run: one chat completion over HTTP per call, timed, its
stream read for TTFT and tokens."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import requests

from stackctl.bench.report import BenchOptions, Target
from stackctl.bench.stats import Sample


class HttpSender:
    """One chat completion per call, with a requests.Session per thread (keep-alive)."""

    def __init__(self, opts: BenchOptions, key: str | None):
        self.opts, self._key = opts, key
        self._local = threading.local()

    def _session(self) -> Any:
        s = getattr(self._local, "session", None)
        if s is None:
            s = self._local.session = requests.Session()
        return s

    def __call__(self, target: Target, text: str) -> Sample:
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
