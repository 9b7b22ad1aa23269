"""Contract of stackctl-local/litellm:1.106.2, the gateway.

The gateway runs as the generated compose file runs it (same command, LITELLM_MASTER_KEY,
LITELLM_LOCAL_MODEL_COST_MAP=true, its config at /app/config.yaml) with a small config of the
test's own: one `hosted_vllm/` deployment on an inference stub (vLLM flavor) that sits with
it on a private Docker network created by the test. Asserted: the health routes answer
without a key, /v1/models and completions need the key (401 without), and a completion goes
through to the backend with and without streaming.

Point it at a running gateway instead:

    STACKCTL_CONTRACT_GATEWAY_URL=http://127.0.0.1:4000 STACKCTL_CONTRACT_GATEWAY_KEY=sk-... \\
        [STACKCTL_CONTRACT_GATEWAY_MODEL=smollm2] pytest tests/contract/test_gateway.py
"""

from __future__ import annotations

import secrets
from typing import Any

import pytest
import requests

from tests import tc
from tests.contract import (
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

MODEL = "contract-model"  # public name on the gateway
BACKEND_MODEL = "contract-backend-model"  # served name on the stub
BACKEND_NAME = "gateway-backend"
BACKEND_HOST = "contract-vllm"  # the stub's alias on the test network

CONFIG = f"""\
model_list:
  - model_name: {MODEL}
    litellm_params:
      model: hosted_vllm/{BACKEND_MODEL}
      api_base: http://{BACKEND_HOST}:8000/v1
      api_key: none
router_settings:
  num_retries: 0
  timeout: 60
litellm_settings:
  drop_params: true
general_settings:
  master_key: os.environ/LITELLM_MASTER_KEY
"""


@pytest.fixture(scope="module")
def gateway(containers: Any, http: requests.Session) -> Target:
    url = external("GATEWAY")
    if url:
        key = external("GATEWAY", "KEY")
        if not key:
            pytest.fail("STACKCTL_CONTRACT_GATEWAY_URL needs STACKCTL_CONTRACT_GATEWAY_KEY "
                        "(the gateway's master key)")
        return external_target(http, "GATEWAY", key=key)

    from testcontainers.core.container import DockerContainer
    from testcontainers.core.wait_strategies import HttpWaitStrategy, LogMessageWaitStrategy

    containers.require(tc.GATEWAY_IMAGE, tc.STUB_IMAGE)
    net = containers.network()
    # Not published: only the gateway talks to it, by its alias on the private network.
    backend = (DockerContainer(tc.STUB_IMAGE)
               .with_envs(STUB_FLAVOR="vllm", STUB_MODELS=BACKEND_MODEL, STUB_NAME=BACKEND_NAME)
               .with_network(net).with_network_aliases(BACKEND_HOST)
               .waiting_for(LogMessageWaitStrategy("ready: flavor=vllm")
                            .with_startup_timeout(60).with_poll_interval(0.2)))
    containers.start(backend)

    key = f"sk-contract-{secrets.token_hex(12)}"
    gw = (DockerContainer(tc.GATEWAY_IMAGE)
          .with_command(["--config", "/app/config.yaml", "--port", "4000", "--host", "0.0.0.0"])
          .with_envs(LITELLM_MASTER_KEY=key, LITELLM_LOCAL_MODEL_COST_MAP="true")
          .with_copy_into_container(CONFIG.encode(), "/app/config.yaml")
          .with_network(net)
          .waiting_for(HttpWaitStrategy(4000, "/health/readiness").with_startup_timeout(300)))
    tc.publish_on_loopback(gw, 4000)
    containers.start(gw)
    return Target(tc.http_url(gw, 4000), MODEL, key=key)


def test_liveliness_needs_no_key(gateway: Target, http: requests.Session) -> None:
    r = http.get(f"{gateway.url}/health/liveliness", timeout=30)
    assert r.status_code == 200, r.text
    assert "alive" in r.text.lower(), r.text


def test_readiness_needs_no_key(gateway: Target, http: requests.Session) -> None:
    r = http.get(f"{gateway.url}/health/readiness", timeout=30)
    assert r.status_code == 200, r.text
    assert r.json().get("status") in ("healthy", "connected"), r.json()


def test_models_without_a_key_is_401(gateway: Target, http: requests.Session) -> None:
    r = http.get(f"{gateway.url}/v1/models", timeout=30)
    assert r.status_code == 401, (r.status_code, r.text)


def test_models_with_a_wrong_key_is_refused(gateway: Target, http: requests.Session) -> None:
    r = http.get(f"{gateway.url}/v1/models", timeout=30,
                 headers={"Authorization": "Bearer sk-not-the-master-key"})
    # LiteLLM without a database answers 400 "No connected db." for any key that is not the
    # master key (it would look virtual keys up there); with one, 401.
    assert r.status_code in (400, 401), (r.status_code, r.text)
    assert "data" not in r.json(), r.text


def test_models_with_the_key(gateway: Target, http: requests.Session) -> None:
    r = http.get(f"{gateway.url}/v1/models", headers=gateway.headers, timeout=30)
    assert r.status_code == 200, r.text
    assert_models(r.json(), gateway.model)


def test_chat_completion_needs_the_key(gateway: Target, http: requests.Session) -> None:
    r = chat(http, Target(gateway.url, gateway.model), stream=False)
    assert r.status_code == 401, (r.status_code, r.text)


def test_chat_completion(gateway: Target, http: requests.Session) -> None:
    r = chat(http, gateway, stream=False, max_tokens=8)
    text = completion_text(r)
    assert text.strip(), r.json()
    if not gateway.external:
        assert text.startswith(f"[stub {BACKEND_NAME}] reply to: Say hello"), text
        assert r.json()["usage"]["completion_tokens"] <= 8


def test_chat_completion_stream(gateway: Target, http: requests.Session) -> None:
    with chat(http, gateway, stream=True, max_tokens=8) as r:
        chunks = sse_chunks(r)
    text = stream_text(chunks)
    assert text.strip(), chunks
    if not gateway.external:
        assert text.startswith(f"[stub {BACKEND_NAME}]"), text


def test_unknown_model_is_an_error(gateway: Target, http: requests.Session) -> None:
    r = chat(http, Target(gateway.url, "no-such-model-contract", key=gateway.key),
             stream=False)
    assert r.status_code in (400, 404), r.text
    assert "error" in r.json(), r.text
