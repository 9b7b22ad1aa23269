"""Contract of stackctl-local/inference-stub:1, the stand-in for vLLM and Ollama.

The stub (stackctl/incontainer/inference_stub) runs twice, once per flavor, as the offline stack
runs it: STUB_FLAVOR=vllm on port 8000 and STUB_FLAVOR=ollama on 11434. The assertions are
the ones the stack relies on from a real vLLM / Ollama, so they can be pointed at one:

    STACKCTL_CONTRACT_VLLM_URL=http://gpu-box:8000 [STACKCTL_CONTRACT_VLLM_MODEL=name] \\
        pytest tests/contract/test_inference_stub.py
    STACKCTL_CONTRACT_OLLAMA_URL=http://127.0.0.1:11434 [STACKCTL_CONTRACT_OLLAMA_MODEL=tag] ...

Without a model variable the first model the server lists is used. Checks of the stub's own
behaviour (its canned "[stub NAME]" text, its loading phase) are skipped in URL mode. The
/metrics checks hold for vLLM 0.11.0 (the pinned tag) and the stub, which exports its series.

Sleep mode (the "vllm_sleep" tests) runs against a second vLLM-flavored container started
with VLLM_SERVER_DEV_MODE=1 and `--enable-sleep-mode`, or against a real vLLM started that
way. On a machine with a GPU (the plain server of STACKCTL_CONTRACT_VLLM_URL must run
without VLLM_SERVER_DEV_MODE: its /sleep must be 404):

    VLLM_SERVER_DEV_MODE=1 vllm serve Qwen/Qwen2.5-0.5B-Instruct --port 8001 \
        --enable-sleep-mode --gpu-memory-utilization 0.4
    STACKCTL_CONTRACT_VLLM_SLEEP_URL=http://gpu-box:8001 \
        [STACKCTL_CONTRACT_VLLM_SLEEP_MODEL=name] pytest tests/contract/test_inference_stub.py

The sleep tests put that server to sleep and wake it again (levels 1 and 2, a partial wake,
reload_weights); they leave it awake. The held-request check expects newer vLLM's scheduler
pause (requests sent while asleep are answered after the wake); older releases crash there.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests import tc
from tests.contract import (
    TIMEOUT,
    Target,
    assert_models,
    chat,
    completion_text,
    external,
    external_target,
    sse_chunks,
    stream_text,
)

pytestmark = pytest.mark.integration

VLLM_MODEL = "contract-vllm-model"
VLLM_NAME = "contract-vllm"
OLLAMA_MODEL = "qwen2.5-coder:7b"
OLLAMA_NAME = "contract-ollama"
LOADING_S = 3  # STUB_STARTUP_DELAY of the vLLM-flavored container
SLEEP_MODEL = "contract-vllm-sleep-model"
SLEEP_NAME = "contract-vllm-sleep"


def stub_only(target: Target) -> None:
    if target.external:
        pytest.skip("URL mode: checks the stub's own behaviour, not the API contract")


# -- fixtures ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def vllm(containers: Any, http: requests.Session) -> Target:
    target = external_target(http, "VLLM")
    if target:
        return target

    from testcontainers.core.container import DockerContainer
    from testcontainers.core.wait_strategies import HttpWaitStrategy, LogMessageWaitStrategy

    stub = (DockerContainer(tc.STUB_IMAGE)
            .with_envs(STUB_FLAVOR="vllm", STUB_MODELS=VLLM_MODEL, STUB_NAME=VLLM_NAME,
                       STUB_STARTUP_DELAY=str(LOADING_S))
            .waiting_for(LogMessageWaitStrategy("listening on").with_startup_timeout(60)
                         .with_poll_interval(0.2)))
    tc.publish_on_loopback(stub, 8000)
    containers.start(stub)
    base = tc.http_url(stub, 8000)
    # The HTTP server is up, the simulated model is still loading: what does it answer?
    loading = http.get(f"{base}/health", timeout=5)
    HttpWaitStrategy(8000, "/health").with_startup_timeout(60) \
        .with_poll_interval(0.2).wait_until_ready(stub)
    return Target(base, VLLM_MODEL, extra={"loading": loading})


@pytest.fixture(scope="module")
def vllm_sleep(containers: Any, http: requests.Session) -> Target:
    """A vLLM server with the dev routes and sleep mode on (a container, or by URL)."""
    target = external_target(http, "VLLM_SLEEP")
    if target:
        return target

    from testcontainers.core.container import DockerContainer
    from testcontainers.core.wait_strategies import HttpWaitStrategy

    stub = (DockerContainer(tc.STUB_IMAGE)
            .with_envs(STUB_FLAVOR="vllm", STUB_MODELS=SLEEP_MODEL, STUB_NAME=SLEEP_NAME,
                       VLLM_SERVER_DEV_MODE="1", STUB_SLEEP_SECONDS="0.3",
                       STUB_WAKE_SECONDS="0.2", STUB_RELOAD_SECONDS="0.2")
            .with_command(["--enable-sleep-mode", "--gpu-memory-utilization", "0.5"])
            .waiting_for(HttpWaitStrategy(8000, "/health").with_startup_timeout(60)
                         .with_poll_interval(0.2)))
    tc.publish_on_loopback(stub, 8000)
    containers.start(stub)
    return Target(tc.http_url(stub, 8000), SLEEP_MODEL)


@pytest.fixture(scope="module")
def ollama(containers: Any, http: requests.Session) -> Target:
    url = external("OLLAMA")
    if url:
        target = Target(url, external("OLLAMA", "MODEL") or "", external=True)
        if not target.model:
            tags = http.get(f"{target.url}/api/tags", timeout=30).json()["models"]
            assert tags, f"{target.url}/api/tags lists no model"
            target.model = tags[0]["name"]
        return target

    from testcontainers.core.container import DockerContainer
    from testcontainers.core.wait_strategies import HttpWaitStrategy

    stub = (DockerContainer(tc.STUB_IMAGE)
            .with_envs(STUB_FLAVOR="ollama", STUB_PORT="11434", STUB_MODELS=OLLAMA_MODEL,
                       STUB_NAME=OLLAMA_NAME)
            .waiting_for(HttpWaitStrategy(11434, "/api/version").with_startup_timeout(60)
                         .with_poll_interval(0.2)))
    tc.publish_on_loopback(stub, 11434)
    containers.start(stub)
    return Target(tc.http_url(stub, 11434), OLLAMA_MODEL)


# -- vLLM flavor ------------------------------------------------------------------------------

def test_vllm_answers_503_while_loading(vllm: Target) -> None:
    stub_only(vllm)
    loading: requests.Response = vllm.extra["loading"]
    assert loading.status_code == 503, loading.text
    assert loading.headers.get("Retry-After") == "1"
    assert loading.json()["error"]["code"] == 503


def test_vllm_health(vllm: Target, http: requests.Session) -> None:
    r = http.get(f"{vllm.url}/health", timeout=10)
    assert r.status_code == 200, r.text
    assert r.content == b""  # vLLM: 200 with an empty body


def test_vllm_models_lists_served_model(vllm: Target, http: requests.Session) -> None:
    r = http.get(f"{vllm.url}/v1/models", timeout=30)
    assert r.status_code == 200, r.text
    assert_models(r.json(), vllm.model)
    entry = next(m for m in r.json()["data"] if m["id"] == vllm.model)
    assert entry.get("owned_by") == "vllm", entry
    assert isinstance(entry.get("max_model_len"), int), entry


def test_vllm_chat_completion(vllm: Target, http: requests.Session) -> None:
    r = chat(http, vllm, stream=False, max_tokens=8)
    text = completion_text(r)
    assert text.strip(), r.json()
    assert r.json()["model"] == vllm.model
    assert r.json()["usage"]["completion_tokens"] <= 8
    if not vllm.external:
        assert text.startswith(f"[stub {VLLM_NAME}] reply to: Say hello"), text


def test_vllm_chat_completion_max_tokens_caps(vllm: Target, http: requests.Session) -> None:
    r = chat(http, vllm, stream=False, max_tokens=2)
    completion_text(r)
    body = r.json()
    assert body["usage"]["completion_tokens"] <= 2, body
    assert body["choices"][0]["finish_reason"] == "length", body


def test_vllm_chat_completion_stream(vllm: Target, http: requests.Session) -> None:
    with chat(http, vllm, stream=True, max_tokens=8) as r:
        chunks = sse_chunks(r)
    assert {c["model"] for c in chunks} == {vllm.model}
    assert chunks[0]["choices"][0]["delta"].get("role") == "assistant", chunks[0]
    text = stream_text(chunks)
    assert text.strip()
    if not vllm.external:
        assert text.startswith(f"[stub {VLLM_NAME}]"), text


def test_vllm_unknown_model_is_404(vllm: Target, http: requests.Session) -> None:
    r = chat(http, Target(vllm.url, "no-such-model-contract"), stream=False)
    assert r.status_code == 404, r.text
    error = r.json()["error"]
    assert "no-such-model-contract" in error["message"], error


# -- vLLM /metrics ----------------------------------------------------------------------------
# What the stack's dashboards and alert rules read from vLLM's /metrics, by family and type
# (prometheus_client's parser names a counter's family without "_total", its samples with it).

VLLM_FAMILIES = {
    "vllm:num_requests_running": "gauge",
    "vllm:num_requests_waiting": "gauge",
    "vllm:kv_cache_usage_perc": "gauge",
    "vllm:prompt_tokens": "counter",
    "vllm:generation_tokens": "counter",
    "vllm:request_success": "counter",
    "vllm:time_to_first_token_seconds": "histogram",
    "vllm:inter_token_latency_seconds": "histogram",
    "vllm:e2e_request_latency_seconds": "histogram",
    "vllm:request_queue_time_seconds": "histogram",
}
# vllm/v1/metrics/loggers.py (0.11.0): the buckets of vllm:time_to_first_token_seconds
VLLM_TTFT_BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0,
                     2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0, math.inf]


class Metrics:
    """One GET /metrics of a vLLM server, parsed with prometheus_client's parser."""

    def __init__(self, http: requests.Session, target: Target) -> None:
        r = http.get(f"{target.url}/metrics", timeout=30)
        assert r.status_code == 200, r.text[:2000]
        assert r.headers.get("content-type", "").startswith("text/plain"), r.headers
        self.families = {f.name: f for f in text_string_to_metric_families(r.text)}

    def total(self, sample: str, **labels: str) -> float:
        """Sum of the samples named `sample` whose labels include `labels` (all engines)."""
        family = next((sample.removesuffix(suffix) for suffix in ("_total", "_count", "_sum")
                       if sample.endswith(suffix)), sample)
        return sum(s.value for s in self.families[family].samples
                   if s.name == sample and labels.items() <= s.labels.items())


