"""Issue 10 on the real engine: a foreign process on the gateway's port is reported by
`ports` with its pid and stops `up` before anything starts; once up, the stack's own ports
are "ours" (docker-proxy of its containers); another container on a port it needs is named.

The foreign-listener test has a stack of its own that never starts; the running stack is
the session's shared one (conftest.py).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from stackctl.registry.models import Monitoring
from tests.integration.conftest import claim_ports

pytestmark = pytest.mark.integration
PROJECT = "stackctl-it-ports"
INTRUDER = f"{PROJECT}-intruder"
# the shared stack's default profiles
STARTED = ["litellm", "redis", "llama_cpp", "ollama", "vllm-qwen"]
SERVER = """
import socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen()
print("listening", flush=True)
time.sleep(600)
"""


@pytest.fixture(scope="module")
def stack(stack_factory):
    s = stack_factory(PROJECT)
    offset = s.port("litellm") - 4000
    # monitoring's ports shifted like the rest: another stack's Grafana on :3000 is not ours
    mon = {"prometheus": 9090, "grafana": 3000, "loki": 3100}
    s.ports.update({name: port + offset for name, port in mon.items()})
    claim_ports(s)  # again, with these

    def shift(data: dict) -> None:
        defaults = Monitoring()
        data["monitoring"].update({name: {"image": getattr(defaults, name).image,
                                          "host_port": s.port(name)} for name in mon})

    s.edit("stack.yaml", shift)
    return s


@pytest.fixture
def intruder():
    """The name of a container of no project that the test starts; removed afterwards."""
    yield INTRUDER
    subprocess.run(["docker", "rm", "-f", INTRUDER], capture_output=True)


@pytest.fixture
def foreign_server(stack):
    """A Python socket server of this test's own on the gateway's port, 127.0.0.1 only."""
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(stack.port("litellm"))],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "listening"
    yield proc
    proc.kill()
    proc.wait()


def ports(stack) -> tuple[int, dict]:
    r = stack.run("ports", "--json", timeout=60)
    return r.returncode, {p["service"]: p for p in json.loads(r.stdout)["ports"]}


def test_a_foreign_listener_is_reported_with_its_pid_and_stops_up(stack, foreign_server):
    code, found = ports(stack)
    assert code == 1, found
    gw = found["litellm"]
    assert (gw["port"], gw["address"], gw["state"], gw["pid"]) == (
        stack.port("litellm"), "127.0.0.1", "foreign", foreign_server.pid)
    assert gw["process"].startswith("python") and gw["container"] is None
    assert {found[s]["state"] for s in found if s != "litellm"} == {"free"}

    r = stack.run("ports")
    assert r.returncode == 1
    assert (f"conflict: port {stack.port('litellm')} on 127.0.0.1 (litellm) is held by "
            f"{gw['process']} pid {foreign_server.pid}: stop it (kill {foreign_server.pid}), or "
            "give litellm another port: gateway.host_port in stack.yaml") in r.stdout

    r = stack.run("up", "--timeout", "120")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "1 port(s) the stack needs are taken, nothing was started" in r.stderr
    assert f"pid {foreign_server.pid}" in r.stderr and "gateway.host_port" in r.stderr
    assert "already in use" not in r.stdout + r.stderr
    assert stack.docker_objects()["containers"] == []


def test_own_containers_are_ours_and_another_container_is_named(shared_stack, intruder):
    stack = shared_stack
    r = stack.run("up", "-p", "ollama", "--timeout", "180")  # what runs already: a no-op
    assert r.returncode == 0, r.stdout + r.stderr
    code, found = ports(stack)
    assert code == 0, found
    for service in STARTED:
        st = found[service]
        assert (st["state"], st["container"]) == ("ours", f"{stack.project}-{service}-1"), st
        assert st["process"] == "docker-proxy" and st["pid"], st  # root sees the proxy's pid
    assert {found[s]["state"] for s in found if s not in STARTED} == {"free"}

    # a container of no project publishes a port the stack needs (not for this profile)
    dolphin = stack.port("vllm-dolphin")
    subprocess.run(["docker", "run", "-d", "--name", intruder, "-p", f"127.0.0.1:{dolphin}:8000",
                    "--entrypoint", "sleep", "stackctl-local/inference-stub:1", "300"],
                   capture_output=True, check=True)
    code, found = ports(stack)
    assert code == 1
    st = found["vllm-dolphin"]
    assert (st["state"], st["container"], st["holders"][0]["project"]) == (
        "foreign", intruder, None)
    assert found["litellm"]["state"] == "ours"
    # `up` of what already runs is not disturbed by a conflict elsewhere
    r = stack.run("up", "-p", "ollama", "--timeout", "60")
    assert r.returncode == 0, r.stdout + r.stderr
