"""Issue 12 on the real engine: faults injected into a running stack, with traffic flowing.

The session's shared stack (conftest.py) serves every test here, in order; each test leaves
it whole again (that is part of what it proves). Figures (requests sent and lost during each
fault) are printed with -s and collected in FIGURES.

Docker's own `docker kill` counts as a manual stop (no restart policy applies); a crash is
simulated by SIGKILLing the container's main process from the host instead.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.integration.crashes import crash
from tests.integration.traffic import Traffic

pytestmark = pytest.mark.integration
QWEN, DOLPHIN, OLLAMA = "qwen-coder-vllm", "dolphin-uncensored-vllm", "qwen2.5-coder:7b"
DEAD = "unix:///tmp/nowhere.sock"
FIGURES: dict[str, dict[str, int]] = {}


@pytest.fixture(scope="module")
def stack(shared_stack):
    s = shared_stack
    yield s
    for name, f in FIGURES.items():
        print(f"fault {name}: {f['sent']} requests sent, {f['lost']} lost")


def docker(*args: str, check: bool = True) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True,
                          check=check).stdout.strip()


def states(stack) -> dict[str, str]:
    """service → Docker state, for every container of the stack."""
    out = docker("ps", "-a", "--format", '{{.Label "com.docker.compose.service"}} {{.State}}',
                 "--filter", f"label=com.docker.compose.project={stack.project}")
    return dict(line.split() for line in out.splitlines())


def ids(stack) -> dict[str, str]:
    out = docker("ps", "-a", "--format", '{{.Label "com.docker.compose.service"}} {{.ID}}',
                 "--filter", f"label=com.docker.compose.project={stack.project}")
    return dict(line.split() for line in out.splitlines())


def status(stack) -> tuple[int, dict]:
    r = stack.run("status", "--json")
    assert "Traceback" not in r.stderr, r.stderr
    return r.returncode, json.loads(r.stdout)


def rows(doc: dict) -> dict[str, dict]:
    return {s["name"]: s for s in doc["services"]}


def running_members(stack) -> set[str]:
    st = states(stack)
    return {m for m in ("vllm-qwen", "vllm-dolphin") if st.get(m) == "running"}


def wait_for(predicate, timeout: float = 60, every: float = 0.2) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(every)
    return False


def answered_by(stack, model: str) -> str:
    import requests

    r = requests.post(f"{stack.url}/v1/chat/completions", timeout=60,
                      headers={"Authorization": f"Bearer {stack.key}"},
                      json={"model": model, "max_tokens": 4, "cache": {"no-cache": True},
                            "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 200, r.text[:300]
    return r.headers.get("x-litellm-model-id", "")


def assert_one_member(stack, member: str) -> None:
    """Exactly `member` runs in gpu0, it is ready, and the gateway routes its model to it."""
    assert running_members(stack) == {member}
    code, doc = status(stack)
    assert doc["gpu_groups"]["gpu0"]["running"] == [member], doc["gpu_groups"]
    assert rows(doc)[member]["ready"], rows(doc)[member]
    model = QWEN if member == "vllm-qwen" else DOLPHIN
    assert answered_by(stack, model) == f"{model}@{member}"


# -- Docker unreachable ------------------------------------------------------------------------

COMMANDS = [("up",), ("down",), ("status",), ("switch", "dolphin"), ("ports",), ("logs",),
            ("status", "--json"), ("switch", "dolphin", "--json")]


def test_no_engine_every_command_says_so_with_exit_4_and_changes_nothing(stack):
    before = ids(stack)
    env = {**os.environ, "DOCKER_HOST": DEAD}
    for args in COMMANDS:
        r = subprocess.run([sys.executable, "-m", "stackctl", args[0], "-C", str(stack.config),
                            *args[1:]], capture_output=True, text=True, timeout=120,
                           cwd=stack.root, env=env)
        where = f"stackctl {' '.join(args)}: {r.stdout}{r.stderr}"
        assert r.returncode == 4, where
        assert "no Docker engine answers" in r.stderr and "Traceback" not in r.stderr, where
        if "--json" in args:
            doc = json.loads(r.stdout)
            assert doc["ok"] is False and doc["exit_code"] == 4, where
    assert ids(stack) == before and running_members(stack) == {"vllm-qwen"}
    assert states(stack)["litellm"] == "running"


class DockerProxy:
    """A unix socket forwarding to the real engine's, which the test can cut at any moment:
    the engine "goes away" for one stackctl process only (other users keep the real one)."""

    def __init__(self, path: Path, target: str = "/var/run/docker.sock"):
        self.path, self.target = path, target
        self.conns: list[socket.socket] = []
        self.server = socket.socket(socket.AF_UNIX)
        self.server.bind(str(path))
        self.server.listen(64)
        self.open = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while self.open:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX)
            upstream.connect(self.target)
            self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> None:
        """The engine stops answering: listening ends, every connection drops."""
        self.open = False
        self.server.close()
        self.path.unlink(missing_ok=True)
        for s in self.conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass


def test_engine_lost_during_a_switch_exit_4_then_next_switch_repairs(stack, tmp_path):
    proxy = DockerProxy(Path("/tmp") / f"h5-proxy-{os.getpid()}.sock")
    env = {**os.environ, "DOCKER_HOST": f"unix://{proxy.path}"}
    p = subprocess.Popen([sys.executable, "-m", "stackctl", "switch", "dolphin", "-C",
                          str(stack.config)], cwd=stack.root, env=env, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # the engine goes away once the old member is down (mid-switch)
        assert wait_for(lambda: states(stack).get("vllm-qwen") != "running", 60, 0.05)
        proxy.cut()
        out, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
        proxy.cut()
    assert p.returncode == 4, out + err
    assert "no Docker engine answers" in err and "Traceback" not in err, err
    # the engine is back: status tells what the interrupted switch left, switch repairs
    code, doc = status(stack)
    assert doc["gpu_groups"]["gpu0"]["running"] == sorted(
        running_members(stack), key=["vllm-qwen", "vllm-dolphin"].index)
    r = stack.run("switch", "qwen")
    assert r.returncode == 0, r.stdout + r.stderr
    assert_one_member(stack, "vllm-qwen")


# -- providers, cache, gateway killed under load ----------------------------------------------

def test_provider_killed_under_load_its_fallback_serves_and_status_is_degraded(stack):
    with Traffic(stack.url, stack.key, [QWEN], rate=5) as traffic:
        assert traffic.wait_answered(QWEN, time.monotonic() - 60)
        t0 = time.monotonic()
        docker("kill", f"{stack.project}-vllm-qwen-1")
        time.sleep(5)
        code, doc = status(stack)
        t1 = time.monotonic()
        assert traffic.wait_answered(QWEN, t1 - 1)
    repaired = stack.run("switch", "qwen")  # first, so that a failure here leaves no wreck
    during = traffic.between(t0, t1, QWEN)
    lost = [a for a in during if not a.ok]
    FIGURES["vllm-qwen killed (fallback ollama)"] = {"sent": len(during), "lost": len(lost)}
    # A request on its way to the provider as it dies dials an address that no longer
    # answers: the gateway's SYN retries (2, see render/compose.py) give up in about 3 s a
    # try, and the fallback serves it (by default the kernel would retry for 127 s).
    slowest = max(a.latency for a in during)
    print(f"slowest request sent during the kill: {slowest:.1f}s")
    assert len(during) >= 20 and lost == [], lost[:3]
    assert slowest < 20, slowest
    assert any(a.deployment == f"{OLLAMA}@ollama" for a in during)
    assert code == 1, doc  # degraded: the group's only member is down
    assert rows(doc)["vllm-qwen"]["state"] == "exited" and not rows(doc)["vllm-qwen"]["ready"]
    assert doc["gpu_groups"]["gpu0"]["active"] is None
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert_one_member(stack, "vllm-qwen")
    assert status(stack)[0] == 0


def test_provider_without_fallback_killed_only_its_model_fails_until_up(stack):
    with Traffic(stack.url, stack.key, [OLLAMA, QWEN], rate=3) as traffic:
        assert traffic.wait_answered(OLLAMA, time.monotonic() - 60)
        t0 = time.monotonic()
        docker("kill", f"{stack.project}-ollama-1")
        time.sleep(4)
        code, doc = status(stack)
        t1 = time.monotonic()
        r = stack.run("up", "--timeout", "120")
        assert r.returncode == 0, r.stdout + r.stderr
        t2 = time.monotonic()
        time.sleep(2)
        assert traffic.wait_answered(OLLAMA, t2)
    assert code == 1 and rows(doc)["ollama"]["state"] == "exited", doc
    own = traffic.between(t0, t1, OLLAMA)
    FIGURES["ollama killed (no fallback)"] = {"sent": len(own), "lost": sum(not a.ok for a in own)}
    assert own and any(not a.ok for a in own)  # nothing could serve it: the gateway says so
    others = traffic.between(t0, t2, QWEN)
    FIGURES["ollama killed: other models"] = {"sent": len(others),
                                              "lost": sum(not a.ok for a in others)}
    assert others and all(a.ok for a in others), [a for a in others if not a.ok][:3]
    after = [a for a in traffic.between(t2 + 1, t2 + 60, OLLAMA) if a.t + a.latency > t2]
    assert after and all(a.ok for a in after), after[:3]
    assert status(stack)[0] == 0


def test_redis_killed_gateway_answers_uncached_status_says_so_up_restores(stack):
    with Traffic(stack.url, stack.key, [QWEN], rate=5) as traffic:
        assert traffic.wait_answered(QWEN, time.monotonic() - 60)
        t0 = time.monotonic()
        docker("kill", f"{stack.project}-redis-1")
        time.sleep(5)
        code, doc = status(stack)
        t1 = time.monotonic()
        assert traffic.wait_answered(QWEN, t1)
        r = stack.run("up", "--timeout", "120")
        assert r.returncode == 0, r.stdout + r.stderr
        t2 = time.monotonic()
    during = traffic.between(t0, t2, QWEN)
    lost = [a for a in during if not a.ok]
    FIGURES["redis killed"] = {"sent": len(during), "lost": len(lost)}
    assert len(during) >= 20 and lost == [], lost[:3]
    assert code == 1 and rows(doc)["redis"]["state"] == "exited", doc
    assert not rows(doc)["redis"]["ready"] and doc["gateway"]["healthy"]
    code, doc = status(stack)
    assert code == 0 and rows(doc)["redis"]["ready"], doc
    r = stack.run("cache", "stats")  # the cache answers again, with its password
    assert r.returncode == 0, r.stdout + r.stderr


def test_gateway_crash_restart_policy_brings_it_back_and_status_shows_it(stack):
    gw = f"{stack.project}-litellm-1"
    code, doc = status(stack)
    restarts = rows(doc)["litellm"]["restarts"]
    crash(gw)
    assert wait_for(lambda: status(stack)[0] == 0, 120, 1), status(stack)
    code, doc = status(stack)
    row = rows(doc)["litellm"]
    assert row["restarts"] == restarts + 1 and row["up_seconds"] < 120, row
    r = stack.run("status")
    assert f"restarted {restarts + 1}x" in r.stdout, r.stdout
    with Traffic(stack.url, stack.key, [QWEN], rate=3) as traffic:
        time.sleep(3)
    assert traffic.answers and not traffic.failures(), traffic.failures()[:3]


# -- stackctl SIGKILLed in the middle of a switch -------------------------------------------

WRAPPER = """#!/bin/sh
# `docker start` blocks {when} it runs, so the test can SIGKILL stackctl there
if [ "$1 $2" = "container start" ] || [ "$1" = "start" ]; then
  {before}
  {docker} "$@"; rc=$?
  {after}
  exit $rc
