"""Issue 13 on the real engine: a GPU group in vLLM sleep mode, switched under load.

The members are inference stubs that implement vLLM's sleep API with scaled times (cold
start 3 s, sleep 1 s, wake 0.3 s) and share a simulated GPU (a volume): a member that starts
or wakes while another is awake fails as vLLM does when GPU memory is short. The gateway's
routing callback holds requests for the model being switched in (hold: 10 s in the example)
and sends the outgoing model's to its fallback (the Ollama stub's qwen2.5-coder:7b).
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest
import requests

from tests.integration.traffic import Traffic

# its time windows (a request held ~1 s) do not survive cores busy with other tests
pytestmark = [pytest.mark.integration, pytest.mark.alone]
QWEN, DOLPHIN, FALLBACK = "qwen-coder-vllm", "dolphin-uncensored-vllm", "qwen2.5-coder:7b@ollama"
MEMBER = {QWEN: "vllm-qwen", DOLPHIN: "vllm-dolphin"}
OOM = "Free memory on device cuda:0"


@pytest.fixture(scope="module")
def stack(stack_factory):
    s = stack_factory("stackctl-it-sleep", switch="sleep")
    r = s.run("up", "--timeout", "180")
    assert r.returncode == 0, r.stdout + r.stderr
    return s


def docker(*args: str, check: bool = True) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True,
                          check=check).stdout.strip()


def logs(name: str) -> str:
    r = subprocess.run(["docker", "logs", name], capture_output=True, text=True, check=True)
    return r.stdout + r.stderr  # the stub logs to stderr


def status(stack) -> dict:
    r = stack.run("status", "--json")
    assert "Traceback" not in r.stderr, r.stderr
    return json.loads(r.stdout)


def member_rows(stack) -> dict[str, dict]:
    return {s["name"]: s for s in status(stack)["services"] if s["name"] in MEMBER.values()}


def switch(stack, member: str, *args: str) -> tuple[float, float, subprocess.CompletedProcess]:
    t0 = time.monotonic()
    r = stack.run("switch", member, *args)
    return t0, time.monotonic(), r


def container(stack, member: str) -> str:
    return f"{stack.project}-{member}-1"


def test_up_wakes_one_member_and_the_others_model_goes_to_its_fallback(stack):
    doc = status(stack)
    group = doc["gpu_groups"]["gpu0"]
    assert group["mode"] == "sleep" and group["active"] == "vllm-qwen"
    assert group["running"] == ["vllm-qwen"] and group["asleep"] == []
    rows = member_rows(stack)
    assert rows["vllm-qwen"]["sleep"] == "awake"
    assert rows["vllm-dolphin"]["state"] == "absent"  # never started: it would claim the GPU
    routing = json.loads((stack.root / "compose/litellm/gpu-routing.json").read_text())
    assert routing["divert"] == {DOLPHIN: "qwen2.5-coder:7b"} and routing["hold"] == {}


def test_sleep_switches_back_and_forth_under_load_fail_no_request(stack):
    gateway = docker("inspect", "-f", "{{.State.StartedAt}}", container(stack, "litellm"))
    windows = []  # (incoming model, outgoing model, start, end)
    with Traffic(stack.url, stack.key, [QWEN, DOLPHIN], rate=5.5) as traffic:
        assert traffic.wait_answered(DOLPHIN, time.monotonic() - 60)
        for target, incoming, outgoing in (("dolphin", DOLPHIN, QWEN), ("qwen", QWEN, DOLPHIN),
                                           ("dolphin", DOLPHIN, QWEN), ("qwen", QWEN, DOLPHIN)):
            t0, t1, r = switch(stack, target)
            assert r.returncode == 0, r.stdout + r.stderr
            windows.append((incoming, outgoing, t0, t1, r.stdout))
            assert traffic.wait_answered(incoming, t1)
            time.sleep(1.5)
    assert docker("inspect", "-f", "{{.State.StartedAt}}", container(stack, "litellm")) == gateway
    start, end = windows[0][2], windows[-1][3]
    for model in (QWEN, DOLPHIN):
        assert len(traffic.between(start, end, model)) >= 5 * (end - start), "under 5/s"
    assert traffic.failures() == [], traffic.failures()[:5]

    walls = []
    for n, (incoming, outgoing, t0, t1, out) in enumerate(windows):
        member = MEMBER[incoming]
        walls.append(round(t1 - t0, 2))
        # The hold starts once `switch` has read the registry and the engines (well under a
        # second); from then on the incoming model's requests wait for it and it answers them.
        held = traffic.between(t0 + 1.0, t1, incoming)
        assert held, f"switch {n}: no request for {incoming} during the switch"
        assert all(a.deployment == f"{incoming}@{member}" for a in held), \
            [(round(a.t - t0, 2), a.deployment) for a in held]
        # the outgoing model's requests go to its fallback at once: not held, not failed
        away = traffic.between(t0 + 1.0, t1, outgoing)
        assert away and all(a.deployment == FALLBACK for a in away), \
            [(round(a.t - t0, 2), a.deployment) for a in away]
        # not held (that is 10 s here); a loaded 2-core machine's gateway takes seconds
        assert max(a.latency for a in away) < 5.0, max(a.latency for a in away)
        after = traffic.between(t1 + 0.5, t1 + 1.5, incoming)
        assert after and all(a.deployment == f"{incoming}@{member}" for a in after)
        if n:  # a wake: the stub's sleep (1 s) + wake (0.3 s), plus stackctl's own steps
            assert "waking" in out and "starting" not in out, out
    print(f"sleep-mode switch walls (s): {walls}")  # the first one starts dolphin cold

    # the gateway exports the hold: how long the held requests waited, and none held now
    metrics = requests.get(f"{stack.url}/metrics/", timeout=30,
                           headers={"Authorization": f"Bearer {stack.key}"}).text
    lines = metrics.splitlines()
    counts = [line for line in lines if line.startswith("stackctl_gateway_hold_seconds_count{")]
    for incoming in (QWEN, DOLPHIN):
        assert any(f'requested_model="{incoming}"' in line and 'action="held"' in line
                   for line in counts), counts
    held = [line for line in lines if line.startswith("stackctl_gateway_held_requests{")]
    assert held and all(float(line.rsplit(" ", 1)[1]) == 0 for line in held), held

    # never two members awake: neither ever failed to claim the simulated GPU
    for member in MEMBER.values():
        assert docker("inspect", "-f", "{{.RestartCount}}", container(stack, member)) == "0"
        assert OOM not in logs(container(stack, member))
    rows = member_rows(stack)
    assert rows["vllm-qwen"]["sleep"] == "awake" and not rows["vllm-qwen"]["standby"]
    assert rows["vllm-dolphin"]["sleep"] == "asleep" and rows["vllm-dolphin"]["standby"]
    assert rows["vllm-dolphin"]["state"] == "running"
    assert status(stack)["gpu_groups"]["gpu0"]["asleep"] == ["vllm-dolphin"]


def test_a_switch_longer_than_hold_sends_held_requests_to_the_fallback(stack):
    def hold(seconds: float) -> None:
        stack.edit("stack.yaml", lambda d: d["gpu_groups"]["gpu0"].update(hold=seconds))

    hold(0.4)  # the switch (sleep 1 s + wake 0.3 s) outlasts it
    try:
        with Traffic(stack.url, stack.key, [DOLPHIN], rate=8) as traffic:
            assert traffic.wait_answered(DOLPHIN, time.monotonic() - 60)
            t0, t1, r = switch(stack, "dolphin")
            assert r.returncode == 0, r.stdout + r.stderr
            assert traffic.wait_answered(DOLPHIN, t1)
    finally:
        hold(10)
    during = traffic.between(t0 + 1.0, t1, DOLPHIN)  # once the hold is in place
    assert traffic.failures() == [] and during
    expired = [a for a in during if a.deployment == FALLBACK]
    # held for `hold`, then answered by the fallback; none waited much longer than that
    assert expired and all(a.latency >= 0.35 for a in expired), \
        [(round(a.t - t0, 2), round(a.latency, 2), a.deployment) for a in during]
    r = stack.run("switch", "qwen")
    assert r.returncode == 0, r.stdout + r.stderr


# Another process on the GPU: it claims 2 GiB in the simulated GPU's format (a claim file,
# and a lock held while it lives), as the stub's own SimulatedGpu does.
INTRUDER = """
import fcntl, json, os, time
lock = os.open("/gpu/intruder.lock", os.O_RDONLY | os.O_CREAT, 0o666)
fcntl.flock(lock, fcntl.LOCK_EX)
with open("/gpu/intruder.claim", "w") as f:
    json.dump({"name": "intruder", "gib": 2, "state": "awake", "pid": os.getpid()}, f)
