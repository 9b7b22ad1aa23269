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


# --------------------------------------------------------------------------- vLLM metrics

PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


def vllm_reference_exposition(model):
    """/metrics of vLLM 0.11.0 restricted to the series the stub exports: the definitions of
    vllm/v1/metrics/loggers.py (PrometheusStatLogger) at that tag, registered with
    prometheus_client as vLLM does and written by prometheus_client (as vLLM's /metrics is)."""
    pc = pytest.importorskip("prometheus_client")
    registry = pc.CollectorRegistry()
    labelnames = ["model_name", "engine"]

    def metric(cls, name, doc, extra_labels=(), **kwargs):
        return cls(name=name, documentation=doc, labelnames=labelnames + list(extra_labels),
                   registry=registry, **kwargs)  # fmt: skip

    for name, doc in (
        ("vllm:num_requests_running", "Number of requests in model execution batches."),
        ("vllm:num_requests_waiting", "Number of requests waiting to be processed."),
        ("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage."),
    ):
        metric(pc.Gauge, name, doc).labels(model, "0")
    metric(pc.Counter, "vllm:prompt_tokens", "Number of prefill tokens processed.").labels(model, "0")
    metric(pc.Counter, "vllm:generation_tokens", "Number of generation tokens processed.").labels(
        model, "0"
    )
    success = metric(pc.Counter, "vllm:request_success", "Count of successfully processed requests.",
                     ["finished_reason"])  # fmt: skip
    for reason in ("stop", "length", "abort"):  # vllm.v1.engine.FinishReason
        success.labels(model, "0", reason)
    tokens = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000]  # build_1_2_5_buckets(4096)
    itl = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
           10.0, 20.0, 40.0, 80.0]  # fmt: skip
    latency = [0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0,
               120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0]  # fmt: skip
    for name, doc, buckets in (
        ("vllm:request_prompt_tokens", "Number of prefill tokens processed.", tokens),
        ("vllm:request_generation_tokens", "Number of generation tokens processed.", tokens),
        ("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.",
         [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
          10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0]),
        ("vllm:time_per_output_token_seconds", "Histogram of time per output token in seconds."
         "DEPRECATED: Use vllm:inter_token_latency_seconds instead.", itl),
        ("vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", itl),
        ("vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.",
         latency),
        ("vllm:request_queue_time_seconds",
         "Histogram of time spent in WAITING phase for request.", latency),
        ("vllm:request_inference_time_seconds",
         "Histogram of time spent in RUNNING phase for request.", latency),
        ("vllm:request_prefill_time_seconds",
         "Histogram of time spent in PREFILL phase for request.", latency),
        ("vllm:request_decode_time_seconds",
         "Histogram of time spent in DECODE phase for request.", latency),
    ):  # fmt: skip
        metric(pc.Histogram, name, doc, buckets=buckets).labels(model, "0")
    return pc.generate_latest(registry).decode()


def without_values(exposition):
    return [re.sub(r" \S+$", " <value>", line) if not line.startswith("#") else line
            for line in exposition.splitlines()]  # fmt: skip


class Scrape:
    """One GET /metrics, parsed by prometheus_client's own parser."""

    def __init__(self, stub, model):
        parser = pytest.importorskip("prometheus_client.parser")
        resp = requests.get(stub.url("/metrics"), timeout=2)
        assert resp.status_code == 200, resp.text
        assert resp.headers["Content-Type"] == PROMETHEUS_TEXT
        self.text = resp.text
        self.families = {f.name: f for f in parser.text_string_to_metric_families(resp.text)}
        self.samples = {
            (s.name, frozenset(s.labels.items())): s.value
            for f in self.families.values()
            for s in f.samples
        }
        self.model = model

    def __call__(self, name, **labels):
        labels = {"engine": "0", "model_name": self.model, **labels}
        return self.samples[(name, frozenset(labels.items()))]


def wait_scrape(stub, model, condition, timeout=3.0):
    deadline = time.monotonic() + timeout
    while True:
        scrape = Scrape(stub, model)
        if condition(scrape):
            return scrape
        assert time.monotonic() < deadline, f"metrics never matched:\n{scrape.text}\n{stub.log}"
        time.sleep(0.02)


def test_vllm_metrics_are_vllm_0_11_series(start_stub):
    stub = start_stub(STUB_MODELS="dolphin,dolphin-alias")
    scrape = Scrape(stub, "dolphin")
    # names, types, HELP, label sets, bucket bounds and layout exactly as vLLM's /metrics
    assert without_values(scrape.text) == without_values(vllm_reference_exposition("dolphin"))
    # vLLM labels every series with its first served name and the engine index
    labels = {(s.labels["model_name"], s.labels["engine"]) for f in scrape.families.values()
              for s in f.samples}  # fmt: skip
    assert labels == {("dolphin", "0")}
    types = {name: f.type for name, f in scrape.families.items() if not name.endswith("_created")}
    assert types["vllm:num_requests_running"] == "gauge"
    assert types["vllm:prompt_tokens"] == "counter"
    assert types["vllm:time_to_first_token_seconds"] == "histogram"
    assert scrape("vllm:request_success_total", finished_reason="abort") == 0
    # /metrics/ answers as well (vLLM mounts it as a sub-application)
    assert requests.get(stub.url("/metrics/"), timeout=2).status_code == 200


