"""Behaviour of the stub inference server (the package stackctl/incontainer/inference_stub).

Every test starts the stub as a real subprocess on 127.0.0.1 (STUB_PORT=0, the
port is read from its "listening on" log line) and talks HTTP to it. It runs as the image
runs it: `python3 -m inference_stub`, the package's parent folder on PYTHONPATH.
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

import pytest
import requests

from tests.paths import REPO

STUB_PACKAGE = REPO / "stackctl" / "incontainer" / "inference_stub"
# The stub runs on the image's bare python3; INFERENCE_STUB_PYTHON=/usr/bin/python3 checks that.
PYTHON = os.environ.get("INFERENCE_STUB_PYTHON") or sys.executable
STUB = [PYTHON, "-m", STUB_PACKAGE.name]  # with PYTHONPATH=STUB_PACKAGE.parent (clean_env)
LISTEN_RE = re.compile(r"listening on 127\.0\.0\.1:(\d+)")


class StubProcess:
    def __init__(self, env, flavor, args=()):
        self.flavor = flavor
        self.lines = []
        self._cond = threading.Condition()
        self.proc = subprocess.Popen(
            [*STUB, *args],
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
    env["PYTHONPATH"] = str(STUB_PACKAGE.parent)
    env.update(extra)
    return env


def run_healthcheck(env):
    done = subprocess.run(
        [*STUB, "--healthcheck"],
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

    def start(flavor="vllm", ready=True, args=(), **env):
        full = clean_env(
            STUB_FLAVOR=flavor,
            STUB_HOST="127.0.0.1",
            STUB_PORT="0",
            STUB_TOKEN_DELAY_MS="1",
            PYTHONUNBUFFERED="1",
        )
        full.update({k: str(v) for k, v in env.items()})
        stub = StubProcess(full, flavor, args)
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
    # each access line is written once its answer has gone: wait for it, do not race it
    stub.wait_log(r"GET /health 503 \d+\.\d+ms")
    stub.wait_log(r"GET /health 200 \d+\.\d+ms")


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
    ):
        metric(pc.Gauge, name, doc).labels(model, "0")
    sleep_state = metric(pc.Gauge, "vllm:engine_sleep_state",
                         "Engine sleep state; awake = 0 means engine is sleeping; "
                         "awake = 1 means engine is awake; "
                         "weights_offloaded = 1 means sleep level 1; "
                         "discard_all = 1 means sleep level 2.", ["sleep_state"])  # fmt: skip
    for state in ("awake", "weights_offloaded", "discard_all"):
        sleep_state.labels(model, "0", state)
    metric(pc.Gauge, "vllm:kv_cache_usage_perc",
           "KV-cache usage. 1 means 100 percent usage.").labels(model, "0")  # fmt: skip
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
        done = subprocess.run(STUB, check=False, env=clean_env(**bad),
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
        STUB,
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


# --------------------------------------------------------------------------- vLLM sleep mode

SLEEP_ENV = {
    "VLLM_SERVER_DEV_MODE": "1",
    "STUB_SLEEP_SECONDS": "0.2",
    "STUB_WAKE_SECONDS": "0.05",
    "STUB_RELOAD_SECONDS": "0.05",
    "STUB_MODELS": "m",
    "STUB_NAME": "sleeper",
}
SLEEP_MODE = ("--enable-sleep-mode",)
NORMAL_TEXT = "[stub sleeper] reply to:"


def post(stub, path, **kwargs):
    return requests.post(stub.url(path), timeout=10, **kwargs)


def is_sleeping(stub):
    resp = requests.get(stub.url("/is_sleeping"), timeout=5)
    assert resp.status_code == 200, resp.text
    return resp.json()["is_sleeping"]


def sleep_state(stub):
    """(awake, weights_offloaded, discard_all) of vllm:engine_sleep_state."""
    scrape = Scrape(stub, "m")
    return tuple(scrape("vllm:engine_sleep_state", sleep_state=state)
                 for state in ("awake", "weights_offloaded", "discard_all"))  # fmt: skip


def chat_text(resp):
    assert resp.status_code == 200, resp.text
    return resp.json()["choices"][0]["message"]["content"]


def run_stub(args, **env):
    """Run the stub to its end (it is expected to exit at once)."""
    full = clean_env(STUB_HOST="127.0.0.1", STUB_PORT="0", PYTHONUNBUFFERED="1", **env)
    return subprocess.run([*STUB, *args], check=False, env=full,
                          capture_output=True, text=True, timeout=10)  # fmt: skip


def test_vllm_arguments_are_checked():
    for args, env in (
        (["--tensor-parallel-size", "2"], {}),
        (["--gpu-memory-utilization"], {}),
        (["--gpu-memory-utilization", "0"], {}),
        (["--gpu-memory-utilization=1.5"], {}),
        (["--gpu-memory-utilization", "most"], {}),
        (["--enable-sleep-mode"], {"STUB_FLAVOR": "ollama"}),  # vLLM arguments only
        ([], {"VLLM_SERVER_DEV_MODE": "yes"}),  # vLLM: int(...)
    ):
        done = run_stub(args, **env)
        assert done.returncode == 2, (args, done.stderr)
        assert "configuration error" in done.stderr, done.stderr
        assert "listening" not in done.stderr


def test_dev_routes_are_404_without_dev_mode(start_stub):
    stub = start_stub(args=SLEEP_MODE, STUB_MODELS="m")
    for method, path in (("POST", "/sleep"), ("POST", "/sleep?level=1"), ("POST", "/wake_up"),
                         ("GET", "/is_sleeping"), ("POST", "/collective_rpc")):  # fmt: skip
        resp = requests.request(method, stub.url(path), timeout=5, json={})
        assert resp.status_code == 404, (path, resp.text)
        assert resp.json() == {"detail": "Not Found"}
    # dev mode on: a wrong method is FastAPI's 405, and the routes exist
    dev = start_stub(args=SLEEP_MODE, **SLEEP_ENV)
    assert requests.get(dev.url("/sleep"), timeout=5).status_code == 405
    assert is_sleeping(dev) is False


def test_sleep_and_wake_round_trip_holds_requests(start_stub):
    stub = start_stub(args=SLEEP_MODE, **SLEEP_ENV)
    assert is_sleeping(stub) is False
    assert sleep_state(stub) == (1, 0, 0)

    t0 = time.monotonic()
    resp = post(stub, "/sleep")  # level 1, mode abort
    assert resp.status_code == 200 and resp.content == b""
    assert time.monotonic() - t0 >= 0.2  # STUB_SLEEP_SECONDS
    assert is_sleeping(stub) is True
    assert sleep_state(stub) == (0, 1, 0)
    stub.wait_log(r"It took 0\.2\d* seconds to fall asleep\.")
    stub.wait_log(r"Sleep mode freed 20\.10 GiB memory, 1\.50 GiB memory is still in use\.")
    gpu = requests.get(stub.url("/stub/gpu"), timeout=5).json()
    assert gpu["claims"]["sleeper"] == {"gib": 1.5, "state": "weights_offloaded"}
    assert gpu["total_gib"] == 24 and gpu["free_gib"] == 22.5

    # asleep: liveness, model list and metrics answer; completions are held, not refused
    health = requests.get(stub.url("/health"), timeout=5)
    assert health.status_code == 200 and health.content == b""
    assert [m["id"] for m in requests.get(stub.url("/v1/models"), timeout=5).json()["data"]] == [
        "m"
    ]
    with ThreadPoolExecutor(2) as pool:
        held = pool.submit(post, stub, "/v1/chat/completions", json=chat_body("m", "wake me"))
        held_stream = pool.submit(
            lambda: parse_sse(requests.post(stub.url("/v1/chat/completions"), stream=True,
                                            timeout=10, json=chat_body("m", "x", stream=True)))
        )  # fmt: skip
        wait_scrape(stub, "m", lambda s: s("vllm:num_requests_waiting") == 2)
        time.sleep(0.2)
        assert not held.done() and not held_stream.done()

        # repeated sleep: a logged no-op (mode=wait: the held requests stay held)
        assert post(stub, "/sleep?level=2&mode=wait").status_code == 200
        stub.wait_log("Executor is already sleeping.")
        assert sleep_state(stub) == (0, 1, 0)

        t0 = time.monotonic()
        resp = post(stub, "/wake_up")
        assert resp.status_code == 200 and resp.content == b""
        assert time.monotonic() - t0 >= 0.05
        assert chat_text(held.result(timeout=5)).startswith(NORMAL_TEXT + " wake me")
        assert held_stream.result(timeout=5)[-1] == "[DONE]"
    assert is_sleeping(stub) is False
    assert sleep_state(stub) == (1, 0, 0)
    stub.wait_log(r"It took 0\.\d+ seconds to wake up tags \['kv_cache', 'weights'\]\.")
    assert requests.get(stub.url("/stub/gpu"), timeout=5).json()["claims"]["sleeper"] == {
        "gib": 21.6, "state": "awake"}  # fmt: skip

    assert post(stub, "/wake_up").status_code == 200  # awake: a logged no-op
    stub.wait_log("Executor is not sleeping.")


def test_sleep_rejects_a_bad_level_or_mode(start_stub):
    stub = start_stub(args=SLEEP_MODE, **SLEEP_ENV)
    for query in ("level=3", "level=one", "mode=later", "level=0"):
        resp = post(stub, f"/sleep?{query}")
        assert resp.status_code == 400, (query, resp.text)
        assert resp.json()["error"]["code"] == 400
    assert is_sleeping(stub) is False


def test_partial_wake_and_level_2_garbage_until_reload(start_stub):
    stub = start_stub(args=SLEEP_MODE, **SLEEP_ENV)
    url = "/v1/chat/completions"
    assert post(stub, "/sleep?level=2").status_code == 200
    assert sleep_state(stub) == (0, 0, 1)
    stub.wait_log(r"Sleep mode freed 20\.10 GiB memory, 1\.50 GiB memory is still in use\.")

    # vLLM's documented procedure: weights, reload_weights, then the KV cache
    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(post, stub, url, json=chat_body("m", "after the reload"))
        assert post(stub, "/wake_up?tags=weights").status_code == 200
        assert is_sleeping(stub) is True  # the KV cache still sleeps
        assert sleep_state(stub) == (0, 0, 1)
        assert requests.get(stub.url("/stub/gpu"), timeout=5).json()["claims"]["sleeper"][
            "gib"] == 5.5  # residual + weights  # fmt: skip
        time.sleep(0.2)
        assert not held.done()  # serving resumes only when fully awake
        assert post(stub, "/wake_up?tags=weights").status_code == 200  # not sleeping: no-op
        stub.wait_log(r"Tag weights is not in sleeping tags \['kv_cache'\]")

        bad = post(stub, "/collective_rpc", json={"args": []})
        assert bad.status_code == 400 and "Missing 'method' in request body" in bad.text
        bad = post(stub, "/collective_rpc", data=b"{not json")
        assert bad.status_code == 400 and "JSON decode error" in bad.text
        t0 = time.monotonic()
        reload = post(stub, "/collective_rpc", json={"method": "reload_weights"})
        assert reload.status_code == 200 and reload.content == b""
        assert time.monotonic() - t0 >= 0.05

        assert post(stub, "/wake_up?tags=kv_cache").status_code == 200
        assert is_sleeping(stub) is False
        assert chat_text(held.result(timeout=5)).startswith(NORMAL_TEXT)
    stub.wait_log(r"wake up tags \['kv_cache'\]")

    # level 2 then a plain wake without reload_weights: the model answers garbage
    assert post(stub, "/sleep?level=2").status_code == 200
    assert post(stub, "/wake_up").status_code == 200
    garbage = chat_text(post(stub, url, json=chat_body("m", "hello")))
    assert "garbage" in garbage and NORMAL_TEXT not in garbage
    with requests.post(stub.url(url), stream=True, timeout=10,
                       json=chat_body("m", "hello", stream=True)) as resp:  # fmt: skip
        streamed = "".join(e["choices"][0]["delta"].get("content") or "" for e in parse_sse(resp)
                           if isinstance(e, dict) and e["choices"])  # fmt: skip
    assert streamed == garbage
    assert post(stub, "/collective_rpc", json={"method": "reload_weights"}).status_code == 200
    assert chat_text(post(stub, url, json=chat_body("m", "hello"))).startswith(NORMAL_TEXT)

    # level 1 keeps the weights (offloaded to CPU): no garbage after the wake
    assert post(stub, "/sleep?level=1").status_code == 200
    assert post(stub, "/wake_up").status_code == 200
    assert chat_text(post(stub, url, json=chat_body("m", "hello"))).startswith(NORMAL_TEXT)


def stream_events(stub, text, max_tokens=None, first_token=None):
    """Stream a chat completion; returns [(arrival time, event)]; sets first_token on its first content."""
    body = chat_body("m", text, stream=True, stream_options={"include_usage": True})
    if max_tokens:
        body["max_tokens"] = max_tokens
    out = []
    with requests.post(stub.url("/v1/chat/completions"), json=body, stream=True,
                       timeout=20) as resp:  # fmt: skip
        assert resp.status_code == 200, resp.text
        for line in resp.iter_lines(decode_unicode=True):
            if line:
                payload = line[len("data: "):]
                out.append((time.monotonic(), payload if payload == "[DONE]" else json.loads(payload)))
                if first_token and payload != "[DONE]" and out[-1][1]["choices"] and \
                        out[-1][1]["choices"][0]["delta"].get("content"):  # fmt: skip
                    first_token.set()
    return out


def finish_reason(events):
    return next(e["choices"][0]["finish_reason"] for _, e in reversed(events)
                if isinstance(e, dict) and e["choices"] and e["choices"][0]["finish_reason"])  # fmt: skip


LONG = "one two three four five six seven eight nine ten eleven twelve"


def test_sleep_mode_abort_ends_running_and_held_requests(start_stub):
    stub = start_stub(args=SLEEP_MODE, STUB_TOKEN_DELAY_MS="100", **SLEEP_ENV)
    first_token = threading.Event()
    with ThreadPoolExecutor(2) as pool:
        stream = pool.submit(stream_events, stub, LONG, first_token=first_token)
        # past its first token, so the abort visibly cuts it short (running counts it earlier)
        assert first_token.wait(5)
        assert post(stub, "/sleep?mode=abort").status_code == 200
        events = stream.result(timeout=10)
        # while asleep, a held request is aborted by the next /sleep (mode abort)
        held = pool.submit(post, stub, "/v1/chat/completions", json=chat_body("m", "held"))
        wait_scrape(stub, "m", lambda s: s("vllm:num_requests_waiting") == 1)
        assert post(stub, "/sleep").status_code == 200
        aborted = held.result(timeout=5)
    assert events[-1][1] == "[DONE]"
    assert finish_reason(events) == "abort"
    usage = events[-2][1]["usage"]
    assert 1 <= usage["completion_tokens"] < 12  # cut short
    assert aborted.status_code == 200, aborted.text
    assert aborted.json()["choices"][0]["finish_reason"] == "abort"
    assert aborted.json()["usage"]["completion_tokens"] == 0
    scrape = wait_scrape(stub, "m", lambda s: s("vllm:request_success_total",
                                                finished_reason="abort") == 2)  # fmt: skip
    assert scrape("vllm:num_requests_running") == 0 and scrape("vllm:num_requests_waiting") == 0


def test_sleep_mode_wait_lets_running_requests_finish(start_stub):
    stub = start_stub(args=SLEEP_MODE, STUB_TOKEN_DELAY_MS="50", **SLEEP_ENV)
    with ThreadPoolExecutor(1) as pool:
        stream = pool.submit(stream_events, stub, LONG)
        wait_scrape(stub, "m", lambda s: s("vllm:num_requests_running") == 1)
        resp = post(stub, "/sleep?mode=wait")
        slept = time.monotonic()
        events = stream.result(timeout=10)
    assert resp.status_code == 200
    assert finish_reason(events) == "stop"
    assert events[-1][0] < slept  # /sleep answered after the stream was done
    stub.wait_log("Waiting for in-flight requests to complete before sleeping...")
    assert is_sleeping(stub) is True


def test_sleep_mode_keep_freezes_and_resumes_after_wake(start_stub):
    stub = start_stub(args=SLEEP_MODE, STUB_TOKEN_DELAY_MS="50", **SLEEP_ENV)
    with ThreadPoolExecutor(1) as pool:
        stream = pool.submit(stream_events, stub, LONG)
        wait_scrape(stub, "m", lambda s: s("vllm:num_requests_running") == 1)
        assert post(stub, "/sleep?mode=keep").status_code == 200
        time.sleep(0.4)
        assert not stream.done()
        assert post(stub, "/wake_up").status_code == 200
        events = stream.result(timeout=10)
    assert finish_reason(events) == "stop"
    text = "".join(e["choices"][0]["delta"].get("content") or "" for _, e in events
                   if isinstance(e, dict) and e["choices"])  # fmt: skip
    assert text == f"{NORMAL_TEXT} {LONG}"[: len(text)] and len(text) > len(NORMAL_TEXT)
    gaps = [b[0] - a[0] for a, b in zip(events, events[1:], strict=False)]
    assert max(gaps) >= 0.5  # frozen from the /sleep (0.2 s) until the wake


def test_sleep_without_sleep_mode_frees_nothing(start_stub):
    stub = start_stub(**SLEEP_ENV)  # no --enable-sleep-mode
    assert post(stub, "/sleep?level=2").status_code == 200
    assert is_sleeping(stub) is True
    assert sleep_state(stub) == (0, 0, 1)
    stub.wait_log(r"Sleep mode freed 0\.00 GiB memory, 21\.60 GiB memory is still in use\.")
    assert requests.get(stub.url("/stub/gpu"), timeout=5).json()["claims"]["sleeper"][
        "gib"] == 21.6  # fmt: skip
    assert post(stub, "/wake_up").status_code == 200
    assert is_sleeping(stub) is False
    # nothing was discarded, so the weights are intact
    text = chat_text(post(stub, "/v1/chat/completions", json=chat_body("m", "hi")))
    assert text.startswith(NORMAL_TEXT)


# --------------------------------------------------------------------------- simulated GPU


def gpu_member(start_stub, gpu_dir, name, utilization, *extra, ready=True, **env):
    return start_stub(
        args=(*SLEEP_MODE, "--gpu-memory-utilization", str(utilization), *extra),
        ready=ready,
        **{**SLEEP_ENV, "STUB_NAME": name, "STUB_GPU_DIR": str(gpu_dir), **env},
    )


def test_gpu_members_share_memory_and_a_late_one_fails_to_start(start_stub, tmp_path):
    first = gpu_member(start_stub, tmp_path, "first", 0.6)
    startup = (
        "ValueError: Free memory on device cuda:0 (9.60/24.00 GiB) on startup is less than "
        "desired GPU memory utilization (0.6, 14.40 GiB). Decrease GPU memory utilization or "
        "reduce GPU memory used by other processes.\n"
        "RuntimeError: Engine core initialization failed. See root cause above. "
        "Failed core proc(s): {}\n"
    )
    args = ("--enable-sleep-mode", "--gpu-memory-utilization", "0.6")
    env = {"STUB_NAME": "second", "STUB_GPU_DIR": str(tmp_path), "STUB_STARTUP_DELAY": "5"}
    t0 = time.monotonic()
    done = run_stub(args, **env)
    assert done.returncode == 1, done.stderr
    assert done.stderr.endswith(startup), done.stderr
    assert "listening" not in done.stderr  # the port is never served
    assert time.monotonic() - t0 < 3  # checked before the (simulated) loading
    assert set(requests.get(first.url("/stub/gpu"), timeout=5).json()["claims"]) == {"first"}

    # the first sleeps (sleep mode: 1.5 GiB left): the second fits
    assert post(first, "/sleep").status_code == 200
    second = gpu_member(start_stub, tmp_path, "second", 0.6, ready=False,
                        STUB_STARTUP_DELAY="0.3")  # fmt: skip
    second.wait_log("loading")  # the memory check passed; loading is simulated after it
    second.wait_ready()
    gpu = requests.get(second.url("/stub/gpu"), timeout=5).json()
    assert gpu["claims"] == {"first": {"gib": 1.5, "state": "weights_offloaded"},
                             "second": {"gib": 14.4, "state": "awake"}}  # fmt: skip
    assert gpu["free_gib"] == pytest.approx(24 - 15.9)

    # waking the first needs 14.4 GiB beside the second's: CUDA OOM, 500, the engine dies
    resp = post(first, "/wake_up")
    assert resp.status_code == 500
    assert "CUDA out of memory" in resp.json()["error"]["message"]
    assert first.proc.wait(timeout=5) == 1
    first.wait_log(r"torch\.OutOfMemoryError: CUDA out of memory\. Tried to allocate 12\.90 GiB")
    # its claim file stays behind, but its lock died with it
    assert (tmp_path / "first.claim").exists()
    assert set(requests.get(second.url("/stub/gpu"), timeout=5).json()["claims"]) == {"second"}


def test_gpu_claim_of_a_sigkilled_member_is_ignored(start_stub, tmp_path):
    victim = gpu_member(start_stub, tmp_path, "victim", 0.9)
    victim.proc.send_signal(signal.SIGKILL)
    victim.proc.wait(timeout=5)
    assert (tmp_path / "victim.claim").exists()  # nothing cleaned up
    heir = gpu_member(start_stub, tmp_path, "heir", 0.9)
    gpu = requests.get(heir.url("/stub/gpu"), timeout=5).json()
    assert gpu["claims"] == {"heir": {"gib": 21.6, "state": "awake"}}
    # a member without sleep mode keeps its whole claim while "asleep"
    plain = start_stub(args=("--gpu-memory-utilization", "0.05"),
                       **{**SLEEP_ENV, "STUB_NAME": "plain", "STUB_GPU_DIR": str(tmp_path)})
    assert post(plain, "/sleep").status_code == 200
    assert requests.get(heir.url("/stub/gpu"), timeout=5).json()["claims"]["plain"] == {
        "gib": 1.2, "state": "weights_offloaded"}  # fmt: skip
    assert post(plain, "/wake_up").status_code == 200  # same claim: always fits
    assert is_sleeping(plain) is False
