"""A bounded, open-loop client load against the gateway (loopback only).

Requests are sent on a fixed schedule (`rate` per second per model) from a pool of workers,
so a slow answer does not lower the offered load. Every answer is recorded.
"""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import requests


@dataclass
class Answer:
    t: float  # when the request was sent (time.monotonic)
    model: str
    ok: bool
    text: str
    deployment: str  # x-litellm-model-id: which deployment answered
    latency: float = 0.0


@dataclass
class Traffic:
    url: str
    key: str
    models: list[str]
    rate: float = 6.0  # requests per second per model
    max_seconds: float = 300
    answers: list[Answer] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _one(self, model: str) -> None:
        sent = time.monotonic()  # when it really leaves, not when it was scheduled
        body = {"model": model, "max_tokens": 8, "cache": {"no-cache": True},
                "messages": [{"role": "user", "content": f"hello {uuid.uuid4()}"}]}
        try:
            r = requests.post(f"{self.url}/v1/chat/completions", json=body, timeout=60,
                              headers={"Authorization": f"Bearer {self.key}"})
            ok = r.status_code == 200
            text = r.json()["choices"][0]["message"]["content"] if ok else r.text[:300]
            dep = r.headers.get("x-litellm-model-id", "")
        except (requests.RequestException, ValueError, KeyError) as exc:
            ok, text, dep = False, repr(exc), ""
        with self._lock:
            self.answers.append(Answer(sent, model, ok, text or "", dep,
                                       time.monotonic() - sent))

    def _schedule(self) -> None:
        end = time.monotonic() + self.max_seconds
        tick = 1.0 / self.rate
        next_at = time.monotonic()
        while not self._stop.is_set() and time.monotonic() < end:
            for m in self.models:
                self._pool.submit(self._one, m)
            next_at += tick
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def __enter__(self) -> Traffic:
        self._pool = ThreadPoolExecutor(max_workers=64)
        self._thread = threading.Thread(target=self._schedule, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._pool.shutdown(wait=True)

    def failures(self) -> list[Answer]:
        return [a for a in self.answers if not a.ok]

    def between(self, start: float, end: float, model: str) -> list[Answer]:
        return [a for a in self.answers if a.model == model and start <= a.t <= end]

    def wait_answered(self, model: str, since: float, count: int = 3,
                      timeout: float = 60) -> bool:
        """Until `count` requests for `model` sent at or after `since` have been answered.

        A loaded machine's gateway may queue answers for seconds; fixed sleeps would then
        leave a test's time windows empty.
        """
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self._lock:
                if sum(a.model == model and a.t >= since for a in self.answers) >= count:
                    return True
            time.sleep(0.1)
        return False

    def latencies(self, model: str) -> list[float]:
        return sorted(a.latency for a in self.answers if a.model == model)
