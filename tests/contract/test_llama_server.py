"""Contract of stackctl-local/llama-server:0.3.36: the real llama.cpp server, SmolLM2 on CPU.

The container runs with the generated compose file's command line. Asserted: /health answers
503 while the model loads and 200 once it is ready, /v1/models lists the alias, and chat
completions (a few tokens) work with and without streaming (SSE `data:` lines, `[DONE]`).

SmolLM2-135M loads in well under a second, too fast to see the loading phase reliably; the
fixture starts the container with a CPU quota of a few percent of one core, waits until the
HTTP server answers (it listens before it loads the model), reads /health, then lifts the
quota (`docker update`) and waits for 200.

Point it at a running server instead:

    STACKCTL_CONTRACT_LLAMA_CPP_URL=http://127.0.0.1:8080 \\
        [STACKCTL_CONTRACT_LLAMA_CPP_MODEL=smollm2] pytest tests/contract/test_llama_server.py
"""

from __future__ import annotations

from typing import Any

import pytest
import requests

from tests import tc
from tests.contract import (
    Target,
    assert_models,
    chat,
    completion_text,
    external_target,
    sse_chunks,
    stream_text,
)

pytestmark = pytest.mark.integration

ALIAS = "smollm2"
COMMAND = ["--model", "/models/smollm2.gguf", "--alias", ALIAS, "--host", "0.0.0.0",
           "--port", "8080", "--ctx-size", "2048", "--threads", "2", "--n-predict", "512"]
CPU_PERIOD = 100_000  # µs
THROTTLED = 3_000  # µs of CPU per period while loading: 3% of one core


@pytest.fixture(scope="module")
def llama(containers: Any, http: requests.Session) -> Target:
    target = external_target(http, "LLAMA_CPP")
    if target:
        return target

    from testcontainers.core.container import DockerContainer
    from testcontainers.core.wait_strategies import HttpWaitStrategy

    server = (DockerContainer(tc.LLAMA_IMAGE)
              .with_command(COMMAND)
              .with_kwargs(cpu_period=CPU_PERIOD, cpu_quota=THROTTLED)
              # answering at all, loading (503) or ready (200)
              .waiting_for(HttpWaitStrategy(8080, "/health").for_status_code(503)
                           .with_startup_timeout(180).with_poll_interval(0.1)))
    tc.publish_on_loopback(server, 8080)
    containers.start(server)
    base = tc.http_url(server, 8080)
    loading = http.get(f"{base}/health", timeout=30)
    server.get_wrapped_container().update(cpu_quota=-1)  # unlimited again
    HttpWaitStrategy(8080, "/health").with_startup_timeout(180).with_poll_interval(0.2) \
        .wait_until_ready(server)
    return Target(base, ALIAS, extra={"loading": loading})


def test_health_is_503_while_loading(llama: Target) -> None:
    if llama.external:
        pytest.skip("URL mode: the server had loaded its model before the test")
    loading: requests.Response = llama.extra["loading"]
    assert loading.status_code == 503, (loading.status_code, loading.text)
    error = loading.json()["error"]
    assert error["code"] == 503 and "loading" in error["message"].lower(), error


def test_health_is_200_when_ready(llama: Target, http: requests.Session) -> None:
    r = http.get(f"{llama.url}/health", timeout=30)
    assert r.status_code == 200, r.text
    assert r.json().get("status") == "ok", r.json()


def test_models_lists_the_alias(llama: Target, http: requests.Session) -> None:
    r = http.get(f"{llama.url}/v1/models", timeout=30)
    assert r.status_code == 200, r.text
    assert_models(r.json(), llama.model)


def test_chat_completion(llama: Target, http: requests.Session) -> None:
    r = chat(http, llama, stream=False, max_tokens=8, temperature=0)
    text = completion_text(r)
    assert text.strip(), r.json()
    assert "[stub" not in text
    assert 0 < r.json()["usage"]["completion_tokens"] <= 8, r.json()


def test_chat_completion_max_tokens_caps(llama: Target, http: requests.Session) -> None:
    r = chat(http, llama, stream=False, max_tokens=2, temperature=0)
    completion_text(r)
    assert r.json()["usage"]["completion_tokens"] <= 2, r.json()


def test_chat_completion_stream(llama: Target, http: requests.Session) -> None:
    with chat(http, llama, stream=True, max_tokens=8, temperature=0) as r:
        chunks = sse_chunks(r)
    text = stream_text(chunks)
    assert text.strip(), chunks
    assert len([c for c in chunks if (c["choices"] or [{}])[0].get("delta", {}).get("content")]) \
        <= 8, chunks