print("ready", flush=True)
time.sleep(3600)
"""


def test_a_member_that_cannot_wake_is_rolled_back(stack):
    """Another process takes 2 GiB of the GPU while dolphin sleeps: dolphin's wake runs out of
    memory (the stub dies as vLLM would), and the group goes back to qwen, which fits."""
    volume = f"{stack.project}_gpu0-sim"
    intruder = f"{stack.project}-intruder"
    docker("run", "-d", "--name", intruder, "-v", f"{volume}:/gpu", "--entrypoint", "python3",
           "stackctl-local/inference-stub:1", "-c", INTRUDER)
    try:
        deadline = time.monotonic() + 30
        while "ready" not in logs(intruder) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert member_rows(stack)["vllm-dolphin"]["sleep"] == "asleep"
        with Traffic(stack.url, stack.key, [QWEN, DOLPHIN], rate=5) as traffic:
            assert traffic.wait_answered(QWEN, time.monotonic() - 60)
            _, t1, r = switch(stack, "dolphin")
            assert traffic.wait_answered(QWEN, t1)
            time.sleep(2)  # requests sent after the rollback, for `late` below
        assert r.returncode == 1, r.stdout + r.stderr
        assert "vllm-dolphin did not wake" in r.stderr and "rolled back" in r.stderr, r.stderr
        assert "CUDA out of memory" in logs(container(stack, "vllm-dolphin"))
        assert traffic.failures() == [], traffic.failures()[:5]
        doc = status(stack)
        assert doc["gpu_groups"]["gpu0"]["active"] == "vllm-qwen"
        assert member_rows(stack)["vllm-dolphin"]["state"] == "exited"  # stopped: no restarts
        late = traffic.between(t1 + 0.5, t1 + 2, QWEN)
        assert late and all(a.deployment == f"{QWEN}@vllm-qwen" for a in late)
    finally:
        docker("rm", "-f", intruder)


def test_starting_a_member_beside_an_awake_one_fails_and_switch_never_does(stack):
    """By hand, dolphin started while qwen is awake dies as vLLM does; `switch` starts it
    only once qwen sleeps."""
    name = container(stack, "vllm-dolphin")
    docker("start", name)
    deadline = time.monotonic() + 30
    while OOM not in logs(name) and time.monotonic() < deadline:
        time.sleep(0.2)
    docker("stop", name)  # its restart policy would try again and again
    assert "on startup is less than desired GPU memory utilization" in logs(name)
    assert member_rows(stack)["vllm-qwen"]["sleep"] == "awake"
    _, _, r = switch(stack, "dolphin")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "starting vllm-dolphin" in r.stdout  # a cold start, after qwen went to sleep
    assert r.stdout.index("putting vllm-qwen to sleep") < r.stdout.index("starting vllm-dolphin")
    rows = member_rows(stack)
    assert rows["vllm-dolphin"]["sleep"] == "awake" and rows["vllm-qwen"]["sleep"] == "asleep"
    # `up` keeps this as it is: a sleeping member beside the awake one is the normal state
    r = stack.run("up", "--timeout", "120", "-p", "vllm-dolphin")
    assert r.returncode == 0, r.stdout + r.stderr
    r = stack.run("up", "--timeout", "120", "-p", "vllm-qwen")
    assert r.returncode == 1 and "stackctl switch vllm-qwen" in r.stderr, r.stdout + r.stderr
