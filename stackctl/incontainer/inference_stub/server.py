"""The HTTP server (which connections are busy, for a graceful shutdown) and the plumbing
of its request handler: the log line, status and headers, chunked bodies, errors, models."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .log import log
from .settings import ollama_canonical

MAX_BODY_BYTES = 16 * 1024 * 1024


class RequestError(Exception):
    """Abort handling with an HTTP error (already formatted per route style)."""

    def __init__(self, status, message, etype=None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.etype = etype


class StubHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that knows which connections are serving a request.

    A connection counts as busy from accept() until its first request is
    answered, and again while any later (keep-alive) request is handled; idle
    keep-alive connections do not hold up shutdown.
    """

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address, runtime, handler):
        self.runtime = runtime
        self.draining = False
        self._cond = threading.Condition()
        self._busy = {}
        super().__init__(address, handler)

    def process_request(self, request, client_address):
        with self._cond:
            self._busy[request] = True
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self._cond:
            self._busy.pop(request, None)
            self._cond.notify_all()
        super().shutdown_request(request)

    def set_busy(self, request, busy):
        with self._cond:
            if request in self._busy:
                self._busy[request] = busy
            self._cond.notify_all()

    def in_flight(self):
        with self._cond:
            return sum(1 for busy in self._busy.values() if busy)

    def wait_idle(self, timeout):
        deadline = time.monotonic() + timeout
        with self._cond:
            while any(self._busy.values()):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True


class HandlerBase(BaseHTTPRequestHandler):
    """Plumbing every route uses: the log line, status and headers, bodies, errors, models.

    The routes themselves are mixed in by handler.StubHandler."""

    protocol_version = "HTTP/1.1"
    server_version = "inference-stub/1.0"
    sys_version = ""
    timeout = 120  # idle keep-alive connections are dropped after this

    def version_string(self):
        return self.server_version

    # ----------------------------------------------------------------- plumbing
    def handle_one_request(self):
        self._t0 = None
        self._status = None
        self._note = ""
        try:
            super().handle_one_request()
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True
            self._note = " (client disconnected)"
        finally:
            if self._t0 is not None and self._status is not None:
                ms = (time.monotonic() - self._t0) * 1000
                log(f"{self.command} {self.path} {self._status} {ms:.1f}ms{self._note}")
            self.server.set_busy(self.request, False)

    def parse_request(self):
        self.server.set_busy(self.request, True)
        self._t0 = time.monotonic()
        self._route = None
        self._model = None
        self._head = False
        return super().parse_request()

    def log_request(self, code="-", size="-"):
        pass  # one line per request is written by handle_one_request

    def log_message(self, format, *args):
        message = format % args
        if not message.startswith("Request timed out"):
            log(f"{self.address_string()} {message}")

    @property
    def settings(self):
        return self.server.runtime.settings

    @property
    def runtime(self):
        return self.server.runtime

    def _start(self, status, ctype, length=None, headers=()):
        """Send status line and headers; length None means a streamed body."""
        self._status = status
        if self._route is not None:
            self.runtime.record(self._route, self._model, status)
        self.send_response(status)
        if ctype:
            self.send_header("Content-Type", ctype)
        self._chunked = False
        if length is not None:
            self.send_header("Content-Length", str(length))
        elif self.request_version == "HTTP/1.1":
            self.send_header("Transfer-Encoding", "chunked")
            self._chunked = not self._head
        else:
            self.close_connection = True
        for key, value in headers:
            self.send_header(key, value)
        if self.server.draining or self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()

    def _send(self, status, body, ctype, headers=()):
        self._start(status, ctype, len(body), headers)
        if not self._head:
            self.wfile.write(body)

    def _send_json(self, status, obj, headers=()):
        body = json.dumps(obj).encode()
        self._send(status, body, "application/json", headers)

    def _write(self, data):
        if self._head:
            return
        if self._chunked:
            data = f"{len(data):X}\r\n".encode() + data + b"\r\n"
        self.wfile.write(data)

    def _end_stream(self):
        if self._chunked:
            self.wfile.write(b"0\r\n\r\n")

    def _pause(self, seconds):
        if seconds > 0:
            time.sleep(seconds)

    # ----------------------------------------------------------------- errors
    def _error_style(self):
        if self.settings.flavor == "vllm":
            return "openai"
        return "ollama-openai" if self._path.startswith("/v1/") else "ollama"

    def _send_error(self, status, message, etype=None, headers=()):
        style = self._error_style()
        if style == "ollama":
            body = {"error": message}
        elif style == "ollama-openai":
            kind = {400: "invalid_request_error", 404: "not_found_error"}.get(status, "api_error")
            body = {"error": {"message": message, "type": kind, "param": None, "code": None}}
        else:
            default = {
                400: "BadRequestError",
                404: "NotFoundError",
                413: "RequestEntityTooLarge",
                500: "InternalServerError",
                503: "ServiceUnavailableError",
            }.get(status, "Error")
            body = {
                "error": {
                    "message": message,
                    "type": etype or default,
                    "param": None,
                    "code": status,
                }
            }
        self._send_json(status, body, headers)

    def _no_route(self, allowed):
        if allowed:
            if self.settings.flavor == "vllm":
                return self._send_json(
                    405, {"detail": "Method Not Allowed"}, [("Allow", ", ".join(allowed))]
                )
            return self._send(
                405, b"405 method not allowed", "text/plain", [("Allow", ", ".join(allowed))]
            )
        if self.settings.flavor == "vllm":
            return self._send_json(404, {"detail": "Not Found"})
        return self._send(404, b"404 page not found", "text/plain")

    # ----------------------------------------------------------------- bodies
    def _read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks, total = [], 0
            while True:
                line = self.rfile.readline(1024)
                try:
                    size = int(line.split(b";")[0].strip(), 16)
                except ValueError:
                    raise RequestError(400, "malformed chunked request body") from None
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                total += size
                if total > MAX_BODY_BYTES:
                    raise RequestError(413, "request body too large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline(8)
        length = self.headers.get("Content-Length")
        if not length:
            return b""
        try:
            size = int(length)
        except ValueError:
            raise RequestError(400, "invalid Content-Length") from None
        if size < 0:
            raise RequestError(400, "invalid Content-Length")
        if size > MAX_BODY_BYTES:
            raise RequestError(413, "request body too large")
        return self.rfile.read(size)

    def _json_body(self):
        try:
            data = json.loads(self._body or b"")
        except (ValueError, UnicodeDecodeError) as exc:
            raise RequestError(400, f"invalid JSON body: {exc}") from None
        if not isinstance(data, dict):
            raise RequestError(400, "request body must be a JSON object")
        return data

    # ----------------------------------------------------------------- model helpers
    def _resolve_model(self, req):
        """Served model name for the request, or RequestError 400/404."""
        requested = req.get("model")
        if self.settings.flavor == "vllm":
            if requested is None:  # vLLM falls back to its (first) served model
                requested = self.settings.models[0]
            if not isinstance(requested, str):
                raise RequestError(400, "model must be a string")
            self._model = requested
            if requested not in self.settings.models:
                raise RequestError(404, f"The model `{requested}` does not exist.")
            return requested
        if not isinstance(requested, str) or not requested.strip():
            raise RequestError(400, "model is required")
        canonical = ollama_canonical(requested)
        self._model = canonical
        if canonical not in self.settings.models:
            raise RequestError(404, f'model "{requested}" not found, try pulling it first')
        return canonical

    def _maybe_fail(self):
        if self.runtime.should_fail():
            raise RequestError(500, "stub: injected error (STUB_ERROR_RATE / /stub/config)")
