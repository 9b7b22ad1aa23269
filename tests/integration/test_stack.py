"""Issue 3 on the real engine: up, real tokens through the gateway, Redis cache, status, down.

The stack is the session's shared one (conftest.py): its `up` is the first thing the
integration run does with it, and `test_down_with_volumes_leaves_nothing` runs after every
other module that uses it.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid

import pytest
import requests

from tests.integration.conftest import restore

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(shared_stack):
    """The session's shared stack (conftest.py): `up_output` is its `stackctl up`; the down
    test runs after every other module that uses it."""
    return shared_stack


def test_up_reports_every_service_and_a_working_curl_line(stack):
    out = stack.up_output
    for service in ("litellm", "redis", "llama_cpp", "ollama", "vllm-qwen"):
        assert f"{service}" in out and "ready" in out
    assert "vllm-dolphin" not in out  # the other member of gpu0 stays down
    assert f"endpoint: {stack.url}/v1" in out
    assert stack.key not in out  # the secret is referenced, never printed
    curl = next(line.strip() for line in out.splitlines() if "curl -s" in line)
    res = subprocess.run(["bash", "-c", curl], capture_output=True, text=True, timeout=60,
                         cwd=stack.root)
    body = json.loads(res.stdout)
    assert body["choices"][0]["message"]["content"].strip(), res.stdout


def test_chat_through_gateway_returns_real_smollm2_tokens(stack):
    from openai import OpenAI

    client = OpenAI(base_url=f"{stack.url}/v1", api_key=stack.key, max_retries=0)
    reply = client.chat.completions.create(
        model="smollm2", max_tokens=24,
        messages=[{"role": "user", "content": f"Name a colour. ({uuid.uuid4()})"}])
    text = reply.choices[0].message.content
    assert text and "stub" not in text.lower()  # a real model, not the stub
    assert reply.usage.completion_tokens > 0


def test_same_request_again_is_served_from_redis(stack):
    import redis

    from stackctl.store.envfile import read_env

    # the cache requires AUTH: without the password from the stack's .env, nothing is read
    anonymous = redis.Redis(host="127.0.0.1", port=stack.port("redis"), socket_timeout=5)
    with pytest.raises((redis.AuthenticationError, redis.ResponseError)) as refused:
        anonymous.keys("stackctl:*")
    anonymous.close()
    # the NOAUTH error code (redis-py keeps it in status_code, RESP3's HELLO gets it too)
    assert "NOAUTH" in (getattr(refused.value, "status_code", None) or str(refused.value))
    password = read_env(stack.root / ".env")["REDIS_PASSWORD"]
    r = redis.Redis(host="127.0.0.1", port=stack.port("redis"), password=password, socket_timeout=5)
    assert r.ping()
    before = set(r.keys("stackctl:*"))
    prompt = f"Say one word. ({uuid.uuid4()})"
    body = {"model": "qwen2.5-coder:7b", "max_tokens": 8,
            "messages": [{"role": "user", "content": prompt}]}
    headers = {"Authorization": f"Bearer {stack.key}"}
    stats = f"http://127.0.0.1:{stack.port('ollama')}/stub/stats"
    hits_before = requests.get(stats, timeout=5).json()

    first = requests.post(f"{stack.url}/v1/chat/completions", json=body, headers=headers,
                          timeout=30)
    assert first.status_code == 200, first.text
    time.sleep(0.5)  # LiteLLM writes the cache entry after answering
    new_keys = set(r.keys("stackctl:*")) - before
    assert new_keys, "no cache entry was written to Redis under the namespace"
    second = requests.post(f"{stack.url}/v1/chat/completions", json=body, headers=headers,
                           timeout=30)
    assert second.status_code == 200
    assert second.json()["choices"][0]["message"]["content"] == \
        first.json()["choices"][0]["message"]["content"]
    hits_after = requests.get(stats, timeout=5).json()
    # only the first request reached the provider: the second came from Redis
    assert _chat_count(hits_after) - _chat_count(hits_before) == 1


def _chat_count(stats: dict) -> int:
    routes = stats.get("routes", stats)
    return sum(v for k, v in routes.items() if "chat" in k)


def test_status_json_then_degraded_after_a_provider_is_killed(stack):
    r = stack.run("status", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    st = json.loads(r.stdout)
    assert st["gateway"]["healthy"] and st["gateway"]["url"] == stack.url
    assert {"smollm2", "qwen-coder-vllm", "qwen2.5-coder:7b"} <= set(st["gateway"]["models"])
    svc = {s["name"]: s for s in st["services"]}
    assert svc["vllm-qwen"]["state"] == "running" and svc["vllm-qwen"]["health"] == "healthy"
    assert svc["vllm-qwen"]["models"] == ["qwen-coder-vllm"]
    assert svc["vllm-qwen"]["port"] == stack.port("vllm-qwen")
    assert svc["llama_cpp"]["models"] == ["smollm2"]
    assert svc["vllm-dolphin"]["state"] == "absent"
    assert st["gpu_groups"]["gpu0"] == {"active": "vllm-qwen", "running": ["vllm-qwen"],
                                        "members": ["vllm-qwen", "vllm-dolphin"],
                                        "mode": "restart", "asleep": []}

    subprocess.run(["docker", "kill", f"{stack.project}-ollama-1"], check=True,
                   capture_output=True)
    try:
        start = time.perf_counter()
        r = stack.run("status", "--json")
        elapsed = time.perf_counter() - start
        assert r.returncode == 1, r.stdout + r.stderr  # degraded, gateway still up
        st = json.loads(r.stdout)
        svc = {s["name"]: s for s in st["services"]}
        assert svc["ollama"]["state"] == "exited" and svc["ollama"]["models"] == []
        assert st["gateway"]["healthy"]
        assert elapsed < 10  # not one probe timeout per service (the target lives in benchmarks/)
    finally:
        restore(stack)  # the shared stack: ollama back for the next tests


def test_up_of_the_other_gpu_member_is_refused(stack):
    r = stack.run("up", "--profile", "vllm-dolphin")
    assert r.returncode == 1
    assert "vllm-qwen is running in exclusive GPU group 'gpu0'" in r.stderr
    assert "stackctl switch vllm-dolphin" in r.stderr


def test_down_with_volumes_leaves_nothing(stack):
    r = stack.run("down", "--volumes")
    assert r.returncode == 0, r.stderr
    assert stack.docker_objects() == {"containers": [], "networks": [], "volumes": []}
    r = stack.run("status", "--json")
    assert r.returncode == 3  # gateway down (2 is click's usage error)


def test_up_fails_fast_naming_a_provider_that_never_becomes_healthy(stack_factory):
    s = stack_factory("stackctl-it-never")

    def never_ready(data: dict) -> None:
        data["providers"]["vllm-qwen"]["container"]["env"]["STUB_NEVER_READY"] = "1"
    s.edit("providers.yaml", never_ready)
    start = time.perf_counter()
    r = s.run("up", "--timeout", "15")
    assert r.returncode == 1, r.stdout
    assert "vllm-qwen not healthy after 15s" in r.stderr
    # its last log lines are shown: the stub still answering 503 (loading)
    assert "last log lines of stackctl-it-never-vllm-qwen-1" in r.stderr
    assert "stub[vllm-qwen] GET /v1/models 503" in r.stderr
    assert time.perf_counter() - start < 120
    assert s.run("down", "--volumes").returncode == 0


def test_up_names_every_missing_image_and_starts_nothing(stack_factory):
    # Grafana and Loki turned on in the offline example: images no registry here can give
    s = stack_factory("stackctl-it-images")

    def with_grafana(data: dict) -> None:
        data["monitoring"]["grafana"] = {"enabled": True}
        data["monitoring"]["loki"] = {"enabled": True}
    s.edit("stack.yaml", with_grafana)
    r = s.run("up", "--profile", "monitoring")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "nothing was started" in r.stderr and "Traceback" not in r.stderr
    for image, service in (("grafana/loki:3.5.7", "loki"), ("grafana/grafana:12.2.1", "grafana")):
        assert f"{image} (needed by {service}): pull it" in r.stderr, r.stderr
    assert "No such image" not in r.stderr  # never Docker's bare error
    assert s.docker_objects()["containers"] == []