def wait_metrics(http: requests.Session, target: Target, done: Callable[[Metrics], bool],
                 timeout: float = 10) -> Metrics:
    """Scrape until done(metrics) holds (or the timeout): vLLM records an engine step's
    stats while it hands the step's output on, so a scrape right after a response may
    not show them yet."""
    deadline = time.monotonic() + timeout
    while True:
        metrics = Metrics(http, target)
        if done(metrics) or time.monotonic() > deadline:
            return metrics
        time.sleep(0.1)


def test_vllm_metrics_families_types_and_labels(vllm: Target, http: requests.Session) -> None:
    metrics = Metrics(http, vllm)
    served = [m["id"] for m in http.get(f"{vllm.url}/v1/models", timeout=30).json()["data"]]
    for name, kind in VLLM_FAMILIES.items():
        family = metrics.families.get(name)
        assert family is not None, f"{name} missing from /metrics"
        assert family.type == kind, (name, family.type)
        assert family.samples, f"{name} has no series"
        for sample in family.samples:  # vLLM labels every series with these two
            assert sample.labels.get("model_name") in served, sample
            assert sample.labels.get("engine", "").isdigit(), sample
    reasons = {s.labels["finished_reason"] for s in metrics.families["vllm:request_success"].samples}
    assert {"stop", "length", "abort"} <= reasons, reasons
    ttft = metrics.families["vllm:time_to_first_token_seconds"].samples
    bounds = sorted({float(s.labels["le"]) for s in ttft if s.name.endswith("_bucket")})
    assert bounds == VLLM_TTFT_BUCKETS
    usage = metrics.total("vllm:kv_cache_usage_perc")
    assert 0 <= usage <= len(metrics.families["vllm:kv_cache_usage_perc"].samples), usage


