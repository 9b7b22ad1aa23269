"""Talking to the LiteLLM gateway from the host (loopback only), with requests."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import requests

from stackctl.incontainer.routing_callback import PROBE_KEY


@dataclass(frozen=True)
class Gateway:
    url: str
    key: str | None

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"} if self.key else {}

    def live(self, timeout: float = 1.0) -> bool:
        try:
            return requests.get(f"{self.url}/health/liveliness", timeout=timeout).ok
        except requests.RequestException:
            return False

    def models(self, timeout: float = 2.0) -> list[str]:
        """Models the gateway lists; raises requests' errors or ValueError when it can't say."""
        r = requests.get(f"{self.url}/v1/models", headers=self._headers(), timeout=timeout)
        if not r.ok:
            raise ValueError(f"GET /v1/models answered {r.status_code}")
        return [m["id"] for m in (r.json() or {}).get("data", [])]

    def answered_by(self, model: str, timeout: float = 30.0) -> str | None:
        """The deployment id (`model@provider`) that answers a one-token request for `model`,
        bypassing the response cache; None when the request fails. Marked as stackctl's own:
        the on-demand scheduler does not count it as demand for the model."""
        body: dict[str, Any] = {"model": model, "max_tokens": 1, "cache": {"no-cache": True},
                                "messages": [{"role": "user", "content": "ping"}],
                                "metadata": {PROBE_KEY: True}}
        try:
            r = requests.post(f"{self.url}/v1/chat/completions", json=body,
                              headers=self._headers(), timeout=timeout)
        except requests.RequestException:
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
            except (requests.RequestException, ValueError):
                pass
            if time.monotonic() >= deadline:
                return missing
            time.sleep(poll)
