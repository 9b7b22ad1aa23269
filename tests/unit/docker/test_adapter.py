"""The adapter's own calls, on a fake python-on-whales client (no engine)."""

from __future__ import annotations

import subprocess
import sys

from stackctl.docker.adapter import Docker


class FakeContainers:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def execute(self, container, command):  # type: ignore[no-untyped-def]
        self.calls.append(("execute", container, list(command)))
        return "out"

    def kill(self, *a, **k):  # type: ignore[no-untyped-def]
        raise AssertionError("docker kill marks the container as stopped by hand")


class FakeClient:
    def __init__(self) -> None:
        self.container = FakeContainers()


def test_exec_runs_the_command_in_the_container_and_returns_its_output():
    client = FakeClient()
    docker = Docker(client=client)  # type: ignore[arg-type]
    assert docker.exec("p-litellm-1", ["python3", "-c", "pass"]) == "out"
    assert client.container.calls == [("execute", "p-litellm-1", ["python3", "-c", "pass"])]


def test_a_signal_reaches_pid_1_from_inside_without_docker_kill():
    # `docker kill -s` would make Docker count the container as stopped by hand: its restart
    # policy would then not restart it after a crash (FakeContainers.kill raises)
    client = FakeClient()
    Docker(client=client).signal("p-litellm-1", "SIGTTIN")  # type: ignore[arg-type]
    ((verb, container, command),) = client.container.calls
    assert (verb, container, command[:2]) == ("execute", "p-litellm-1", ["sh", "-c"])
    # the same shell line, run by this machine's sh against a process standing in for PID 1
    child = subprocess.Popen([sys.executable, "-c", (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTTIN, lambda *a: (print('TTIN', flush=True), sys.exit(0)))\n"
        "print('ready', flush=True)\ntime.sleep(30)")], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "ready"
    subprocess.run(["sh", "-c", command[2].replace(" 1", f" {child.pid}")], check=True)
    assert child.stdout.readline().strip() == "TTIN"
    assert child.wait(5) == 0