def test_vllm_metrics_move_after_requests(vllm: Target, http: requests.Session) -> None:
    counted = ("vllm:prompt_tokens_total", "vllm:generation_tokens_total",
               "vllm:request_success_total", "vllm:time_to_first_token_seconds_count",
               "vllm:e2e_request_latency_seconds_count", "vllm:inter_token_latency_seconds_count")
    before = Metrics(http, vllm)
    start = {name: before.total(name) for name in counted}
    plain = chat(http, vllm, stream=False, max_tokens=8)
    completion_text(plain)
    with chat(http, vllm, stream=True, max_tokens=8,
              stream_options={"include_usage": True}) as r:
        chunks = sse_chunks(r)
    usages = [plain.json()["usage"], next(c["usage"] for c in chunks if c.get("usage"))]
    prompt = sum(u["prompt_tokens"] for u in usages)
    generated = sum(u["completion_tokens"] for u in usages)

    def moved(m: Metrics) -> dict[str, float]:
        return {name: m.total(name) - start[name] for name in counted}

    after = wait_metrics(http, vllm, lambda m: moved(m)["vllm:request_success_total"] >= 2)
    delta = moved(after)
    assert delta["vllm:request_success_total"] >= 2, delta
    assert delta["vllm:prompt_tokens_total"] >= prompt, (delta, usages)
    assert delta["vllm:generation_tokens_total"] >= generated, (delta, usages)
    assert delta["vllm:time_to_first_token_seconds_count"] >= 2, delta
    assert delta["vllm:e2e_request_latency_seconds_count"] >= 2, delta
    assert delta["vllm:inter_token_latency_seconds_count"] >= usages[1]["completion_tokens"] - 1
    if not vllm.external:  # nothing else talks to the container: the counts are exact
        assert delta["vllm:prompt_tokens_total"] == prompt, (delta, usages)
        assert delta["vllm:generation_tokens_total"] == generated, (delta, usages)
        assert delta["vllm:request_success_total"] == 2, delta


