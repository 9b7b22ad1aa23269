"""Issue 10 on the real engine: `stackctl cache stats|keys|flush` on the stack's Redis.

The session's shared stack (conftest.py); requests go through the real LiteLLM gateway, whose
cache entries and /metrics/ counters the commands read (as differences: other modules have
sent requests before).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
import requests

from tests.integration.conftest import sigint_as_at_a_terminal

pytestmark = pytest.mark.integration
MODEL = "qwen2.5-coder:7b"  # the Ollama stub, through the gateway


@pytest.fixture(scope="module")
def stack(shared_stack):
    return shared_stack


@pytest.fixture(scope="module")
def client(stack):
    import redis

    from stackctl.store.envfile import read_env

    r = redis.Redis(host="127.0.0.1", port=stack.port("redis"), socket_timeout=5,
                    password=read_env(stack.root / ".env")["REDIS_PASSWORD"])
    yield r
    r.close()


def ask(stack, prompt: str) -> requests.Response:
    res = requests.post(f"{stack.url}/v1/chat/completions", timeout=30,
                        headers={"Authorization": f"Bearer {stack.key}"},
                        json={"model": MODEL, "max_tokens": 8,
                              "messages": [{"role": "user", "content": prompt}]})
    assert res.status_code == 200, res.text
    return res


def stats(stack) -> dict:
    r = stack.cli("cache", "stats", "--json")  # in this process: cheap enough to poll
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def wait_for(check, timeout: float = 10.0):
    """LiteLLM writes the cache entry and its counters after answering."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def test_stats_counts_a_hit_after_a_repeated_request(stack):
    # LiteLLM's first /metrics/ answer is slow (seconds on a busy machine): wait for it
    before = wait_for(lambda: (d := stats(stack))["hits"]["source"] == "gateway" and d, 30)
    assert before, stats(stack)["gateway"]
    model_before = before["gateway"]["models"].get(MODEL, {"hits": 0, "requests": 0})
    prompt = f"Say one word. ({uuid.uuid4()})"
    first = ask(stack, prompt)
    assert "x-litellm-cache-key" not in first.headers  # a miss: answered by the provider
    wait_for(lambda: stats(stack)["namespace"]["responses"] > before["namespace"]["responses"])
    second = ask(stack, prompt)
    assert second.headers["x-litellm-cache-key"].startswith("stackctl:")

    after = wait_for(lambda: (d := stats(stack))["gateway"]["hits"] > before["gateway"]["hits"]
                     and d)
    assert after, "the gateway's hit counter did not move"
    g, model = after["gateway"], after["gateway"]["models"][MODEL]
    assert g["hits"] == before["gateway"]["hits"] + 1
    assert g["requests"] == before["gateway"]["requests"] + 2
    assert (model["hits"], model["requests"]) == (model_before["hits"] + 1,
                                                  model_before["requests"] + 2)
    assert after["hits"]["hits"] == g["hits"] and 0 < after["hits"]["ratio"] <= 1
    ns = after["namespace"]
    assert ns["responses"] == before["namespace"]["responses"] + 1 and ns["complete"]
    assert 0 < ns["ttl"]["min"] <= ns["ttl"]["max"] <= 3600 and ns["bytes"] > 0
    row = next(r for r in after["models"] if r["model"] == MODEL)  # read from the cached value
    assert row["entries"] >= 1 and row["bytes"] > 0
    assert after["redis"]["keyspace_hits"] > 0 and after["redis"]["used_memory"] > 0

    # the key LiteLLM named in its header is listed, with its model, TTL and size
    key = second.headers["x-litellm-cache-key"]
    listed = stack.run("cache", "keys", "--json", "--limit", "1000")
    assert listed.returncode == 0, listed.stderr
    entry = next(k for k in json.loads(listed.stdout)["keys"] if k["key"] == key)
    assert entry["kind"] == "response" and entry["model"] == MODEL
    assert 3500 < entry["ttl"] <= 3600 and entry["bytes"] > 0

    text = stack.run("cache", "stats")
    assert text.returncode == 0, text.stderr
    hits = next(line for line in text.stdout.splitlines() if line.startswith("hits "))
    unavailable = [line for line in text.stdout.splitlines() if "unavailable" in line]
    assert "the gateway's responses (LiteLLM /metrics/" in hits, (hits, unavailable)
    assert f"{MODEL}  " in text.stdout and stack.key not in text.stdout + listed.stdout


