"""vLLM's own routes: /health, /metrics and the dev-mode routes of sleep mode (/sleep,
/wake_up, /is_sleeping, /collective_rpc)."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from urllib.parse import parse_qs, urlsplit

from .log import log
from .metrics import PROMETHEUS_CONTENT_TYPE
from .server import RequestError
from .sleep import SLEEP_MODES, EngineDied


class VllmApi:
    """vLLM's routes besides the OpenAI API (mixed into handler.StubHandler)."""

    # ----------------------------------------------------------------- liveness routes
    def h_health(self):
        self._send(200, b"", None)  # vLLM: 200, empty body

    def h_metrics(self):
        self._send(200, self.runtime.metrics.exposition(), PROMETHEUS_CONTENT_TYPE)

    # ----------------------------------------------------------------- vLLM dev routes
    def _query(self):
        return parse_qs(urlsplit(self.path).query, keep_blank_values=True)

    def h_sleep(self):
        query = self._query()
        raw_level = query.get("level", ["1"])[-1]
        mode = query.get("mode", ["abort"])[-1]
        try:
            level = int(raw_level)
        except ValueError:
            raise RequestError(400, f"level must be 1 or 2, got {raw_level!r}") from None
        if level not in (1, 2):
            raise RequestError(400, f"level must be 1 or 2, got {raw_level!r}")
        if mode not in SLEEP_MODES:
            raise RequestError(400, f"mode must be one of {', '.join(SLEEP_MODES)}, got {mode!r}")
        self.runtime.engine.sleep(level, mode)
        self._send(200, b"", None)  # vLLM 0.11: 200, empty body

    def h_wake_up(self):
        tags = self._query().get("tags", [])
        try:
            self.runtime.engine.wake_up(tags)
        except EngineDied as exc:
            for line in str(exc).splitlines():
                log(line)
            log("EngineCore died (stub: CUDA out of memory on wake_up); exiting with status 1")
            self._send_error(500, str(exc), "InternalServerError")
            with contextlib.suppress(OSError):
                self.wfile.flush()
            sys.stderr.flush()
            os._exit(1)
        self._send(200, b"", None)

    def h_is_sleeping(self):
        self._send_json(200, {"is_sleeping": self.runtime.engine.is_sleeping()})

    def h_collective_rpc(self):
        try:
            body = json.loads(self._body or b"")
        except (ValueError, UnicodeDecodeError) as exc:
            raise RequestError(400, f"JSON decode error: {exc}") from None
        method = body.get("method") if isinstance(body, dict) else None
        if method is None:
            raise RequestError(400, "Missing 'method' in request body")
        if method != "reload_weights":
            raise RequestError(500, f"stub: collective_rpc method {method!r} is not simulated "
                                    "(only reload_weights)")  # fmt: skip
        self.runtime.engine.reload_weights()
        self._send(200, b"", None)