def test_vllm_metrics_show_a_running_request(vllm: Target, http: requests.Session) -> None:
    """A stream in flight is a running request holding KV cache; a client that hangs up
    aborts it."""
    if not vllm.external:  # slow the stub's stream down; a real model needs its 256 tokens
        delay = http.get(f"{vllm.url}/stub/config", timeout=10).json()["token_delay_ms"]
        http.post(f"{vllm.url}/stub/config", json={"token_delay_ms": 100}, timeout=10)
    try:
        with chat(http, vllm, stream=True, max_tokens=256, ignore_eos=True,
                  prompt="Count from one to one thousand in words.") as r:
            assert r.status_code == 200, r.text
            next(line for line in r.iter_lines() if line)
            during = wait_metrics(http, vllm, lambda m: m.total("vllm:num_requests_running") >= 1)
        assert during.total("vllm:num_requests_running") >= 1
        assert during.total("vllm:kv_cache_usage_perc") > 0
    finally:
        if not vllm.external:
            http.post(f"{vllm.url}/stub/config", json={"token_delay_ms": delay}, timeout=10)
    if not vllm.external:
        after = wait_metrics(http, vllm, lambda m: m.total("vllm:num_requests_running") == 0)
        assert after.total("vllm:num_requests_running") == 0
        assert after.total("vllm:kv_cache_usage_perc") == 0
        assert after.total("vllm:request_success_total", finished_reason="abort") >= 1


# -- vLLM sleep mode (VLLM_SERVER_DEV_MODE=1, --enable-sleep-mode) -----------------------------
# vLLM's dev routes: POST /sleep?level=&mode=, POST /wake_up?tags=, GET /is_sleeping,
# POST /collective_rpc. The tests leave the server awake.

SLEEP_TIMEOUT = 300  # a real vLLM takes seconds per sleep / wake, more for big models


def is_sleeping(http: requests.Session, target: Target) -> bool:
    r = http.get(f"{target.url}/is_sleeping", timeout=30)
    assert r.status_code == 200, r.text
    body = r.json()
    assert isinstance(body.get("is_sleeping"), bool), body
    return bool(body["is_sleeping"])


def dev_post(http: requests.Session, target: Target, path: str,
             **kwargs: Any) -> requests.Response:
    r = http.post(f"{target.url}{path}", timeout=SLEEP_TIMEOUT, **kwargs)
    assert r.status_code == 200, (path, r.status_code, r.text)
    if not target.external:  # vLLM 0.11's shape; newer releases answer a JSON status
        assert r.content == b"", (path, r.text)
    return r


