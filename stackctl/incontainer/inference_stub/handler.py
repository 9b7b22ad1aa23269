"""The request handler: the routes of every API mixed into one class, the dispatch and
the route tables."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from .log import log
from .ollama_api import OllamaApi
from .openai_api import OpenAIApi
from .server import HandlerBase, RequestError
from .vllm_api import VllmApi


class StubHandler(OpenAIApi, OllamaApi, VllmApi, HandlerBase):
    """Routes to the handlers of the flavor (see ROUTES); /stub/* are the stub's own."""

    # ----------------------------------------------------------------- dispatch
    def do_GET(self):
        self._dispatch("GET")

    def do_HEAD(self):
        self._dispatch("HEAD")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def do_PATCH(self):
        self._dispatch("PATCH")

    def do_OPTIONS(self):
        self._dispatch("OPTIONS")

    def _dispatch(self, method):
        path = urlsplit(self.path).path
        if len(path) > 1:
            path = path.rstrip("/")
        self._path = path
        self._head = method == "HEAD"
        lookup = "GET" if self._head else method
        try:
            self._body = self._read_body()
        except RequestError as exc:
            self.close_connection = True
            return self._send_error(exc.status, exc.message)

        if path.startswith("/stub/"):
            handler = CONTROL_ROUTES.get(path, {}).get(lookup)
            if handler is None:
                return self._no_route(sorted(CONTROL_ROUTES.get(path, {})))
            return handler(self)

        table = self.runtime.route_table
        entry = table.get(path, {})
        handler, kind = entry.get(lookup, (None, None))
        self._route = f"{lookup} {path}" if handler else "unmatched"

        if not self.runtime.ready.is_set():
            return self._send_error(
                503,
                "Loading model: the stub inference server is not ready yet",
                headers=[("Retry-After", "1")],
            )
        if handler is None:
            return self._no_route(sorted(entry))
        if kind == "api":
            self._pause(self.runtime.latency())
        try:
            handler(self)
        except RequestError as exc:
            self._send_error(exc.status, exc.message, exc.etype)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            raise
        except Exception as exc:  # a bug in the stub: answer 500 rather than hang up
            log(f"internal error in {method} {path}: {exc!r}")
            if self._status is not None:  # already streaming: just drop the connection
                raise
            self._send_error(500, f"stub internal error: {exc!r}")

    # ----------------------------------------------------------------- /stub control
    def h_stub_gpu(self):
        self._send_json(200, self.runtime.gpu.snapshot())

    def h_stub_config_get(self):
        self._send_json(200, self.runtime.config())

    def h_stub_config_post(self):
        try:
            data = self._json_body()
        except RequestError as exc:
            return self._send_json(400, {"error": exc.message})
        problem = self.runtime.update_config(data)
        if problem:
            return self._send_json(400, {"error": problem})
        config = self.runtime.config()
        log(f"config updated: {json.dumps(config, sort_keys=True)}")
        self._send_json(200, config)

    def h_stub_stats(self):
        self._send_json(200, self.runtime.stats(self.server.in_flight()))

    def h_stub_stats_reset(self):
        self.runtime.reset_stats()
        self._send_json(200, self.runtime.stats(self.server.in_flight()))


H = StubHandler
ROUTES = {
    "vllm": {
        "/health": {"GET": (H.h_health, "liveness")},
        "/v1/models": {"GET": (H.h_openai_models, "api")},
        "/v1/chat/completions": {"POST": (H.h_openai_chat, "api")},
        "/v1/completions": {"POST": (H.h_openai_completions, "api")},
        "/metrics": {"GET": (H.h_metrics, "metrics")},
    },
    "ollama": {
        "/": {"GET": (H.h_ollama_root, "liveness")},
        "/api/version": {"GET": (H.h_ollama_version, "liveness")},
        "/api/tags": {"GET": (H.h_ollama_tags, "api")},
        "/api/chat": {"POST": (H.h_ollama_chat, "api")},
        "/api/generate": {"POST": (H.h_ollama_generate, "api")},
        "/v1/models": {"GET": (H.h_openai_models, "api")},
        "/v1/chat/completions": {"POST": (H.h_openai_chat, "api")},
        "/v1/completions": {"POST": (H.h_openai_completions, "api")},
    },
}
DEV_ROUTES = {  # vllm flavor with VLLM_SERVER_DEV_MODE=1 only
    "/sleep": {"POST": (H.h_sleep, "dev")},
    "/wake_up": {"POST": (H.h_wake_up, "dev")},
    "/is_sleeping": {"GET": (H.h_is_sleeping, "dev")},
    "/collective_rpc": {"POST": (H.h_collective_rpc, "dev")},
}
CONTROL_ROUTES = {
    "/stub/gpu": {"GET": H.h_stub_gpu},
    "/stub/config": {"GET": H.h_stub_config_get, "POST": H.h_stub_config_post},
    "/stub/stats": {"GET": H.h_stub_stats, "DELETE": H.h_stub_stats_reset},
}
LIVENESS_PATH = {"vllm": "/health", "ollama": "/api/version"}
