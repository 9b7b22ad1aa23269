"""Issue 10 on the real engine: `stackctl bench` against SmolLM2 on llama.cpp, through the
gateway and direct; then the default model choice and --compare against the first run.

The stack is the session's shared one (conftest.py); for the default model choice its two
stubs are stopped, so that only llama.cpp runs, and started again afterwards."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.integration.conftest import restore

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(shared_stack):
    return shared_stack


@pytest.fixture
def only_llama(stack):
    """Only llama.cpp (and the gateway and cache) running: the stubs stopped, then back."""
    stubs = [f"{stack.project}-{service}-1" for service in ("ollama", "vllm-qwen")]
    subprocess.run(["docker", "kill", *stubs], check=True, capture_output=True, timeout=120)
    yield
    restore(stack)


@pytest.fixture(scope="module")
def first(stack):
    """One streamed sweep (c=1,2), gateway and direct (the baseline of --compare later)."""
    r = stack.run("bench", "-m", "smollm2", "--direct", "-c", "1,2", "-n", "3",
                  "--max-tokens", "16", "--stream", "--timeout", "120", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    assert stack.key not in r.stdout + r.stderr
    return json.loads(r.stdout)


def test_bench_smollm2_through_the_gateway_and_direct(stack, first):
    doc = first
    assert doc["ok"] is True and doc["problems"] == []
    assert [(c["route"], c["concurrency"]) for c in doc["cells"]] == [
        ("gateway", 1), ("gateway", 2), ("direct", 1), ("direct", 2)]
    direct = next(t for t in doc["targets"] if t["route"] == "direct")
    assert (direct["provider"], direct["url"]) == (
        "llama_cpp", f"http://127.0.0.1:{stack.port('llama_cpp')}/v1")
    for c in doc["cells"]:
        assert (c["requests"], c["ok"], c["errors"]) == (3, 3, 0), c
        lat, ttft = c["latency_ms"], c["ttft_ms"]
        assert 0 < lat["p50"] <= lat["p95"] <= lat["p99"], c
        assert 0 < ttft["p50"] <= lat["p50"], c  # first token before the last byte
        assert c["tokens"] > 0 and c["tokens_per_s"] > 0 and c["requests_per_s"] > 0, c
        assert c["tokens_source"] == "usage"  # llama.cpp and LiteLLM both send usage
    gateway = [c for c in doc["cells"] if c["route"] == "gateway"]
    assert all(c["served_by"] == {"smollm2@llama_cpp": 3} for c in gateway)
    assert [o["concurrency"] for o in doc["overhead"]] == [1, 2]
    for o in doc["overhead"]:
        assert o["diff_ms"] == pytest.approx(o["gateway_p50_ms"] - o["direct_p50_ms"], abs=0.02)
    assert {(s["route"], s["knee"] in (1, 2)) for s in doc["sweeps"]} == {
        ("gateway", True), ("direct", True)}
    print("bench figures:", json.dumps({(c["route"] + f" c={c['concurrency']}"): {
        k: c[k] for k in ("tokens_per_s", "requests_per_s")} | {
        "p50": c["latency_ms"]["p50"], "ttft_p50": c["ttft_ms"]["p50"]}
        for c in doc["cells"]}))


def test_bench_default_models_and_compare(stack, first, only_llama, tmp_path):
    before = tmp_path / "before.json"
    before.write_text(json.dumps(first))
    # no --model: only llama.cpp runs, so only smollm2 is measured (and the output says so)
    r = stack.run("bench", "-c", "1", "-n", "2", "--max-tokens", "16", "--stream",
                  "--timeout", "120", "--compare", str(before), "--threshold", "100000",
                  "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert "models whose provider is running: smollm2 " in r.stderr
    assert {c["model"] for c in doc["cells"]} == {"smollm2"}
    cmp = doc["comparison"]
    assert cmp["regressions"] == 0 and cmp["deltas"], cmp
    assert {d["concurrency"] for d in cmp["deltas"]} == {1}
    assert "smollm2 direct c=1 (only in the old run)" in cmp["not_compared"]
    assert "requests: 3 then, 2 now" in cmp["notes"]

    r = stack.run("bench", "-m", "nope", "-n", "1")
    assert r.returncode == 1 and "unknown model 'nope'" in r.stderr, r.stderr
