"""The adapter's own calls, on a fake python-on-whales client (no engine)."""

from __future__ import annotations

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