def test_vllm_metrics_count_the_requests_served(start_stub):
    stub = start_stub(STUB_MODELS="m", STUB_LATENCY_MS="300", STUB_TOKEN_DELAY_MS="10")
    url = stub.url("/v1/chat/completions")
    plain = requests.post(url, json=chat_body("m", "tell me a story please"), timeout=5).json()
    with requests.post(
        url,
        stream=True,
        timeout=5,
        json=chat_body("m", "one two", stream=True, max_tokens=4,
                       stream_options={"include_usage": True}),  # fmt: skip
    ) as resp:
        streamed = parse_sse(resp)[-2]["usage"]
    # requests that never reach the engine are not counted
    assert requests.post(url, json=chat_body("nope", "x"), timeout=5).status_code == 404
    requests.post(stub.url("/stub/config"), json={"error_rate": 1}, timeout=2)
    assert requests.post(url, json=chat_body("m", "x"), timeout=5).status_code == 500

    t0 = time.monotonic()
    scrape = Scrape(stub, "m")
    assert time.monotonic() - t0 < 0.25  # STUB_LATENCY_MS does not slow the scrape down
    usages = [plain["usage"], streamed]
    prompt = sum(u["prompt_tokens"] for u in usages)
    generated = sum(u["completion_tokens"] for u in usages)
    assert streamed["completion_tokens"] == 4
    assert scrape("vllm:prompt_tokens_total") == prompt
    assert scrape("vllm:generation_tokens_total") == generated
    assert scrape("vllm:request_success_total", finished_reason="stop") == 1
    assert scrape("vllm:request_success_total", finished_reason="length") == 1
    assert scrape("vllm:request_success_total", finished_reason="abort") == 0
    assert scrape("vllm:request_prompt_tokens_sum") == prompt
    assert scrape("vllm:request_generation_tokens_sum") == generated
    # both include the 300 ms: nothing at or below 0.25 s (TTFT) / 0.3 s (e2e, lowest bucket)
    for name, below in (("time_to_first_token", "0.25"), ("e2e_request_latency", "0.3")):
        assert scrape(f"vllm:{name}_seconds_count") == 2
        assert scrape(f"vllm:{name}_seconds_sum") >= 0.6
        assert scrape(f"vllm:{name}_seconds_bucket", le=below) == 0
        assert scrape(f"vllm:{name}_seconds_bucket", le="+Inf") == 2
    # one inter-token gap per streamed token after the first; the plain answer is one step
    for name in ("inter_token_latency", "time_per_output_token"):
        assert scrape(f"vllm:{name}_seconds_count") == 3
        assert 0.03 <= scrape(f"vllm:{name}_seconds_sum") < 1
    for phase in ("queue", "inference", "prefill", "decode"):
        assert scrape(f"vllm:request_{phase}_time_seconds_count") == 2
    assert scrape("vllm:num_requests_running") == 0
    assert scrape("vllm:num_requests_waiting") == 0
    assert scrape("vllm:kv_cache_usage_perc") == 0


@pytest.mark.parametrize(
    "env,prompt,usage_while_running",
    [
        ({"STUB_MAX_NUM_SEQS": "1"}, "short", 1 / 4096),  # no free sequence slot
        ({"STUB_KV_CACHE_TOKENS": "32"}, " ".join(["word"] * 20), 1.0),  # no free KV block
    ],
)
def test_vllm_metrics_running_waiting_and_kv_cache(start_stub, env, prompt, usage_while_running):
    stub = start_stub(STUB_MODELS="m", STUB_TOKEN_DELAY_MS="100", **env)
    url = stub.url("/v1/chat/completions")

    def stream(text):
        with requests.post(url, stream=True, timeout=10,
                           json=chat_body("m", text, stream=True)) as resp:  # fmt: skip
            return parse_sse(resp)

    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(stream, prompt)
        wait_scrape(stub, "m", lambda s: s("vllm:num_requests_running") == 1)
        second = pool.submit(stream, "next")
        scrape = wait_scrape(stub, "m", lambda s: s("vllm:num_requests_waiting") == 1)
        assert scrape("vllm:num_requests_running") == 1
        assert scrape("vllm:kv_cache_usage_perc") == pytest.approx(usage_while_running)
        assert first.result()[-1] == "[DONE]" and second.result()[-1] == "[DONE]"

    scrape = wait_scrape(stub, "m", lambda s: s("vllm:request_success_total",
                                                finished_reason="stop") == 2)  # fmt: skip
    assert scrape("vllm:num_requests_running") == 0
    assert scrape("vllm:num_requests_waiting") == 0
    assert scrape("vllm:kv_cache_usage_perc") == 0
    assert scrape("vllm:request_queue_time_seconds_sum") >= 0.3  # the second waited for the first


def test_vllm_metrics_count_a_client_that_hangs_up_as_abort(start_stub):
    stub = start_stub(STUB_MODELS="m", STUB_TOKEN_DELAY_MS="100")
    with requests.post(
        stub.url("/v1/chat/completions"),
        stream=True,
        timeout=5,
        json=chat_body("m", "one two three four five six", stream=True),
    ) as resp:
        next(line for line in resp.iter_lines() if line)
    scrape = wait_scrape(
        stub, "m", lambda s: s("vllm:request_success_total", finished_reason="abort") == 1
    )
    assert scrape("vllm:num_requests_running") == 0
    assert scrape("vllm:kv_cache_usage_perc") == 0
    assert scrape("vllm:request_success_total", finished_reason="stop") == 0


def test_metrics_settings_are_checked_and_ollama_has_no_metrics(start_stub):
    for bad in ({"STUB_MAX_NUM_SEQS": "0"}, {"STUB_KV_CACHE_TOKENS": "8"}):
        done = subprocess.run([PYTHON, str(STUB)], check=False, env=clean_env(**bad),
                              capture_output=True, text=True, timeout=10)  # fmt: skip
        assert done.returncode == 2 and next(iter(bad)) in done.stderr
    ollama = start_stub("ollama")
    resp = requests.get(ollama.url("/metrics"), timeout=2)
    assert resp.status_code == 404 and resp.text == "404 page not found"  # as Ollama


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
