"""Mutable state shared by the request threads: readiness, runtime config, stats."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter

from .gpu import SimulatedGpu
from .handler import DEV_ROUTES, ROUTES
from .log import log
from .metrics import VllmMetrics
from .sleep import SleepEngine


class Runtime:
    """Mutable state shared by all request threads."""

    CONFIG_KEYS = ("latency_ms", "error_rate", "token_delay_ms", "ready")

    def __init__(self, settings):
        self.settings = settings
        self.lock = threading.Lock()
        self.latency_ms = settings.latency_ms
        self.error_rate = settings.error_rate
        self.token_delay_ms = settings.token_delay_ms
        self.ready = threading.Event()
        self.started = time.time()
        self._timer = None
        self.metrics = (
            VllmMetrics(settings.models[0], settings.max_num_seqs, settings.kv_cache_tokens)
            if settings.flavor == "vllm"
            else None
        )
        self.gpu = SimulatedGpu(settings)
        self.engine = (
            SleepEngine(settings, self.gpu, self.metrics) if settings.flavor == "vllm" else None
        )
        self.route_table = dict(ROUTES[settings.flavor])
        if settings.dev_mode:
            self.route_table.update(DEV_ROUTES)
        self.reset_stats()

    # loading -------------------------------------------------------------
    def begin_loading(self):
        s = self.settings
        if s.never_ready:
            log("loading... never ready (STUB_NEVER_READY=1): every route answers 503")
            return
        if s.startup_delay <= 0:
            self._mark_ready()
            return
        log(f"loading... (STUB_STARTUP_DELAY={s.startup_delay:g}s): answering 503 until ready")
        self._timer = threading.Timer(s.startup_delay, self._mark_ready)
        self._timer.daemon = True
        self._timer.start()

    def _mark_ready(self):
        self.ready.set()
        log(f"ready: flavor={self.settings.flavor} models={','.join(self.settings.models)}")

    def cancel_loading(self):
        if self._timer is not None:
            self._timer.cancel()

    # runtime config ------------------------------------------------------
    def config(self):
        with self.lock:
            return {
                "latency_ms": self.latency_ms,
                "error_rate": self.error_rate,
                "token_delay_ms": self.token_delay_ms,
                "ready": self.ready.is_set(),
            }

    def update_config(self, data):
        """Apply a /stub/config body; returns an error message or None."""
        if not isinstance(data, dict):
            return "body must be a JSON object"
        unknown = sorted(set(data) - set(self.CONFIG_KEYS))
        if unknown:
            return f"unknown key(s) {unknown}; allowed: {list(self.CONFIG_KEYS)}"
        numbers = {}
        for key in ("latency_ms", "error_rate", "token_delay_ms"):
            if key not in data:
                continue
            value = data[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                return f"{key} must be a number >= 0"
            if key == "error_rate" and value > 1:
                return "error_rate must be between 0 and 1"
            numbers[key] = float(value)
        if "ready" in data and not isinstance(data["ready"], bool):
            return "ready must be true or false"
        with self.lock:
            for key, value in numbers.items():
                setattr(self, key, value)
        if data.get("ready") is True and not self.ready.is_set():
            self.cancel_loading()
            self._mark_ready()
        elif data.get("ready") is False and self.ready.is_set():
            self.ready.clear()
            log("not ready (set via /stub/config): answering 503")
        return None

    def latency(self):
        with self.lock:
            return self.latency_ms / 1000.0

    def token_delay(self):
        with self.lock:
            return self.token_delay_ms / 1000.0

    def should_fail(self):
        with self.lock:
            rate = self.error_rate
        return rate > 0 and random.random() < rate

    # stats ---------------------------------------------------------------
    def reset_stats(self):
        with self.lock:
            self.total = 0
            self.routes = Counter()
            self.models = Counter()
            self.statuses = Counter()

    def record(self, route, model, status):
        with self.lock:
            self.total += 1
            self.routes[route] += 1
            if model is not None:
                self.models[model] += 1
            self.statuses[str(status)] += 1

    def stats(self, in_flight):
        with self.lock:
            return {
                "name": self.settings.name,
                "flavor": self.settings.flavor,
                "ready": self.ready.is_set(),
                "uptime_s": round(time.time() - self.started, 3),
                "in_flight": in_flight,
                "requests_total": self.total,
                "routes": dict(self.routes),
                "models": dict(self.models),
                "statuses": dict(self.statuses),
            }
