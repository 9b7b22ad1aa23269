"""A vLLM engine's sleep mode, asked from the host through its published port (requests).

vLLM serves /sleep, /wake_up, /is_sleeping and /collective_rpc only with
VLLM_SERVER_DEV_MODE=1 (404 otherwise) and frees GPU memory only with --enable-sleep-mode;
the renderer sets both for the members of a sleep-mode group. A sleeping engine still answers
/health (200), so Docker's healthcheck cannot tell: its own /is_sleeping does. A completion
that reaches a sleeping engine is queued until it wakes (older versions crash): the gateway
never sends it one (routing.py).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass

import requests

# vLLM's own gauges of the requests it holds (vllm/v1/metrics/loggers.py)
_IN_FLIGHT = re.compile(r"^vllm:num_requests_(?:running|waiting)\{[^}]*\}\s+([0-9.eE+-]+)\s*$",
                        re.M)


class EngineError(Exception):
    """The engine refused or did not answer a sleep-mode call; the message says which."""


@dataclass(frozen=True)
class VllmEngine:
    name: str
    url: str  # http://127.0.0.1:<host port>
    timeout: float = 120.0  # a sleep or a wake of a large model takes seconds

    def _call(self, method: str, path: str, timeout: float | None = None,
              **kwargs: object) -> requests.Response:
        try:
            r = requests.request(method, f"{self.url}{path}", timeout=timeout or self.timeout,
                                 **kwargs)  # type: ignore[arg-type]
        except requests.RequestException as exc:
            raise EngineError(f"{self.name}: {method} {path} failed: {exc}") from None
        if r.status_code == 404 and path != "/metrics":
            raise EngineError(f"{self.name}: {path} not found: the engine does not expose its "
                              "sleep API (it needs VLLM_SERVER_DEV_MODE=1; regenerate and "
                              "recreate it with `stackctl up`)")
        if not r.ok:
            raise EngineError(f"{self.name}: {method} {path} answered {r.status_code}: "
                              f"{r.text.strip()[:200]}")
        return r

    def is_sleeping(self, timeout: float = 2.0) -> bool:
        try:
            return bool(self._call("GET", "/is_sleeping", timeout).json()["is_sleeping"])
        except (ValueError, KeyError, TypeError):
            raise EngineError(f"{self.name}: /is_sleeping answered no is_sleeping") from None

    def sleep(self, level: int) -> None:
        # mode=wait: a request that slipped in still finishes (vLLM's default aborts it);
        # versions without the parameter ignore it
        self._call("POST", "/sleep", params={"level": level, "mode": "wait"})

    def wake(self, level: int) -> None:
        """Awake and serving. Level 2 dropped the weights: wake their memory, reload them,
        then the KV cache (vLLM's documented order; a plain wake would serve garbage)."""
        if level == 2:
            self._call("POST", "/wake_up", params={"tags": "weights"})
            self._call("POST", "/collective_rpc", json={"method": "reload_weights"})
            self._call("POST", "/wake_up", params={"tags": "kv_cache"})
        else:
            self._call("POST", "/wake_up")

    def in_flight(self, timeout: float = 2.0) -> int:
        """Requests the engine is running or has queued, from its own metrics."""
        text = self._call("GET", "/metrics", timeout).text
        return int(sum(float(v) for v in _IN_FLIGHT.findall(text)))

    def drain(self, seconds: float, clock: Callable[[], float] = time.monotonic,
              sleep: Callable[[float], None] = time.sleep) -> int:
        """Wait up to `seconds` until no request is in flight; return how many still are."""
        deadline = clock() + seconds
        while True:
            try:
                left = self.in_flight()
            except EngineError:
                return 0  # no metrics to read: the sleep's own mode=wait still drains
            if left == 0 or clock() >= deadline:
                return left
            sleep(0.05)

    def warm_up(self, model: str, timeout: float = 60.0) -> None:
        """One token, straight to the engine: the first request after a wake pays for the
        engine's lazy work here, not in a user's request."""
        body = {"model": model, "max_tokens": 1,
                "messages": [{"role": "user", "content": "warm-up"}]}
        r = self._call("POST", "/v1/chat/completions", timeout, json=body)
        try:
            r.json()["choices"][0]
        except (ValueError, KeyError, IndexError, TypeError):
            raise EngineError(f"{self.name}: the warm-up request got no completion") from None