def sleep_state(http: requests.Session, target: Target) -> tuple[float, float, float]:
    """(awake, weights_offloaded, discard_all) of vllm:engine_sleep_state."""
    family = Metrics(http, target).families.get("vllm:engine_sleep_state")
    assert family is not None, "vllm:engine_sleep_state missing from /metrics"
    served = [m["id"] for m in http.get(f"{target.url}/v1/models", timeout=30).json()["data"]]
    values = {}
    for sample in family.samples:
        assert sample.labels.get("model_name") in served, sample
        assert sample.labels.get("engine") == "0", sample
        values[sample.labels["sleep_state"]] = sample.value
    return values["awake"], values["weights_offloaded"], values["discard_all"]


@pytest.fixture
def awake_after(vllm_sleep: Target, http: requests.Session) -> Any:
    """Leave the sleep-mode server awake (and its weights loaded) whatever the test did."""
    yield vllm_sleep
    if is_sleeping(http, vllm_sleep):
        http.post(f"{vllm_sleep.url}/wake_up", timeout=SLEEP_TIMEOUT)


def test_vllm_sleep_routes_are_404_without_dev_mode(vllm: Target, http: requests.Session) -> None:
    """Without VLLM_SERVER_DEV_MODE=1 vLLM mounts no dev route: FastAPI's plain 404."""
    for method, path in (("POST", "/sleep?level=1"), ("POST", "/wake_up"),
                         ("GET", "/is_sleeping"), ("POST", "/collective_rpc")):
        r = http.request(method, f"{vllm.url}{path}", timeout=30, json={})
        assert r.status_code == 404, (path, r.status_code, r.text)
        assert r.json() == {"detail": "Not Found"}, (path, r.text)


def test_vllm_sleep_wake_round_trip(awake_after: Target, http: requests.Session) -> None:
    target = awake_after
    assert is_sleeping(http, target) is False
    assert sleep_state(http, target) == (1, 0, 0)
    dev_post(http, target, "/sleep", params={"level": "1"})
    assert is_sleeping(http, target) is True
    assert sleep_state(http, target) == (0, 1, 0)
    # asleep: /health stays 200 (empty body), the model list is unchanged
    health = http.get(f"{target.url}/health", timeout=30)
    assert health.status_code == 200 and health.content == b"", health.text
    models = http.get(f"{target.url}/v1/models", timeout=30)
    assert models.status_code == 200, models.text
    assert_models(models.json(), target.model)
    dev_post(http, target, "/sleep", params={"level": "1"})  # already asleep: a no-op
    assert is_sleeping(http, target) is True
    dev_post(http, target, "/wake_up")
    assert is_sleeping(http, target) is False
    assert sleep_state(http, target) == (1, 0, 0)
    dev_post(http, target, "/wake_up")  # already awake: a no-op
    assert is_sleeping(http, target) is False
    text = completion_text(chat(http, target, stream=False, max_tokens=8))
    if not target.external:
        assert text.startswith(f"[stub {SLEEP_NAME}] reply to:"), text


def test_vllm_request_sent_while_asleep_is_answered_after_wake(
        awake_after: Target, http: requests.Session) -> None:
    target = awake_after
    dev_post(http, target, "/sleep", params={"level": "1"})
    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(chat, http, target, stream=False, max_tokens=8)
        time.sleep(2)
        assert not held.done(), "a request sent while asleep was answered before the wake"
        dev_post(http, target, "/wake_up")
        text = completion_text(held.result(timeout=TIMEOUT))
    assert text.strip()
    if not target.external:
        assert text.startswith(f"[stub {SLEEP_NAME}] reply to:"), text


def test_vllm_level_2_partial_wake_and_reload(awake_after: Target,
                                              http: requests.Session) -> None:
    """vLLM's documented level-2 procedure: wake the weights, reload them, wake the cache."""
    target = awake_after
    dev_post(http, target, "/sleep", params={"level": "2"})
    assert is_sleeping(http, target) is True
    assert sleep_state(http, target) == (0, 0, 1)
    dev_post(http, target, "/wake_up", params={"tags": "weights"})
    assert is_sleeping(http, target) is True  # the KV cache still sleeps
    bad = http.post(f"{target.url}/collective_rpc", json={"args": []}, timeout=60)
    assert bad.status_code == 400, bad.text
    assert "Missing 'method' in request body" in bad.text
    dev_post(http, target, "/collective_rpc", json={"method": "reload_weights"})
    dev_post(http, target, "/wake_up", params={"tags": "kv_cache"})
    assert is_sleeping(http, target) is False
    text = completion_text(chat(http, target, stream=False, max_tokens=8))
    if not target.external:
        assert text.startswith(f"[stub {SLEEP_NAME}] reply to:"), text


