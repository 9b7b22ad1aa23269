"""Issue 20 on the real engine: the offline example's GPU group on demand (sleep mode).

`up` starts the resident scheduler; a request for the member that sleeps (or never ran) is
held by the gateway and answered by that member once the scheduler has loaded it, never by
the fallback; `stackctl switch` goes through the scheduler; killing its worker under load
fails no request (the supervisor restarts it), killing all of it sends the sleeping model's
requests to their fallback as before there was a scheduler, and `up` brings it back; `down`
stops it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
import requests

from stackctl.resident import client, process
from tests.integration.traffic import Traffic

pytestmark = [pytest.mark.integration]
QWEN, DOLPHIN = "qwen-coder-vllm", "dolphin-uncensored-vllm"
DEPLOYMENT = {QWEN: "qwen-coder-vllm@vllm-qwen", DOLPHIN: "dolphin-uncensored-vllm@vllm-dolphin"}
FALLBACK = "qwen2.5-coder:7b@ollama"


@pytest.fixture(scope="module")
def stack(stack_factory):
    s = stack_factory("stackctl-it-ondemand", switch="sleep")

    def on_demand(data: dict) -> None:
        # a queue cap this test's traffic never reaches, even on a slow machine: a 429 is
        # the queue working, not a request lost (the cap itself: tests/unit/resident)
        data["gpu_groups"]["gpu0"].update(on_demand=True, hold=30, max_queue=100)
    s.edit("stack.yaml", on_demand)
    r = s.run("up", "--timeout", "180")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "scheduler: started" in r.stdout + r.stderr
    yield s
    s.run("down", "--volumes")
    assert process.running(s.project) is None, "down left the scheduler running"


def ask(stack, model: str, timeout: float = 60) -> requests.Response:
    return requests.post(f"{stack.url}/v1/chat/completions", timeout=timeout,
                         headers={"Authorization": f"Bearer {stack.key}"},
                         json={"model": model, "max_tokens": 8, "cache": {"no-cache": True},
                               "messages": [{"role": "user", "content": "hi"}]})


def worker_pid(supervisor: int) -> int | None:
    out = subprocess.run(["pgrep", "-P", str(supervisor)], capture_output=True, text=True)
    pids = [int(p) for p in out.stdout.split()]
    return pids[0] if pids else None


def wait_for(condition, timeout: float = 30.0) -> bool:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.1)
    return False


def test_a_request_for_a_member_that_never_ran_is_answered_by_it(stack):
    r = ask(stack, DOLPHIN)
    assert r.status_code == 200, r.text
    assert r.headers["x-litellm-model-id"] == DEPLOYMENT[DOLPHIN]
    # and back: qwen slept meanwhile; its request waits for its wake
    r = ask(stack, QWEN)
    assert r.status_code == 200, r.text
    assert r.headers["x-litellm-model-id"] == DEPLOYMENT[QWEN]


def test_switch_goes_through_the_scheduler(stack):
    answer = client.switch(stack.config, "dolphin", 120, None, lambda s: None)
    assert answer is not None and answer["ok"], answer
    r = stack.run("switch", "qwen")
    assert r.returncode == 0, r.stdout + r.stderr
    pid = process.running(stack.project)
    assert pid is not None
    log = process.log_file(stack.project).read_text()
    assert "scheduler of" in log


def test_an_unloaded_member_is_loaded_again_by_its_next_request(stack):
    r = stack.run("unload", "qwen")  # through the scheduler: it knows qwen sleeps now
    assert r.returncode == 0, r.stdout + r.stderr
    assert "unloaded vllm-qwen (sleep)" in r.stdout
    state = process.ask(stack.config, {"op": "state"})
    assert state is not None and state["members"]["vllm-qwen"]["state"] == "asleep", state
    t = time.monotonic()
    r = ask(stack, QWEN, timeout=30)
    assert r.status_code == 200, r.text
    assert r.headers["x-litellm-model-id"] == DEPLOYMENT[QWEN]
    # not left in the sleeping engine until the next look at the group finds it (10 s)
    assert time.monotonic() - t < 6


def test_killing_the_scheduler_under_load_loses_nothing(stack):
    supervisor = process.running(stack.project)
    assert supervisor is not None
    with Traffic(stack.url, stack.key, [QWEN, DOLPHIN], rate=2.0, max_seconds=120) as traffic:
        assert traffic.wait_answered(DOLPHIN, time.monotonic(), count=2)
        worker = worker_pid(supervisor)
        assert worker is not None
        os.kill(worker, signal.SIGKILL)  # its restart policy: the supervisor starts another
        assert wait_for(lambda: (w := worker_pid(supervisor)) is not None and w != worker)
        assert wait_for(lambda: (client.connect(client.control_socket(stack.config), 1)
                                 is not None))
        since = time.monotonic()
        assert traffic.wait_answered(QWEN, since, count=4)
        assert traffic.wait_answered(DOLPHIN, since, count=4)
        # all of it gone: the gateway decides as it did before there was a scheduler
        os.killpg(supervisor, signal.SIGKILL)
        assert wait_for(lambda: process.running(stack.project) is None, 10)
        gone = time.monotonic()
        assert traffic.wait_answered(QWEN, gone, count=4)
        assert traffic.wait_answered(DOLPHIN, gone, count=4)
        r = stack.run("up", "--timeout", "180")
        assert r.returncode == 0, r.stdout + r.stderr
        assert process.running(stack.project) is not None
        back = time.monotonic()
        assert traffic.wait_answered(QWEN, back + 5, count=4)
        assert traffic.wait_answered(DOLPHIN, back + 5, count=4)
    assert traffic.failures() == [], traffic.failures()[:3]
    while_gone = [a for a in traffic.answers if gone <= a.t < back]
    # without a scheduler: the awake member answers its model, the other's goes to the
    # fallback — never an error
    assert while_gone and all(a.deployment in (*DEPLOYMENT.values(), FALLBACK)
                              for a in while_gone)
    after = [a for a in traffic.answers if a.t >= back + 5]
    assert after and all(a.deployment == DEPLOYMENT[a.model] for a in after), \
        [(a.model, a.deployment) for a in after if a.deployment != DEPLOYMENT[a.model]][:5]
