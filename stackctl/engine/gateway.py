"""Talking to the LiteLLM gateway from the host (loopback only)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import requests


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
        r = requests.get(f"{self.url}/v1/models", headers=self._headers(), timeout=timeout)
        r.raise_for_status()
        return [m["id"] for m in r.json().get("data", [])]

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
            except requests.RequestException:
                pass
            if time.monotonic() >= deadline:
                return missing
            time.sleep(poll)
