"""Issue 4 on the real engine: switching the exclusive GPU group under load, rollback, locking.

The stack is the session's shared one (conftest.py): the module ends with vllm-qwen active,
as it began, and dolphin's registry entry as it was (the last test breaks it on purpose)."""

from __future__ import annotations

import json
import subprocess
import threading
import time

import pytest

from tests.integration.traffic import Traffic

pytestmark = pytest.mark.integration
QWEN, DOLPHIN = "qwen-coder-vllm", "dolphin-uncensored-vllm"


@pytest.fixture(scope="module")
def stack(shared_stack):
    providers = (shared_stack.config / "providers.yaml").read_text()
    yield shared_stack
    (shared_stack.config / "providers.yaml").write_text(providers)
    assert shared_stack.run("generate").returncode == 0
    if "vllm-qwen" not in running(shared_stack):
        assert shared_stack.run("switch", "qwen").returncode == 0


def running(stack) -> set[str]:
    out = subprocess.run(["docker", "ps", "--format", "{{.Names}}", "--filter",
                          f"label=com.docker.compose.project={stack.project}"],
                         capture_output=True, text=True, check=True).stdout
    return {n.removeprefix(f"{stack.project}-").rsplit("-", 1)[0] for n in out.split()}


def gateway_started_at(stack) -> str:
    return subprocess.run(["docker", "inspect", "-f", "{{.State.StartedAt}}",
                           f"{stack.project}-litellm-1"], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_switch_and_back_under_load_fails_no_request(stack):
    gateway_start = gateway_started_at(stack)
    with Traffic(stack.url, stack.key, [QWEN, DOLPHIN], rate=5.5) as traffic:
        start = time.monotonic()
        time.sleep(3)
        assert traffic.wait_answered(DOLPHIN, start), "no answer for dolphin before the switch"
        t1 = time.monotonic()
        r = stack.run("switch", "dolphin")
        assert r.returncode == 0, r.stdout + r.stderr
        assert "switched GPU group 'gpu0' to vllm-dolphin" in r.stdout
        for part in ("stop", "start", "ready", "routable"):
            assert f"{part} " in r.stdout
        t2 = time.monotonic()
        assert running(stack) >= {"vllm-dolphin"} and "vllm-qwen" not in running(stack)
        time.sleep(3)
        assert traffic.wait_answered(DOLPHIN, t2), "no answer for dolphin after its switch"
        t2b = time.monotonic()
        r = stack.run("switch", "qwen")
        assert r.returncode == 0, r.stdout + r.stderr
        t3 = time.monotonic()
        time.sleep(3)
    assert gateway_started_at(stack) == gateway_start  # a switch never restarts the gateway
    assert len(traffic.between(t1, t3, QWEN)) >= 5 * (t3 - t1), "lighter than 5 requests/s"
    assert len(traffic.between(t1, t3, DOLPHIN)) >= 5 * (t3 - t1), "lighter than 5 requests/s"
    assert traffic.failures() == [], traffic.failures()[:5]

    # Windows are judged by when a request was sent and when it was answered: under load the
    # gateway queues, so an answer can come long after its request was sent.
    def within(model: str, start: float, end: float) -> list:
        return [a for a in traffic.between(start, end, model) if a.t + a.latency <= end]

    # while qwen was switched out, its alias was served by its fallback (Ollama stub)
    gap = traffic.between(t1 + 1, t2 - 0.5, QWEN)
    assert gap and any(a.deployment == "qwen2.5-coder:7b@ollama" for a in gap)
    mid = within(QWEN, t2, t2b)
    assert all(a.deployment == "qwen2.5-coder:7b@ollama" for a in mid)
    # dolphin before its switch: its member is not running, so its fallback answers
    before = within(DOLPHIN, 0, t1)
    assert before and all(a.deployment == "qwen2.5-coder:7b@ollama" for a in before)
    # once switched in, each alias is answered by its own member
    dolphin_mid = within(DOLPHIN, t2, t2b)
    assert dolphin_mid and all(a.deployment.endswith("@vllm-dolphin") and
                               "[stub vllm-dolphin]" in a.text for a in dolphin_mid)
    qwen_after = traffic.between(t3, t3 + 3, QWEN)
    assert qwen_after and all(a.deployment.endswith("@vllm-qwen") for a in qwen_after)


def test_switch_to_active_member_is_a_noop(stack):
    r = stack.run("switch", "vllm-qwen")
    assert r.returncode == 0
    assert "already the active member" in r.stdout


def test_dry_run_prints_plan_and_changes_nothing(stack):
    r = stack.run("switch", "dolphin", "--dry-run")
    assert r.returncode == 0, r.stderr
    assert "plan: stop vllm-qwen" in r.stdout and "plan: start vllm-dolphin" in r.stdout
    assert "vllm-qwen" in running(stack) and "vllm-dolphin" not in running(stack)


def test_unknown_and_ambiguous_members(stack):
    r = stack.run("switch", "dolphn")
    assert r.returncode == 1 and "did you mean 'vllm-dolphin'" in r.stderr
    r = stack.run("switch", "vllm")
    assert r.returncode == 1 and "ambiguous" in r.stderr


def test_concurrent_switches_one_wins_the_other_fails_cleanly(stack):
    results = {}

    def go(name: str) -> None:
        results[name] = stack.run("switch", name)

    threads = [threading.Thread(target=go, args=(n,)) for n in ("dolphin", "vllm-dolphin")]
    for t in threads:
        t.start()
        time.sleep(0.3)
    for t in threads:
        t.join()
    codes = sorted(r.returncode for r in results.values())
    assert codes == [0, 1], {k: (v.stdout, v.stderr) for k, v in results.items()}
    loser = next(r for r in results.values() if r.returncode == 1)
    assert "in progress" in loser.stderr and "Traceback" not in loser.stderr
    assert "vllm-dolphin" in running(stack) and "vllm-qwen" not in running(stack)


def test_target_that_never_becomes_healthy_is_rolled_back(stack):
    # back to qwen first, then break dolphin and try to switch to it
    assert stack.run("switch", "qwen").returncode == 0

    def never_ready(data: dict) -> None:
        data["providers"]["vllm-dolphin"]["container"]["env"]["STUB_NEVER_READY"] = "1"
    stack.edit("providers.yaml", never_ready)
    assert stack.run("generate").returncode == 0
    r = stack.run("switch", "dolphin", "--timeout", "8")
    assert r.returncode == 1, r.stdout
    assert "vllm-dolphin not healthy after 8s" in r.stderr
    assert "rolled back: vllm-qwen is healthy and routable again" in r.stderr
    assert "last log lines of the target" in r.stderr
    assert "stub[vllm-dolphin] GET /v1/models 503" in r.stderr  # still loading, as it said
    assert running(stack) >= {"vllm-qwen", "litellm", "redis"}
    assert "vllm-dolphin" not in running(stack)
    st = stack.run("status", "--json")
    assert st.returncode == 0, st.stdout  # the stopped target is a standby, not a failure
    rows = {s["name"]: s for s in json.loads(st.stdout)["services"]}
    assert rows["vllm-dolphin"]["standby"] and rows["vllm-dolphin"]["state"] == "exited"
    assert rows["vllm-qwen"]["state"] == "running" and not rows["vllm-qwen"]["standby"]
