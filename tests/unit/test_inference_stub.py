"""Behaviour of the stub inference server (tests/stub/inference_stub.py).

Every test starts the stub as a real subprocess on 127.0.0.1 (STUB_PORT=0, the
port is read from its "listening on" log line) and talks HTTP to it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

STUB = Path(__file__).resolve().parents[1] / "stub" / "inference_stub.py"
# The stub runs on the image's bare python3; INFERENCE_STUB_PYTHON=/usr/bin/python3 checks that.
PYTHON = os.environ.get("INFERENCE_STUB_PYTHON") or sys.executable
LISTEN_RE = re.compile(r"listening on 127\.0\.0\.1:(\d+)")


class StubProcess:
    def __init__(self, env, flavor):
        self.flavor = flavor
        self.lines = []
        self._cond = threading.Condition()
        self.proc = subprocess.Popen(
            [PYTHON, str(STUB)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        match = self.wait_log(LISTEN_RE, timeout=10)
        self.port = int(match.group(1))
        self.base = f"http://127.0.0.1:{self.port}"

    def _read(self):
        for line in self.proc.stderr:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    @property
    def log(self):
        with self._cond:
            return "\n".join(self.lines)

    def wait_log(self, pattern, timeout=5.0):
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines:
                    match = regex.search(line)
                    if match:
                        return match
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(f"no log line matching {regex.pattern!r}:\n{self.log}")
                self._cond.wait(min(remaining, 0.1))

    def url(self, path):
        return self.base + path

    @property
    def liveness(self):
        return "/health" if self.flavor == "vllm" else "/api/version"

    def wait_ready(self, timeout=5.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if requests.get(self.url(self.liveness), timeout=2).status_code == 200:
                return
            time.sleep(0.05)
        raise AssertionError(f"stub not ready after {timeout}s:\n{self.log}")

    def healthcheck(self, port=None):
        env = clean_env(STUB_FLAVOR=self.flavor, STUB_PORT=str(port or self.port))
        return run_healthcheck(env)


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("STUB_")}
    env.update(extra)
    return env


def run_healthcheck(env):
    done = subprocess.run(
        [PYTHON, str(STUB), "--healthcheck"],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=10,
    )
    return done.returncode


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    """Keep all test traffic on 127.0.0.1 even if the environment sets a proxy."""
    for var in ("http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
        monkeypatch.delenv(var.upper(), raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture
def start_stub():
    started = []

    def start(flavor="vllm", ready=True, **env):
        full = clean_env(
            STUB_FLAVOR=flavor,
            STUB_HOST="127.0.0.1",
            STUB_PORT="0",
            STUB_TOKEN_DELAY_MS="1",
            PYTHONUNBUFFERED="1",
        )
        full.update({k: str(v) for k, v in env.items()})
        stub = StubProcess(full, flavor)
        started.append(stub)
        if ready:
            stub.wait_ready()
        return stub

    yield start
    for stub in started:
        if stub.proc.poll() is None:
            stub.proc.kill()
        stub.proc.wait(timeout=5)


def chat_body(model, text, **extra):
    return {
        "model": model,
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": text}],
        **extra,
    }


def parse_sse(resp):
    """data payloads of an SSE response, in order (the [DONE] marker kept as a string)."""
    events = []
    for line in resp.iter_lines(decode_unicode=True):
        if not line:
            continue
        assert line.startswith("data: "), line
        payload = line[len("data: ") :]
        events.append(payload if payload == "[DONE]" else json.loads(payload))
    return events


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --------------------------------------------------------------------------- loading / health


def test_loading_answers_503_then_ready(start_stub):
    t0 = time.monotonic()
    stub = start_stub(ready=False, STUB_STARTUP_DELAY="0.8", STUB_MODELS="dolphin")
    stub.wait_log("loading")

    health = requests.get(stub.url("/health"), timeout=2)
    assert health.status_code == 503
    assert health.headers["Retry-After"] == "1"
    assert health.json()["error"]["code"] == 503
    assert requests.get(stub.url("/v1/models"), timeout=2).status_code == 503
    chat = requests.post(
        stub.url("/v1/chat/completions"), json=chat_body("dolphin", "hi"), timeout=2
    )
    assert chat.status_code == 503 and "error" in chat.json()
    # the control plane answers while loading
    assert requests.get(stub.url("/stub/stats"), timeout=2).json()["ready"] is False

    stub.wait_ready(timeout=5)
    assert time.monotonic() - t0 >= 0.7
    health = requests.get(stub.url("/health"), timeout=2)
    assert health.status_code == 200 and health.content == b""
    stub.wait_log(r"ready")
    assert re.search(r"GET /health 503 \d+\.\d+ms", stub.log)
    assert re.search(r"GET /health 200 \d+\.\d+ms", stub.log)


def test_never_ready_and_healthcheck_exit_codes(start_stub):
    stub = start_stub(ready=False, STUB_NEVER_READY="1")
    stub.wait_log(r"never ready \(STUB_NEVER_READY=1\)")
    assert requests.get(stub.url("/health"), timeout=2).status_code == 503
    assert stub.healthcheck() == 1

    # forcing readiness through the control API flips /health and the healthcheck
    assert (
        requests.post(stub.url("/stub/config"), json={"ready": True}, timeout=2).json()["ready"]
        is True
    )
    assert requests.get(stub.url("/health"), timeout=2).status_code == 200
    assert stub.healthcheck() == 0

    ollama = start_stub("ollama")
    assert ollama.healthcheck() == 0
    assert run_healthcheck(clean_env(STUB_PORT=str(free_port()))) == 1  # nobody listening


# --------------------------------------------------------------------------- vLLM flavor


def test_vllm_model_list(start_stub):
    stub = start_stub(STUB_MODELS="dolphin, qwen-coder", STUB_NAME="vllm-dolphin")
    body = requests.get(stub.url("/v1/models"), timeout=2).json()
    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == ["dolphin", "qwen-coder"]
    for model in body["data"]:
        assert model["object"] == "model"
        assert model["owned_by"] == "vllm"
        assert model["root"] == model["id"]
        assert model["max_model_len"] == 4096
        assert isinstance(model["created"], int)


def test_vllm_chat_non_stream_and_stream_agree(start_stub):
    stub = start_stub(STUB_MODELS="dolphin", STUB_NAME="vllm-dolphin")
    question = "Explain the difference between TCP and UDP in one paragraph please"
    resp = requests.post(
        stub.url("/v1/chat/completions"), json=chat_body("dolphin", question), timeout=5
    )
    assert resp.status_code == 200
    body = resp.json()
    assert body["id"].startswith("chatcmpl-")
    assert body["object"] == "chat.completion"
    assert body["model"] == "dolphin"
    choice = body["choices"][0]
    assert choice["finish_reason"] == "stop"
    assert choice["message"]["role"] == "assistant"
    content = choice["message"]["content"]
    assert content == f"[stub vllm-dolphin] reply to: {question[:40].rstrip()}"
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]

    with requests.post(
        stub.url("/v1/chat/completions"),
        stream=True,
        timeout=5,
        json=chat_body("dolphin", question, stream=True, stream_options={"include_usage": True}),
    ) as resp:
        assert resp.status_code == 200
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        events = parse_sse(resp)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    usage_chunk = chunks[-1]
    assert usage_chunk["choices"] == [] and usage_chunk["usage"]["completion_tokens"] > 0
    final = chunks[-2]["choices"][0]
    assert final["finish_reason"] == "stop"
    deltas = [c["choices"][0]["delta"].get("content") or "" for c in chunks[1:-2]]
    assert len(deltas) > 5  # word by word
    assert "".join(deltas) == content
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-2])


def test_vllm_stream_without_usage_and_completions_route(start_stub):
    stub = start_stub(STUB_MODELS="dolphin", STUB_NAME="vllm-x")
    with requests.post(
        stub.url("/v1/chat/completions"),
        stream=True,
        timeout=5,
        json=chat_body("dolphin", "hello", stream=True),
    ) as resp:
        events = parse_sse(resp)
    assert events[-1] == "[DONE]"
    assert all("usage" not in e for e in events[:-1])

    resp = requests.post(
        stub.url("/v1/completions"), timeout=5, json={"model": "dolphin", "prompt": "def fib(n):"}
    )
    body = resp.json()
    assert body["object"] == "text_completion" and body["id"].startswith("cmpl-")
    assert body["choices"][0]["text"] == "[stub vllm-x] reply to: def fib(n):"

    with requests.post(
        stub.url("/v1/completions"),
        stream=True,
        timeout=5,
        json={"model": "dolphin", "prompt": "def fib(n):", "stream": True, "max_tokens": 3},
    ) as resp:
        events = parse_sse(resp)
    assert events[-1] == "[DONE]"
    text = "".join(e["choices"][0]["text"] for e in events[:-1])
    assert text == "[stub vllm-x] reply"
    assert events[-2]["choices"][0]["finish_reason"] == "length"


def test_vllm_max_tokens_caps_words(start_stub):
    stub = start_stub(STUB_MODELS="m")
    body = requests.post(
        stub.url("/v1/chat/completions"),
        timeout=5,
        json=chat_body("m", "one two three four", max_tokens=2),
    ).json()
    assert body["choices"][0]["message"]["content"] == "[stub vllm-stub]"
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 2
    bad = requests.post(
        stub.url("/v1/chat/completions"), timeout=5, json=chat_body("m", "x", max_tokens=0)
    )
    assert bad.status_code == 400


def test_vllm_errors_unknown_model_bad_json_unknown_route(start_stub):
    stub = start_stub(STUB_MODELS="dolphin")
    for stream in (False, True):
        resp = requests.post(
            stub.url("/v1/chat/completions"),
            timeout=5,
            json=chat_body("gpt-4o", "hi", stream=stream),
        )
        assert resp.status_code == 404
        error = resp.json()["error"]
        assert error["message"] == "The model `gpt-4o` does not exist."
        assert error["type"] == "NotFoundError" and error["code"] == 404

    resp = requests.post(
        stub.url("/v1/chat/completions"),
        data=b"{not json",
        headers={"Content-Type": "application/json"},
        timeout=5,
    )
    assert resp.status_code == 400 and resp.json()["error"]["code"] == 400
    assert (
        requests.post(
            stub.url("/v1/chat/completions"), json={"model": "dolphin"}, timeout=5
        ).status_code
        == 400
    )
    assert requests.get(stub.url("/v1/nothing"), timeout=5).status_code == 404
    assert requests.get(stub.url("/v1/chat/completions"), timeout=5).status_code == 405


# --------------------------------------------------------------------------- Ollama flavor


def test_ollama_native_routes(start_stub):
    stub = start_stub("ollama", STUB_MODELS="qwen2.5-coder:7b,llama3", STUB_NAME="ollama-cpu")
    root = requests.get(stub.url("/"), timeout=2)
    assert root.status_code == 200 and root.text == "Ollama is running"
    assert requests.get(stub.url("/api/version"), timeout=2).json()["version"].startswith("0.12.")

    tags = requests.get(stub.url("/api/tags"), timeout=2).json()["models"]
    assert [m["name"] for m in tags] == ["qwen2.5-coder:7b", "llama3:latest"]
    for model in tags:
        assert model["model"] == model["name"]
        assert re.fullmatch(r"[0-9a-f]{64}", model["digest"])
        assert model["size"] > 0 and model["modified_at"].endswith("Z")
        assert model["details"]["format"] == "gguf"

    body = requests.post(
        stub.url("/api/chat"),
        timeout=5,
        json={
            "model": "qwen2.5-coder:7b",
            "stream": False,
            "messages": [{"role": "user", "content": "write a haiku"}],
        },
    ).json()
    assert body["done"] is True and body["done_reason"] == "stop"
    assert body["message"] == {
        "role": "assistant",
        "content": "[stub ollama-cpu] reply to: write a haiku",
    }
    assert body["eval_count"] == 7 and body["prompt_eval_count"] >= 1
    assert body["total_duration"] > 0

    # stream defaults to true: newline-delimited JSON, last object done with counts
    with requests.post(
        stub.url("/api/chat"),
        stream=True,
        timeout=5,
        json={"model": "llama3", "messages": [{"role": "user", "content": "write a haiku"}]},
    ) as resp:
        assert resp.headers["Content-Type"] == "application/x-ndjson"
        objs = [json.loads(line) for line in resp.iter_lines() if line]
    assert len(objs) > 3
    assert all(o["done"] is False for o in objs[:-1]) and objs[-1]["done"] is True
    assert objs[-1]["eval_count"] == len(objs) - 1
    assert {o["model"] for o in objs} == {"llama3:latest"}
    assert (
        "".join(o["message"]["content"] for o in objs)
        == "[stub ollama-cpu] reply to: write a haiku"
    )

    with requests.post(
        stub.url("/api/generate"),
        stream=True,
        timeout=5,
        json={
            "model": "llama3:latest",
            "prompt": "why is the sky blue",
            "options": {"num_predict": 3},
        },
    ) as resp:
        objs = [json.loads(line) for line in resp.iter_lines() if line]
    assert "".join(o["response"] for o in objs) == "[stub ollama-cpu] reply"
    assert objs[-1]["done_reason"] == "length"

    missing = requests.post(
        stub.url("/api/chat"),
        timeout=5,
        json={"model": "mistral", "messages": [{"role": "user", "content": "x"}]},
    )
    assert missing.status_code == 404
    assert missing.json() == {"error": 'model "mistral" not found, try pulling it first'}


def test_ollama_openai_compat(start_stub):
    stub = start_stub("ollama", STUB_MODELS="qwen2.5-coder:7b", STUB_NAME="ollama-a")
    models = requests.get(stub.url("/v1/models"), timeout=2).json()
    assert models["object"] == "list"
    assert [(m["id"], m["owned_by"]) for m in models["data"]] == [("qwen2.5-coder:7b", "library")]

    body = requests.post(
        stub.url("/v1/chat/completions"), timeout=5, json=chat_body("qwen2.5-coder:7b", "hello")
    ).json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["content"] == "[stub ollama-a] reply to: hello"

    with requests.post(
        stub.url("/v1/chat/completions"),
        stream=True,
        timeout=5,
        json=chat_body("qwen2.5-coder:7b", "hello", stream=True),
    ) as resp:
        events = parse_sse(resp)
    assert events[-1] == "[DONE]"
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events[:-1])
    assert text == "[stub ollama-a] reply to: hello"

    missing = requests.post(
        stub.url("/v1/chat/completions"), timeout=5, json=chat_body("nope", "hello")
    )
    assert missing.status_code == 404
    assert "not found" in missing.json()["error"]["message"]


# --------------------------------------------------------------------------- control plane


def test_error_injection_latency_and_stats(start_stub):
    stub = start_stub(STUB_MODELS="a,b")
    url = stub.url("/v1/chat/completions")
    assert requests.post(url, json=chat_body("a", "x"), timeout=5).status_code == 200

    cfg = requests.post(stub.url("/stub/config"), json={"error_rate": 1.0}, timeout=2)
    assert cfg.status_code == 200 and cfg.json()["error_rate"] == 1.0
    failed = requests.post(url, json=chat_body("b", "x"), timeout=5)
    assert failed.status_code == 500
    assert failed.json()["error"]["code"] == 500
    assert requests.get(stub.url("/v1/models"), timeout=2).status_code == 200  # not a completion
    assert requests.get(stub.url("/health"), timeout=2).status_code == 200

    requests.post(stub.url("/stub/config"), json={"error_rate": 0, "latency_ms": 500}, timeout=2)
    t0 = time.monotonic()
    assert requests.post(url, json=chat_body("b", "x"), timeout=5).status_code == 200
    assert time.monotonic() - t0 >= 0.5
    t0 = time.monotonic()
    requests.get(stub.url("/health"), timeout=2)
    assert time.monotonic() - t0 < 0.4  # liveness is not slowed down

    for bad in ({"error_rate": 2}, {"latency_ms": -1}, {"nope": 1}):
        assert requests.post(stub.url("/stub/config"), json=bad, timeout=2).status_code == 400

    stats = requests.get(stub.url("/stub/stats"), timeout=2).json()
    assert stats["routes"]["POST /v1/chat/completions"] == 3
    assert stats["routes"]["GET /health"] >= 2
    assert stats["models"] == {"a": 1, "b": 2}
    assert stats["statuses"]["500"] == 1
    assert not any(route.startswith("/stub") or "/stub/" in route for route in stats["routes"])

    reset = requests.delete(stub.url("/stub/stats"), timeout=2).json()
    assert reset["requests_total"] == 0


def test_error_rate_from_environment(start_stub):
    stub = start_stub(STUB_MODELS="m", STUB_ERROR_RATE="1")
    assert (
        requests.post(
            stub.url("/v1/completions"), json={"model": "m", "prompt": "x"}, timeout=5
        ).status_code
        == 500
    )


def test_concurrent_streams_are_served_in_parallel(start_stub):
    stub = start_stub(STUB_MODELS="m", STUB_TOKEN_DELAY_MS="40")

    def one(i):
        with requests.post(
            stub.url("/v1/chat/completions"),
            stream=True,
            timeout=10,
            json=chat_body("m", f"request {i}", stream=True),
        ) as resp:
            return parse_sse(resp)

    t0 = time.monotonic()
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(one, range(6)))
    elapsed = time.monotonic() - t0
    assert all(r[-1] == "[DONE]" for r in results)
    per_stream = 0.04 * (len(results[0]) - 2)
    assert elapsed < 4 * per_stream  # sequential serving would take 6x


def test_bad_configuration_exits_2():
    done = subprocess.run(
        [PYTHON, str(STUB)],
        check=False,
        env=clean_env(STUB_FLAVOR="tgi"),
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert done.returncode == 2
    assert "STUB_FLAVOR" in done.stderr


# --------------------------------------------------------------------------- shutdown


def test_sigterm_lets_inflight_stream_finish_then_exits_0(start_stub):
    stub = start_stub(STUB_MODELS="m", STUB_NAME="vllm-old", STUB_TOKEN_DELAY_MS="100")
    question = "one two three four five six seven eight"
    with requests.post(
        stub.url("/v1/chat/completions"),
        stream=True,
        timeout=10,
        json=chat_body("m", question, stream=True),
    ) as resp:
        lines = resp.iter_lines(decode_unicode=True)
        first = next(line for line in lines if line)
        assert json.loads(first[len("data: ") :])["choices"][0]["delta"]["role"] == "assistant"
        stub.proc.send_signal(signal.SIGTERM)
        stub.wait_log(r"SIGTERM received.*1 in-flight")

        # new connections are refused while the stream keeps going
        deadline = time.monotonic() + 2
        while True:
            try:
                requests.get(stub.url("/health"), timeout=1)
            except requests.ConnectionError:
                break
            assert time.monotonic() < deadline, "stub still accepts connections after SIGTERM"
            time.sleep(0.05)
        assert stub.proc.poll() is None, "exited before the stream finished"

        rest = [line for line in lines if line]
    assert rest[-1] == "data: [DONE]"
    chunks = [json.loads(line[len("data: ") :]) for line in rest[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert text == f"[stub vllm-old] reply to: {question}"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert stub.proc.wait(timeout=5) == 0
    stub.wait_log("shutdown complete")


def test_sigint_with_idle_keepalive_connection_exits_promptly(start_stub):
    stub = start_stub("ollama")
    with requests.Session() as session:  # leaves an idle keep-alive connection open
        assert session.get(stub.url("/api/tags"), timeout=2).status_code == 200
        t0 = time.monotonic()
        stub.proc.send_signal(signal.SIGINT)
        assert stub.proc.wait(timeout=5) == 0
        assert time.monotonic() - t0 < 2


# --------------------------------------------------------------------------- OpenAI SDK


@pytest.mark.parametrize("flavor,model", [("vllm", "dolphin"), ("ollama", "qwen2.5-coder:7b")])
def test_openai_python_client(start_stub, flavor, model):
    openai = pytest.importorskip("openai")
    stub = start_stub(flavor, STUB_MODELS=model, STUB_NAME=f"{flavor}-sdk")
    client = openai.OpenAI(base_url=stub.url("/v1"), api_key="stub", max_retries=0, timeout=5)

    assert [m.id for m in client.models.list()] == [model]
    reply = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "ping"}]
    )
    assert reply.choices[0].message.content == f"[stub {flavor}-sdk] reply to: ping"
    assert reply.usage.total_tokens > 0

    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "ping"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    parts, usage = [], None
    for chunk in stream:
        if chunk.choices:
            parts.append(chunk.choices[0].delta.content or "")
        if chunk.usage:
            usage = chunk.usage
    assert "".join(parts) == f"[stub {flavor}-sdk] reply to: ping"
    assert usage is not None and usage.completion_tokens == 5

    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="missing", messages=[{"role": "user", "content": "x"}])
