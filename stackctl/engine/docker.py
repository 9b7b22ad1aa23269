"""The one Docker adapter. Everything stackctl asks of the engine for a stack goes through
`Docker`; unit tests inject a fake with the same methods, integration tests use the real
engine.

It drives the `docker` / `docker compose` CLI directly, as python-on-whales does under the
hood: importing python-on-whales costs ~0.8 s (it builds models for every Docker object),
which `status` and `switch` paid on every run for the handful of verbs used here. The
image builder, which is not on a hot path, still uses python-on-whales (docker_images.py).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from .state import ContainerState

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"


class DockerError(Exception):
    """Docker or Compose refused; the message is Docker's own, for the user."""


class Docker:
    def __init__(self, compose_file: Path, project: str, env_file: Path | None = None):
        self.compose_file = compose_file
        self.project = project
        self.env_file = env_file if env_file and env_file.exists() else None

    def _run(self, args: list[str], timeout: float = 600) -> str:
        try:
            done = subprocess.run(["docker", *args], capture_output=True, text=True,
                                  timeout=timeout)
        except FileNotFoundError:
            raise DockerError("the docker CLI is not installed: run scripts/ensure-docker.sh") \
                from None
        except subprocess.TimeoutExpired:
            raise DockerError(f"`docker {' '.join(args[:3])} …` did not finish in "
                              f"{timeout:g}s") from None
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).strip().splitlines()
            raise DockerError(detail[-1] if detail else f"docker {args[0]} failed")
        return done.stdout

    def _compose(self, profiles: list[str], *args: str) -> str:
        cmd = ["compose", "-f", str(self.compose_file), "-p", self.project]
        if self.env_file:
            cmd += ["--env-file", str(self.env_file)]
        for p in profiles:
            cmd += ["--profile", p]
        return self._run(cmd + list(args))

    # -- compose -----------------------------------------------------------------------------
    def up(self, profiles: list[str], services: list[str] | None = None) -> None:
        self._compose(profiles, "up", "-d", "--pull", "never", "--quiet-pull", *(services or []))

    def down(self, profiles: list[str], volumes: bool = False) -> None:
        self._compose(profiles, "down", "--remove-orphans", *(["--volumes"] if volumes else []))

    def remove_services(self, services: list[str], volumes: bool = False) -> None:
        if services:
            self._compose([], "rm", "--stop", "--force", *(["--volumes"] if volumes else []),
                          *services)

    def start_service(self, profiles: list[str], service: str) -> None:
        """Create/start one service with its profile, leaving every other one untouched."""
        self._compose(profiles, "up", "-d", "--pull", "never", "--no-deps", service)

    # -- containers --------------------------------------------------------------------------
    def containers(self) -> list[ContainerState]:
        """Every container of the project, any state: one `ls` and one `inspect`."""
        ids = self._run(["container", "ls", "-aq", "--no-trunc", "--filter",
                         f"label={PROJECT_LABEL}={self.project}"]).split()
        if not ids:
            return []
        return [_state(c) for c in json.loads(self._run(["container", "inspect", *ids]))]

    def logs(self, container: str, tail: int = 20) -> str:
        try:
            done = subprocess.run(["docker", "logs", "--tail", str(tail), container],
                                  capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"(no logs: {exc})"
        return done.stdout + done.stderr  # servers log to either

    def stop(self, container: str, timeout: float) -> None:
        self._run(["stop", "-t", str(int(round(timeout))), container], timeout=timeout + 30)

    def remove(self, container: str) -> None:
        self._run(["rm", "-f", container])


def _state(c: dict[str, Any]) -> ContainerState:
    st = c["State"]
    labels = dict(c["Config"].get("Labels") or {})
    name = c["Name"].lstrip("/")
    return ContainerState(name=name, service=labels.get(SERVICE_LABEL, name),
                          state=st["Status"], health=(st.get("Health") or {}).get("Status")
                          or "none", exit_code=st.get("ExitCode"), labels=labels)