def test_flush_yes_removes_only_the_gateways_keys(stack, client):
    prompt = f"Name a fruit. ({uuid.uuid4()})"
    responses = set(client.scan_iter("stackctl:" + "[0-9a-f]" * 64))
    ask(stack, prompt)
    # the response is written after the answer (its rate-limit counters before it): wait
    # for the response itself, or the flush could run before it lands
    assert wait_for(lambda: set(client.scan_iter("stackctl:" + "[0-9a-f]" * 64)) - responses)
    client.set("other-app:session", "keep me")
    client.set("stackctlx:lookalike", "keep me too")  # the namespace's name, not its prefix
    # the responses (an hour's TTL), not every key: rate-limit counters expire within a minute
    kept = set(client.scan_iter("stackctl:" + "[0-9a-f]" * 64))

    refused = stack.run("cache", "flush")  # no terminal, no --yes
    assert refused.returncode == 1
    assert "no terminal to ask on; pass --yes" in refused.stderr
    assert kept <= set(client.scan_iter("stackctl:" + "[0-9a-f]" * 64))

    r = stack.run("cache", "flush", "--yes", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert doc["ok"] and doc["deleted"] >= len(kept) and doc["left_in_db"] >= 2
    assert client.keys("stackctl:*") == []
    assert client.get("other-app:session") == b"keep me"
    assert client.get("stackctlx:lookalike") == b"keep me too"

    # the cache works on after the flush: a new request is written to Redis again
    ask(stack, f"Name a tree. ({uuid.uuid4()})")
    assert wait_for(lambda: stats(stack)["namespace"]["responses"] == 1)
    # what flush cannot reach, as its note says: LiteLLM 1.106 (DualCache) keeps its own
    # in-memory copy of a response; a repeat was served from it in every manual trial (25 of
    # 25) but once in four runs of this module it was not (cause not found): either way the
    # flushed Redis entry must not be what answers
    again = ask(stack, prompt)
    key = again.headers.get("x-litellm-cache-key")
    if key:  # a hit: from the gateway's memory, Redis has no such key
        assert key.startswith("stackctl:") and not client.exists(key)
    else:  # a miss: the provider answered, and the response is cached in Redis anew
        assert wait_for(lambda: stats(stack)["namespace"]["responses"] == 2)
    assert f"docker restart {stack.project}-litellm-1" in doc["note"]
    client.delete("other-app:session", "stackctlx:lookalike")


def test_wrong_password_names_the_variable_not_the_value(stack, monkeypatch):
    monkeypatch.setenv("REDIS_PASSWORD", "not-the-password-redis-has")
    r = stack.run("cache", "stats")  # a real process: the real exit code
    assert r.returncode == 1
    assert "refused the password in REDIS_PASSWORD (the environment)" in r.stderr
    assert "not-the-password-redis-has" not in r.stdout + r.stderr


def test_watch_refreshes_and_ctrl_c_ends_it_with_0(stack):
    proc = subprocess.Popen([sys.executable, "-m", "stackctl", "cache", "-C", str(stack.config),
                             "stats", "--watch", "0.3", "--json"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=stack.root,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"},
                            preexec_fn=sigint_as_at_a_terminal)
    try:
        lines = [proc.stdout.readline() for _ in range(3)]
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    docs = [json.loads(line) for line in lines]
    assert len({d["at"] for d in docs}) == 3 and all("namespace" in d for d in docs)
    assert code == 0, proc.stderr.read()
