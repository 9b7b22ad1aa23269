"""The vLLM engine's sleep-mode client (switching/vllm.py) against a tiny HTTP server: the
requests it sends, how it drains, what its errors say."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from stackctl.switching.vllm import EngineError, VllmEngine


class FakeTime:
    def __init__(self):
        self.now, self.slept = 0.0, 0

    def clock(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.now += s
        self.slept += 1


def test_drain_waits_until_nothing_is_in_flight(monkeypatch):
    left = iter([3, 1, 0])
    monkeypatch.setattr(VllmEngine, "in_flight", lambda self, timeout=2.0: next(left))
    t = FakeTime()
    assert VllmEngine("m", "http://x").drain(5, clock=t.clock, sleep=t.sleep) == 0
    assert t.slept == 2


def test_drain_gives_up_at_its_deadline_and_says_how_many_are_left(monkeypatch):
    monkeypatch.setattr(VllmEngine, "in_flight", lambda self, timeout=2.0: 2)
    t = FakeTime()
    assert VllmEngine("m", "http://x").drain(1, clock=t.clock, sleep=t.sleep) == 2
    assert 1.0 <= t.now < 1.1


def test_drain_without_metrics_returns_at_once(monkeypatch):
    def no_metrics(self, timeout=2.0):
        raise EngineError("m: GET /metrics answered 404")
    monkeypatch.setattr(VllmEngine, "in_flight", no_metrics)
    t = FakeTime()
    assert VllmEngine("m", "http://x").drain(30, clock=t.clock, sleep=t.sleep) == 0
    assert t.slept == 0


@pytest.fixture
def server():
    """A tiny engine: `answers[path] = (status, body)`; every request is recorded."""
    answers: dict[str, tuple[int, str]] = {}
    seen: list[tuple[str, str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            n = int(self.headers.get("Content-Length") or 0)
            seen.append((self.command, self.path, self.rfile.read(n).decode()))
            status, body = answers.get(self.path.split("?")[0], (404, "Not Found"))
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _answer

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02},
                              daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", answers, seen
    httpd.shutdown()
    httpd.server_close()


def test_404_names_the_missing_dev_mode(server):
    url, _, _ = server
    with pytest.raises(EngineError) as exc:
        VllmEngine("vllm-qwen", url, timeout=5).sleep(1)
    text = str(exc.value)
    assert text.startswith("vllm-qwen: /sleep not found")
    assert "VLLM_SERVER_DEV_MODE=1" in text and "stackctl up" in text


def test_sleep_and_wake_requests(server):
    url, answers, seen = server
    for path in ("/sleep", "/wake_up", "/collective_rpc"):
        answers[path] = (200, "")
    eng = VllmEngine("m", url, timeout=5)
    eng.sleep(1)
    eng.wake(1)
    eng.wake(2)
    assert [(m, p) for m, p, _ in seen] == [
        ("POST", "/sleep?level=1&mode=wait"), ("POST", "/wake_up"),
        ("POST", "/wake_up?tags=weights"), ("POST", "/collective_rpc"),
        ("POST", "/wake_up?tags=kv_cache")]
    assert json.loads(seen[3][2]) == {"method": "reload_weights"}


def test_is_sleeping_in_flight_and_errors(server):
    url, answers, _ = server
    eng = VllmEngine("m", url, timeout=5)
    answers["/is_sleeping"] = (200, '{"is_sleeping": true}')
    assert eng.is_sleeping() is True
    answers["/is_sleeping"] = (200, "{}")
    with pytest.raises(EngineError, match="answered no is_sleeping"):
        eng.is_sleeping()
    answers["/metrics"] = (200, 'vllm:num_requests_running{model_name="m"} 2.0\n'
                                'vllm:num_requests_waiting{model_name="m"} 1.0\n'
                                'vllm:num_requests_swapped{model_name="m"} 9.0\n')
    assert eng.in_flight() == 3
    answers["/sleep"] = (500, "engine busy")
    with pytest.raises(EngineError, match=r"POST /sleep answered 500: engine busy"):
        eng.sleep(1)


def test_metrics_404_is_no_dev_mode_error_and_drain_returns(server):
    url, _, _ = server
    eng = VllmEngine("m", url, timeout=5)
    with pytest.raises(EngineError) as exc:
        eng.in_flight()
    assert "answered 404" in str(exc.value) and "DEV_MODE" not in str(exc.value)
    assert eng.drain(30) == 0


def test_warm_up_needs_a_completion(server):
    url, answers, seen = server
    eng = VllmEngine("m", url, timeout=5)
    answers["/v1/chat/completions"] = (200, '{"choices": [{"message": {}}]}')
    eng.warm_up("served-name")
    body = json.loads(seen[-1][2])
    assert body["model"] == "served-name" and body["max_tokens"] == 1
    answers["/v1/chat/completions"] = (200, '{"choices": []}')
    with pytest.raises(EngineError, match="warm-up request got no completion"):
        eng.warm_up("served-name")


def test_unreachable_engine_is_an_engine_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(EngineError, match=r"^m: POST /wake_up failed"):
        VllmEngine("m", f"http://127.0.0.1:{port}", timeout=2).wake(1)
