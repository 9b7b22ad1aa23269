"""Container-level contract tests: the API each local image offers the stack.

One module per image (test_gateway, test_redis, test_llama_server, test_inference_stub). By
default each module starts its image with testcontainers (`DockerContainer`, published on
127.0.0.1 only, a real wait strategy) and removes it at the end of the module. The same
assertions run against a real server when its URL is given:

    STACKCTL_CONTRACT_VLLM_URL        a vLLM server            (+ STACKCTL_CONTRACT_VLLM_MODEL)
    STACKCTL_CONTRACT_OLLAMA_URL      an Ollama server         (+ STACKCTL_CONTRACT_OLLAMA_MODEL)
    STACKCTL_CONTRACT_LLAMA_CPP_URL   a llama.cpp server       (+ STACKCTL_CONTRACT_LLAMA_CPP_MODEL)
    STACKCTL_CONTRACT_GATEWAY_URL     a LiteLLM proxy          (+ STACKCTL_CONTRACT_GATEWAY_KEY,
                                                                  STACKCTL_CONTRACT_GATEWAY_MODEL)
    STACKCTL_CONTRACT_REDIS_URL       redis://:PASSWORD@host:port/0

e.g. on a machine with a GPU:

    STACKCTL_CONTRACT_VLLM_URL=http://gpu-box:8000 pytest tests/contract

A model variable left unset means "the first model the server lists". In URL mode nothing is
started for that server (no Docker needed for it); what only holds for the containers the
tests start (the stub's canned "[stub NAME]" text, the loading phase seen while a container
starts) is left out, or skipped with a reason saying so.

This file holds the OpenAI-API assertions shared by the modules.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

import requests

ENV_PREFIX = "STACKCTL_CONTRACT_"
TIMEOUT = 180  # seconds for one request: a 2-core machine running llama.cpp and LiteLLM


def external(name: str, what: str = "URL") -> str | None:
    """STACKCTL_CONTRACT_<name>_<what>, or None when unset or blank."""
    value = os.environ.get(f"{ENV_PREFIX}{name}_{what}", "").strip()
    return value or None


@dataclass
class Target:
    """A server under contract: where it is, which model to ask for, how to authenticate."""

    url: str
    model: str = ""
    key: str | None = None
    external: bool = False  # given by STACKCTL_CONTRACT_*_URL, not started by the test
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.url = self.url.rstrip("/")

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"} if self.key else {}


def session() -> requests.Session:
    s = requests.Session()
    s.trust_env = False  # never through a proxy from the environment: straight to the URL
    return s


def first_model(http: requests.Session, target: Target) -> str:
    """The first id in GET /v1/models (URL mode without a model variable)."""
    r = http.get(f"{target.url}/v1/models", headers=target.headers, timeout=30)
    r.raise_for_status()
    ids = [m["id"] for m in r.json()["data"]]
    assert ids, f"{target.url}/v1/models lists no model"
    return str(ids[0])


def external_target(http: requests.Session, name: str, key: str | None = None) -> Target | None:
    """The server STACKCTL_CONTRACT_<name>_URL names (its model: <name>_MODEL, else the first
    it lists), or None when the variable is unset: the test then starts a container."""
    url = external(name)
    if not url:
        return None
    target = Target(url, external(name, "MODEL") or "", key=key, external=True)
    target.model = target.model or first_model(http, target)
    return target


# -- /v1/models -----------------------------------------------------------------------------

def assert_models(body: Any, model: str) -> list[str]:
    assert isinstance(body, dict) and body.get("object") == "list", body
    assert isinstance(body.get("data"), list), body
    ids = []
    for entry in body["data"]:
        assert isinstance(entry, dict) and isinstance(entry.get("id"), str), entry
        assert entry.get("object") == "model", entry
        ids.append(entry["id"])
    assert model in ids, f"{model!r} not in /v1/models: {ids}"
    return ids


# -- /v1/chat/completions -----------------------------------------------------------------

def chat(http: requests.Session, target: Target, *, stream: bool, max_tokens: int = 8,
         prompt: str = "Say hello in three words.", **extra: Any) -> requests.Response:
    body = {"model": target.model, "messages": [{"role": "user", "content": prompt}],
            "max_tokens": max_tokens, "stream": stream, **extra}
    return http.post(f"{target.url}/v1/chat/completions", json=body, headers=target.headers,
                     timeout=TIMEOUT, stream=stream)


def completion_text(response: requests.Response) -> str:
    """Check a non-streamed chat completion; return its text."""
    assert response.status_code == 200, response.text[:2000]
    assert response.headers.get("content-type", "").startswith("application/json"), \
        response.headers
    body = response.json()
    assert body.get("object") == "chat.completion", body
    assert isinstance(body.get("id"), str) and body["id"], body
    assert isinstance(body.get("created"), int), body
    assert isinstance(body.get("model"), str) and body["model"], body
    choices = body.get("choices")
    assert isinstance(choices, list) and len(choices) == 1, body
    choice = choices[0]
    assert choice.get("index") == 0, choice
    assert choice.get("finish_reason") in ("stop", "length"), choice
    message = choice.get("message") or {}
    assert message.get("role") == "assistant", choice
    assert isinstance(message.get("content"), str), choice
    usage = body.get("usage") or {}
    for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
        assert isinstance(usage.get(key), int) and usage[key] >= 0, usage
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"], usage
    return str(message["content"])


def sse_chunks(response: requests.Response) -> list[dict[str, Any]]:
    """Check a streamed chat completion: `data:` lines, JSON chunks, `data: [DONE]` last."""
    assert response.status_code == 200, response.text[:2000]
    ctype = response.headers.get("content-type", "")
    assert ctype.startswith("text/event-stream"), response.headers
    data: list[str] = []
    for raw in response.iter_lines(decode_unicode=False):
        line = raw.decode("utf-8")
        if not line:
            continue  # event separator
        assert line.startswith("data:"), f"not an SSE data line: {line!r}"
        data.append(line[len("data:"):].strip())
    assert data, "empty stream"
    assert data[-1] == "[DONE]", f"stream does not end with [DONE]: {data[-3:]}"
    assert data.count("[DONE]") == 1, data
    chunks = []
    for item in data[:-1]:
        chunk = json.loads(item)
        assert chunk.get("object") == "chat.completion.chunk", chunk
        assert isinstance(chunk.get("id"), str), chunk
        chunks.append(chunk)
    assert chunks, "no chunk before [DONE]"
    finishes = [c["choices"][0].get("finish_reason") for c in chunks if c.get("choices")]
    assert finishes and finishes[-1] in ("stop", "length"), f"no final finish_reason: {chunks[-2:]}"
    return chunks


def stream_text(chunks: list[dict[str, Any]]) -> str:
    return "".join((c["choices"][0].get("delta") or {}).get("content") or ""
                   for c in chunks if c.get("choices"))
