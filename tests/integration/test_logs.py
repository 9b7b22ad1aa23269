"""Issue 10 on the real engine: `stackctl logs` and `logs --requests`.

The session's shared stack (conftest.py: the default profiles, vllm-qwen the active member
of gpu0). The vLLM-dolphin member is not running, so a request for `dolphin-uncensored-vllm`
goes down its fallback chain and is answered by `qwen2.5-coder:7b@ollama`; the gateway's
request line (written by stackctl's callback inside the real LiteLLM proxy) must say so,
while a request for `qwen2.5-coder:7b` itself, answered by the same deployment, is no
fallback. The answer's `x-litellm-call-id` ties it to its line.

(Stopping a member that has served requests instead would make the first request after the
stop wait for the gateway's own timeout before it falls back: 77-126 s measured here, with
or without stackctl's callback. That is the gateway's behaviour, not the log's.)
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest
import requests

from tests.integration.conftest import sigint_as_at_a_terminal

pytestmark = pytest.mark.integration
DOLPHIN, OLLAMA = "dolphin-uncensored-vllm", "qwen2.5-coder:7b"


@pytest.fixture(scope="module")
def stack(shared_stack):
    return shared_stack


def ask(stack, model: str) -> requests.Response:
    body = {"model": model, "max_tokens": 8, "cache": {"no-cache": True},
            "messages": [{"role": "user", "content": f"hello {uuid.uuid4()}"}]}
    return requests.post(f"{stack.url}/v1/chat/completions", json=body, timeout=60,
                         headers={"Authorization": f"Bearer {stack.key}"})


def request_lines(stack, *args: str, call_id: str, timeout: float = 20) -> list[dict]:
    """`logs --requests --json ARGS` until the request `call_id` shows (its line is written
    just after the answer); every record printed."""
    deadline = time.monotonic() + timeout
    while True:
        r = stack.run("logs", "--requests", "--json", *args, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        docs = [json.loads(line) for line in r.stdout.splitlines()]
        if any(d["call_id"] == call_id for d in docs) or time.monotonic() > deadline:
            return docs
        time.sleep(0.5)


def test_a_request_answered_by_a_fallback_shows_as_such(stack):
    own = ask(stack, OLLAMA)
    assert own.status_code == 200, own.text
    assert own.headers["x-litellm-model-id"] == f"{OLLAMA}@ollama"
    docs = request_lines(stack, "--model", OLLAMA, call_id=own.headers["x-litellm-call-id"])
    (rec,) = [d for d in docs if d["call_id"] == own.headers["x-litellm-call-id"]]
    assert (rec["model"], rec["deployment"], rec["fallback"]) == (OLLAMA, f"{OLLAMA}@ollama",
                                                                  False)

    # its member does not run: the gateway's routing callback sends it to its fallback
    fell = ask(stack, DOLPHIN)
    assert fell.status_code == 200, fell.text
    assert fell.headers["x-litellm-model-id"] == f"{OLLAMA}@ollama"
    call_id = fell.headers["x-litellm-call-id"]

    docs = request_lines(stack, "--model", DOLPHIN, call_id=call_id)
    (rec,) = [d for d in docs if d["call_id"] == call_id]
    assert rec["model"] == DOLPHIN  # asked
    assert rec["model_group"] == OLLAMA and rec["deployment"] == f"{OLLAMA}@ollama"  # answered
    assert rec["fallback"] is True and rec["attempted_fallbacks"] == 0  # no failed first hop
    assert rec["status"] == "success" and rec["http_status"] == 200
    assert rec["tokens_in"] and rec["tokens_out"] and rec["latency_ms"] > 0
    assert rec["latency_ms"] >= rec["upstream_ms"]
    print(f"\nfallback request: {rec['latency_ms']:.0f} ms in the gateway, "
          f"{rec['upstream_ms']:.0f} ms of it in the fallback's own call")

    # --model names the model answering, too; the text line marks the fallback
    docs = request_lines(stack, "--model", f"{OLLAMA}@ollama", call_id=call_id)
    assert call_id in {d["call_id"] for d in docs}
    r = stack.run("logs", "--requests", "--model", DOLPHIN, "--tail", "1")
    assert r.returncode == 0, r.stderr
    assert re.search(rf"{DOLPHIN} +→ {re.escape(OLLAMA)}@ollama +FALLBACK +200 +\d+ ms +"
                     r"tokens \d+→\d+$", r.stdout.strip()), r.stdout

    # never a key or the prompt in the gateway's request lines
    logs = subprocess.run(["docker", "logs", f"{stack.project}-litellm-1"],
                          capture_output=True, text=True, timeout=60)
    lines = [x for x in (logs.stdout + logs.stderr).splitlines() if "stackctl-request " in x]
    assert len(lines) >= 2
    assert not [x for x in lines if stack.key in x or "hello " in x]


def test_errors_filter_and_service_logs(stack):
    bad = ask(stack, "no-such-model")
    assert bad.status_code == 400
    call_id = bad.headers["x-litellm-call-id"]
    docs = request_lines(stack, "--errors", call_id=call_id)
    assert docs and all(d["status"] == "failure" for d in docs)
    (rec,) = [d for d in docs if d["call_id"] == call_id]
    assert (rec["model"], rec["http_status"], rec["fallback"]) == ("no-such-model", 400, False)
    assert rec["error"]

    r = stack.run("logs", "litellm", "redis", "--tail", "3")
    assert r.returncode == 0, r.stderr
    prefixes = {line.split("|", 1)[0].strip() for line in r.stdout.splitlines()}
    assert prefixes == {"litellm-1", "redis-1"}, r.stdout
    r = stack.run("logs", "litelm")
    assert r.returncode == 1
    assert "did you mean 'litellm'?" in r.stderr


def test_follow_prints_new_requests_and_ctrl_c_exits_130(stack):
    """-f prints a request as it ends; SIGINT (to stackctl only, as a signal from outside the
    terminal would be) ends it with 130 and takes its `docker logs --follow` along."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "stackctl", "logs", "-C", str(stack.config), "--requests",
         "-f", "--json", "--tail", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, cwd=stack.root, start_new_session=True,
        preexec_fn=sigint_as_at_a_terminal)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True).start()
    try:
        time.sleep(3)  # reading the history, then following
        assert proc.poll() is None, proc.stderr.read()
        answer = ask(stack, OLLAMA)
        assert answer.status_code == 200
        call_id, seen = answer.headers["x-litellm-call-id"], []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and call_id not in seen:
            try:
                seen.append(json.loads(lines.get(timeout=1))["call_id"])
            except queue.Empty:
                pass
        assert call_id in seen, seen
        assert seen.count(call_id) == 1

        t = time.monotonic()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 130
        print(f"\nCtrl-C to exit: {time.monotonic() - t:.2f} s")
        time.sleep(0.5)
        with pytest.raises(ProcessLookupError):  # nothing of it left running
            os.killpg(proc.pid, 0)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