fi
exec {docker} "$@"
"""


def switch_killed_at(stack, tmp_path: Path, target: str, phase: str) -> None:
    """`stackctl switch target` in its own process, SIGKILLed at `phase`: after_stop (the
    old member stopped, the target not started), after_start (the target started, before
    stackctl waits), waiting (stackctl is waiting for the target's health)."""
    import shutil

    env = dict(os.environ)
    mark = tmp_path / f"{phase}.reached"
    if phase != "waiting":
        bin_dir = tmp_path / f"bin-{phase}"
        bin_dir.mkdir()
        block = f'touch {mark}; sleep 600'
        (bin_dir / "docker").write_text(WRAPPER.format(
            when="before" if phase == "after_stop" else "after", docker=shutil.which("docker"),
            before=block if phase == "after_stop" else ":",
            after=block if phase == "after_start" else ":"))
        (bin_dir / "docker").chmod(0o755)
        env["PATH"] = f"{bin_dir}:{env['PATH']}"
    p = subprocess.Popen([sys.executable, "-m", "stackctl", "switch", target, "-C",
                          str(stack.config)], cwd=stack.root, env=env, start_new_session=True,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        member = f"vllm-{target}"
        reached = (lambda: mark.exists()) if phase != "waiting" else \
            (lambda: states(stack).get(member) == "running")
        assert wait_for(reached, 120, 0.02), f"phase {phase} not reached"
    finally:
        os.killpg(p.pid, signal.SIGKILL)  # stackctl and the docker CLI it runs
        p.wait()


@pytest.mark.parametrize("phase, left", [
    ("after_stop", []),                    # no member runs
    ("after_start", ["vllm-dolphin"]),     # the target runs, not yet confirmed
    ("waiting", ["vllm-dolphin"]),         # the target runs (starting or ready)
])
def test_switch_killed_at_each_phase_status_tells_the_truth_next_switch_repairs(
        stack, tmp_path, phase, left):
    assert running_members(stack) == {"vllm-qwen"}
    with Traffic(stack.url, stack.key, [QWEN, DOLPHIN], rate=3) as traffic:
        t0 = time.monotonic()
        switch_killed_at(stack, tmp_path, "dolphin", phase)
        code, doc = status(stack)
        assert doc["gpu_groups"]["gpu0"]["running"] == left, doc["gpu_groups"]
        if not left:
            assert code == 1 and doc["gpu_groups"]["gpu0"]["active"] is None
        r = stack.run("switch", "dolphin")  # the repair: same target
        assert r.returncode == 0, r.stdout + r.stderr
        t1 = time.monotonic()
    assert_one_member(stack, "vllm-dolphin")
    during = [a for a in traffic.answers if t0 <= a.t <= t1]
    lost = [a for a in during if not a.ok]
    FIGURES[f"switch SIGKILLed {phase}"] = {"sent": len(during), "lost": len(lost)}
    assert lost == [], lost[:3]  # the fallbacks served both models throughout
    r = stack.run("switch", "qwen")
    assert r.returncode == 0, r.stdout + r.stderr
    assert_one_member(stack, "vllm-qwen")


def test_two_members_running_status_says_so_and_switch_keeps_one(stack, tmp_path):
    # an interrupted switch whose old member was then started again (e.g. by hand)
    switch_killed_at(stack, tmp_path, "dolphin", "after_start")
    docker("start", f"{stack.project}-vllm-qwen-1")
    assert running_members(stack) == {"vllm-qwen", "vllm-dolphin"}
    code, doc = status(stack)
    assert code == 1 and doc["gpu_groups"]["gpu0"]["running"] == ["vllm-qwen", "vllm-dolphin"]
    r = stack.run("status")
    assert "2 members running (vllm-qwen, vllm-dolphin), it must be one" in r.stdout, r.stdout
    r = stack.run("up")  # refuses to call this healthy, and names the repair
    assert r.returncode == 1 and "`stackctl switch vllm-qwen` keeps vllm-qwen" in r.stderr, \
        r.stdout + r.stderr
    r = stack.run("switch", "qwen")
    assert r.returncode == 0, r.stdout + r.stderr
    assert_one_member(stack, "vllm-qwen")


def test_target_already_running_but_never_ready_is_rolled_back_not_reported_active(
        stack, tmp_path):
    def never_ready(data: dict) -> None:
        data["providers"]["vllm-dolphin"]["container"]["env"]["STUB_NEVER_READY"] = "1"

    def ready_again(data: dict) -> None:
        data["providers"]["vllm-dolphin"]["container"]["env"].pop("STUB_NEVER_READY")
    stack.edit("providers.yaml", never_ready)
    try:
        assert stack.run("generate").returncode == 0
        switch_killed_at(stack, tmp_path, "dolphin", "after_start")
        assert running_members(stack) == {"vllm-dolphin"}
        r = stack.run("switch", "dolphin", "--timeout", "6")
        assert r.returncode == 1, r.stdout + r.stderr
        assert "vllm-dolphin (already running) not healthy after 6s" in r.stderr, r.stderr
        assert "GPU group 'gpu0' has no active member" in r.stderr and "Traceback" not in r.stderr
        assert running_members(stack) == set()
    finally:
        stack.edit("providers.yaml", ready_again)
        assert stack.run("generate").returncode == 0
    r = stack.run("switch", "qwen")
    assert r.returncode == 0, r.stdout + r.stderr
    assert_one_member(stack, "vllm-qwen")


# -- a container removed behind stackctl's back ---------------------------------------------

def test_active_member_removed_status_tells_and_up_recreates_it(stack):
    docker("rm", "-f", f"{stack.project}-vllm-qwen-1")
    code, doc = status(stack)
    assert rows(doc)["vllm-qwen"]["state"] == "absent", rows(doc)["vllm-qwen"]
    assert doc["gpu_groups"]["gpu0"]["active"] is None
    r = stack.run("status")
    assert "GPU group gpu0 (restart): active none" in r.stdout
    r = stack.run("up", "--timeout", "120")
    assert r.returncode == 0, r.stdout + r.stderr
    assert_one_member(stack, "vllm-qwen")


def test_active_member_removed_switch_to_it_recreates_it(stack):
    docker("rm", "-f", f"{stack.project}-vllm-qwen-1")
    r = stack.run("switch", "qwen")
    assert r.returncode == 0, r.stdout + r.stderr
    assert_one_member(stack, "vllm-qwen")
