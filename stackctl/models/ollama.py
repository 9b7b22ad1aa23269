"""`stackctl models pull`: Ollama's POST /api/pull, its NDJSON progress folded into one line.

Ollama streams one JSON object per line: {"status": "pulling manifest"}, then per layer
{"status": "pulling <digest>", "digest": …, "total": bytes, "completed": bytes}, then
"verifying sha256 digest", "writing manifest", {"status": "success"}. A failure is a line
{"error": "…"} (HTTP 200, mid-stream) or an error status with the same body."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import requests

CONNECT_TIMEOUT = 5.0  # seconds to reach Ollama; the pull itself may take an hour
READ_TIMEOUT = 300.0  # seconds without a progress line (Ollama sends several a second)


class PullError(Exception):
    """The pull failed; the message names the server, the model and Ollama's words."""


@dataclass
class Progress:
    """Ollama's progress lines folded: bytes per layer, the last status."""

    status: str = ""
    layers: dict[str, tuple[int, int]] = field(default_factory=dict)  # digest → (done, total)
    downloading: bool = False  # the last line was a layer's ("pulling 6a0746a1ec1a")

    def update(self, event: dict[str, Any]) -> None:
        self.status = str(event.get("status", self.status))
        digest, total = event.get("digest"), event.get("total")
        self.downloading = isinstance(digest, str) and isinstance(total, int) and total > 0
        if self.downloading:
            done = event.get("completed")
            self.layers[str(digest)] = (done if isinstance(done, int) else 0, int(total))

    @property
    def percent(self) -> int:
        total = sum(t for _, t in self.layers.values())
        return 100 * sum(d for d, _ in self.layers.values()) // total if total else 0

    def line(self) -> str:
        """One line: the status, or the bytes so far of every layer while they download."""
        if not self.downloading:
            return self.status
        done = sum(d for d, _ in self.layers.values())
        total = sum(t for _, t in self.layers.values())
        return (f"downloading {len(self.layers)} layer(s): {_size(done)} / {_size(total)} "
                f"({self.percent}%)")


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"


def events(lines: Iterable[bytes | str]) -> Iterable[dict[str, Any]]:
    """The JSON objects of an NDJSON stream (blank lines skipped); PullError on one that
    is not JSON, or that carries Ollama's "error"."""
    for raw in lines:
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        if not text.strip():
            continue
        try:
            event = json.loads(text)
        except ValueError:
            raise PullError(f"answered a line that is not JSON: {text[:120]!r}") from None
        if not isinstance(event, dict):
            raise PullError(f"answered {text[:120]!r}, not a progress object")
        if event.get("error"):
            raise PullError(str(event["error"]))
        yield event


def pull(base_url: str, model: str, on_progress: Callable[[Progress], None],
         post: Callable[..., Any] = requests.post) -> Progress:
    """Pull `model` into the Ollama at `base_url`, calling `on_progress` on every line.
    PullError naming the server and the model when it fails."""
    url = base_url.rstrip("/") + "/api/pull"
    where = f"Ollama at {base_url}: pull {model}"
    progress = Progress()
    try:
        with post(url, json={"model": model, "stream": True}, stream=True,
                  timeout=(CONNECT_TIMEOUT, READ_TIMEOUT)) as r:
            if r.status_code != 200:
                raise PullError(f"{where}: HTTP {r.status_code}: {_error_of(r)}")
            for event in events(r.iter_lines()):
                progress.update(event)
                on_progress(progress)
    except PullError as exc:
        if str(exc).startswith(where):
            raise
        raise PullError(f"{where}: {exc}") from None
    except requests.ConnectionError:
        raise PullError(f"{where}: nothing answers there") from None
    except requests.Timeout:
        raise PullError(f"{where}: no progress for {READ_TIMEOUT:g}s") from None
    except requests.RequestException as exc:
        raise PullError(f"{where}: {type(exc).__name__}: {exc}") from None
    if progress.status != "success":
        raise PullError(f"{where}: the stream ended at {progress.status or 'nothing'!r}, "
                        "not 'success'")
    return progress


def _error_of(r: Any) -> str:
    try:
        body = r.json()
        return str(body.get("error") or body)[:300]
    except ValueError:
        return (r.text or "").strip()[:300] or r.reason or "no body"