# -- Ollama flavor ----------------------------------------------------------------------------

def test_ollama_root_and_version(ollama: Target, http: requests.Session) -> None:
    root = http.get(f"{ollama.url}/", timeout=10)
    assert root.status_code == 200
    assert root.text == "Ollama is running"
    version = http.get(f"{ollama.url}/api/version", timeout=10)
    assert version.status_code == 200, version.text
    assert isinstance(version.json().get("version"), str) and version.json()["version"]


def test_ollama_tags_list_the_model(ollama: Target, http: requests.Session) -> None:
    r = http.get(f"{ollama.url}/api/tags", timeout=30)
    assert r.status_code == 200, r.text
    models = r.json()["models"]
    names = [m["name"] for m in models]
    assert ollama.model in names, names
    entry = models[names.index(ollama.model)]
    for key in ("model", "modified_at", "size", "digest", "details"):
        assert key in entry, entry


def test_ollama_openai_models(ollama: Target, http: requests.Session) -> None:
    r = http.get(f"{ollama.url}/v1/models", timeout=30)
    assert r.status_code == 200, r.text
    assert_models(r.json(), ollama.model)


def test_ollama_native_chat(ollama: Target, http: requests.Session) -> None:
    """LiteLLM's `ollama_chat/` provider (the stack's Ollama deployments) uses /api/chat."""
    body = {"model": ollama.model, "stream": False, "options": {"num_predict": 8},
            "messages": [{"role": "user", "content": "Say hello in three words."}]}
    r = http.post(f"{ollama.url}/api/chat", json=body, timeout=180)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["done"] is True, answer
    assert answer["message"]["role"] == "assistant", answer
    assert answer["message"]["content"].strip(), answer
    assert answer["done_reason"] in ("stop", "length"), answer
    assert answer["eval_count"] <= 8, answer
    if not ollama.external:
        assert answer["message"]["content"].startswith(f"[stub {OLLAMA_NAME}]"), answer


def test_ollama_native_chat_streams_ndjson(ollama: Target, http: requests.Session) -> None:
    body = {"model": ollama.model, "options": {"num_predict": 8},  # stream: default true
            "messages": [{"role": "user", "content": "Say hello in three words."}]}
    with http.post(f"{ollama.url}/api/chat", json=body, timeout=180, stream=True) as r:
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("application/x-ndjson"), r.headers
        lines = [json.loads(raw) for raw in r.iter_lines() if raw]
    assert len(lines) >= 2, lines
    assert all(line["done"] is False for line in lines[:-1]), lines
    assert lines[-1]["done"] is True, lines[-1]
    text = "".join(line["message"]["content"] for line in lines)
    assert text.strip(), lines


def test_ollama_openai_chat_completion(ollama: Target, http: requests.Session) -> None:
    text = completion_text(chat(http, ollama, stream=False, max_tokens=8))
    assert text.strip()
    if not ollama.external:
        assert text.startswith(f"[stub {OLLAMA_NAME}]"), text


def test_ollama_openai_chat_completion_stream(ollama: Target, http: requests.Session) -> None:
    with chat(http, ollama, stream=True, max_tokens=8) as r:
        text = stream_text(sse_chunks(r))
    assert text.strip()


def test_ollama_unknown_model_is_404(ollama: Target, http: requests.Session) -> None:
    body = {"model": "no-such-model-contract:1b", "stream": False,
            "messages": [{"role": "user", "content": "hi"}]}
    r = http.post(f"{ollama.url}/api/chat", json=body, timeout=60)
    assert r.status_code == 404, r.text
    assert "not found" in r.json()["error"], r.text


def test_ollama_has_no_metrics_endpoint(ollama: Target, http: requests.Session) -> None:
    """Ollama exports no Prometheus metrics: the stack probes it with the blackbox exporter."""
    r = http.get(f"{ollama.url}/metrics", timeout=10)
    assert r.status_code == 404, r.text
