"""A bounded steady client load against the gateway (loopback only), recording every answer."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field

import requests


@dataclass
class Answer:
    t: float
    model: str
    ok: bool
    text: str
    deployment: str


@dataclass
class Traffic:
    url: str
    key: str
    models: list[str]
    rate: float = 6.0  # requests per second per model
    max_seconds: float = 300
    answers: list[Answer] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def _loop(self, model: str) -> None:
        session = requests.Session()
        end = time.monotonic() + self.max_seconds
        while not self._stop.is_set() and time.monotonic() < end:
            started = time.monotonic()
            body = {"model": model, "max_tokens": 8, "cache": {"no-cache": True},
                    "messages": [{"role": "user", "content": f"hello {uuid.uuid4()}"}]}
            try:
                r = session.post(f"{self.url}/v1/chat/completions", json=body, timeout=60,
                                 headers={"Authorization": f"Bearer {self.key}"})
                ok = r.status_code == 200
                text = r.json()["choices"][0]["message"]["content"] if ok else r.text[:300]
                dep = r.headers.get("x-litellm-model-id", "")
            except requests.RequestException as exc:
                ok, text, dep = False, repr(exc), ""
            self.answers.append(Answer(started, model, ok, text or "", dep))
            time.sleep(max(0.0, 1.0 / self.rate - (time.monotonic() - started)))

    def __enter__(self) -> Traffic:
        for m in self.models:
            for _ in range(2):  # two clients per model, so a slow answer does not lower the rate
                t = threading.Thread(target=self._loop, args=(m,), daemon=True)
                t.start()
                self._threads.append(t)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=90)

    def failures(self) -> list[Answer]:
        return [a for a in self.answers if not a.ok]

    def between(self, start: float, end: float, model: str) -> list[Answer]:
        return [a for a in self.answers if a.model == model and start <= a.t <= end]
