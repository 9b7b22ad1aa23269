"""Talking to the LiteLLM gateway from the host (loopback only)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from .http import HttpError, request


@dataclass(frozen=True)
class Gateway:
    url: str
    key: str | None

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"} if self.key else {}

    def live(self, timeout: float = 1.0) -> bool:
        try:
            return request("GET", f"{self.url}/health/liveliness", timeout).ok
        except HttpError:
            return False

    def models(self, timeout: float = 2.0) -> list[str]:
        """Models the gateway lists; raises HttpError or ValueError when it can't say."""
        r = request("GET", f"{self.url}/v1/models", timeout, self._headers())
        if not r.ok:
            raise ValueError(f"GET /v1/models answered {r.status}")
        return [m["id"] for m in (r.json() or {}).get("data", [])]

    def answered_by(self, model: str, timeout: float = 30.0) -> str | None:
        """The deployment id (`model@provider`) that answers a one-token request for `model`,
        bypassing the response cache; None when the request fails."""
        try:
            r = request("POST", f"{self.url}/v1/chat/completions", timeout, self._headers(),
                        {"model": model, "max_tokens": 1, "cache": {"no-cache": True},
                         "messages": [{"role": "user", "content": "ping"}]})
        except HttpError:
            return None
        return r.headers.get("x-litellm-model-id") if r.ok else None

    def wait_models(self, expected: list[str], timeout: float, poll: float = 0.5) -> list[str]:
        """Wait until /v1/models lists every expected model; return the missing ones."""
        deadline = time.monotonic() + timeout
        missing = list(expected)
        while True:
            try:
                listed = set(self.models())
                missing = [m for m in expected if m not in listed]
                if not missing:
                    return []
            except (HttpError, ValueError):
                pass
            if time.monotonic() >= deadline:
                return missing
            time.sleep(poll)
