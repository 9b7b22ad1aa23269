"""The one Docker adapter. Everything stackctl asks of the engine for a stack goes through
`Docker`; unit tests inject a fake with the same methods, integration tests use the real
engine.

Compose operations drive the `docker compose` CLI; container verbs (list, inspect, start,
stop) go to the Engine API socket (engine_api.py), which `status` and `switch` call on
their critical path. python-on-whales is not used here: importing it costs ~0.8 s (it
builds models for every Docker object), paid on every run for a handful of verbs. The
image builder, which is not on a hot path, still uses it (docker_images.py).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..ops import engine_api
from ..ops.lock import state_dir
from .models import ContainerState

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
        import subprocess  # here: `switch` runs compose in a thread, off its critical path

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

    def create_service(self, profiles: list[str], service: str) -> str | None:
        """Create one service's container without starting it and return its name (None: it
        has none). Compose recreates it when its configuration changed, else keeps it.

        Compose needs ~0.2 s even to decide that nothing changed, which `switch` would wait
        for. So when this adapter itself created the existing container from identical input
        (compose file, .env, the variables the file interpolates, profiles) and its image
        tag still names the image it runs, Compose is not asked again."""
        memo = state_dir() / "created" / f"{self.project}.json"
        digest = self._input_digest(profiles, service)
        try:
            known = json.loads(memo.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            known = {}
        current = self._service_container(service)
        if current and known.get(service) == f"{current['Id']}:{digest}" \
                and self._image_current(current["Id"]):
            return _name(current)
        self._compose(profiles, "create", "--pull", "never", service)
        current = self._service_container(service)
        if current:
            try:
                memo.parent.mkdir(parents=True, exist_ok=True)
                tmp = memo.with_name(f".{os.getpid()}.tmp")
                tmp.write_text(json.dumps({**known, service: f"{current['Id']}:{digest}"}),
                               encoding="utf-8")
                os.replace(tmp, memo)
            except OSError:
                pass  # a read-only state folder only costs speed
        return _name(current) if current else None

    def _input_digest(self, profiles: list[str], service: str) -> str:
        import hashlib
        import re

        text = self.compose_file.read_bytes()
        h = hashlib.sha256(text)
        if self.env_file:
            h.update(b"\0" + self.env_file.read_bytes())
        names = sorted(set(re.findall(rb"\$\{?([A-Za-z_][A-Za-z0-9_]*)", text)))
        for name in names:  # Compose interpolates these from the environment too
            h.update(b"\0" + name + b"=" + os.environb.get(name, b"\1"))
        h.update(f"\0{sorted(profiles)}\0{service}".encode())
        return h.hexdigest()

    def _service_container(self, service: str) -> dict[str, Any] | None:
        """The engine's list entry of the service's one container (None: none, or several)."""
        found = self._api("GET", "/containers/json", all=1, filters=json.dumps({"label": [
            f"{PROJECT_LABEL}={self.project}", f"{SERVICE_LABEL}={service}"]})) or []
        return found[0] if len(found) == 1 else None

    def _image_current(self, container: str) -> bool:
        """The container runs the image its tag names now (not one rebuilt since)."""
        try:
            c = self._api("GET", f"/containers/{container}/json")
            return self._api("GET", f"/images/{c['Config']['Image']}/json")["Id"] == c["Image"]
        except (DockerError, KeyError, TypeError):
            return False

    # -- containers (Engine API) ---------------------------------------------------------------
    def _api(self, method: str, path: str, timeout: float = 30, **query: Any) -> Any:
        try:
            return engine_api.call(method, path, timeout, **query)
        except (engine_api.EngineUnreachable, engine_api.EngineRefused) as exc:
            raise DockerError(str(exc)) from None

    def containers(self) -> list[ContainerState]:
        """Every container of the project, any state (one list, one inspect each)."""
        found = self._api("GET", "/containers/json", all=1, filters=json.dumps(
            {"label": [f"{PROJECT_LABEL}={self.project}"]}))
        states = []
        for c in found or []:
            try:
                states.append(_state(engine_api.call("GET", f"/containers/{c['Id']}/json")))
            except engine_api.EngineRefused as exc:
                if exc.status != 404:  # 404: removed between the list and the inspect
                    raise DockerError(str(exc)) from None
            except engine_api.EngineUnreachable as exc:
                raise DockerError(str(exc)) from None
        return states

    def start(self, container: str) -> None:
        self._api("POST", f"/containers/{container}/start")

    def stop(self, container: str, timeout: float) -> None:
        """SIGTERM, then SIGKILL after `timeout` s; returns once the container has stopped."""
        grace = int(round(timeout))
        self._api("POST", f"/containers/{container}/stop", timeout=grace + 30, t=grace)

    def logs(self, container: str, tail: int = 20) -> str:
        import subprocess

        try:
            done = subprocess.run(["docker", "logs", "--tail", str(tail), container],
                                  capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"(no logs: {exc})"
        return done.stdout + done.stderr  # servers log to either


def _name(listed: dict[str, Any]) -> str:
    return listed["Names"][0].lstrip("/")


def _state(c: dict[str, Any]) -> ContainerState:
    st = c["State"]
    labels = dict(c["Config"].get("Labels") or {})
    name = c["Name"].lstrip("/")
    # a stopped container keeps the health of its last probe: stale, so not reported
    health = (st.get("Health") or {}).get("Status") if st["Status"] == "running" else None
    return ContainerState(name=name, service=labels.get(SERVICE_LABEL, name),
                          state=st["Status"], health=health or "none",
                          exit_code=st.get("ExitCode"), labels=labels)
