"""The one Docker adapter. Everything stackctl asks of Docker goes through `Docker`.

Unit tests inject a fake with the same methods; integration tests use the real engine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .state import ContainerState

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"


class DockerError(Exception):
    """Docker or Compose refused; the message is Docker's own, for the user."""


class Docker:
    def __init__(self, compose_file: Path, project: str, env_file: Path | None = None):
        from python_on_whales import DockerClient  # slow import: only when Docker is needed

        self.compose_file = compose_file
        self.project = project
        self.env_file = env_file if env_file and env_file.exists() else None
        self._client_cls = DockerClient
        self.client = self._compose([])

    def _compose(self, profiles: list[str]) -> Any:
        return self._client_cls(
            compose_files=[self.compose_file], compose_project_name=self.project,
            compose_profiles=list(profiles),
            compose_env_files=[self.env_file] if self.env_file else [])

    def _run(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        from python_on_whales.exceptions import DockerException

        try:
            return fn(*args, **kwargs)
        except DockerException as exc:
            detail = (exc.stderr or exc.stdout or str(exc)).strip()
            raise DockerError(detail.splitlines()[-1] if detail else str(exc)) from None

    # -- compose -----------------------------------------------------------------------------
    def up(self, profiles: list[str], services: list[str] | None = None) -> None:
        self._run(self._compose(profiles).compose.up, services=services or None, detach=True,
                  pull="never", quiet=True)

    def down(self, profiles: list[str], volumes: bool = False) -> None:
        self._run(self._compose(profiles).compose.down, volumes=volumes, remove_orphans=True,
                  quiet=True)

    def remove_services(self, services: list[str], volumes: bool = False) -> None:
        self._run(self.client.compose.rm, services=services, stop=True, volumes=volumes)

    # -- containers --------------------------------------------------------------------------
    def containers(self) -> list[ContainerState]:
        """Every container of the project, any state, from two Docker calls.

        python-on-whales' Container objects re-inspect on attribute access (one call per
        container and attribute): status would cost ~50 ms per container. So the raw
        `docker container inspect` JSON of all of them is read once.
        """
        import json

        from python_on_whales.utils import run

        base = self.client.client_config.docker_cmd
        ids = self._run(run, base + ["container", "ls", "-aq", "--no-trunc", "--filter",
                                     f"label={PROJECT_LABEL}={self.project}"])
        if not ids or not ids.split():
            return []
        raw = self._run(run, base + ["container", "inspect", *ids.split()])
        return [_state(c) for c in json.loads(raw)]

    def logs(self, container: str, tail: int = 20) -> str:
        try:
            return self._run(self.client.container.logs, container, tail=tail)
        except DockerError as exc:
            return f"(no logs: {exc})"

    def stop(self, container: str, timeout: float) -> None:
        self._run(self.client.container.stop, container, time=int(round(timeout)))

    def remove(self, container: str) -> None:
        self._run(self.client.container.remove, container, force=True)

    def start_service(self, profiles: list[str], service: str) -> None:
        """Create/start one service with its profile, leaving the others untouched."""
        self._run(self._compose(profiles).compose.up, services=[service], detach=True,
                  pull="never", quiet=True, dependencies=False)

    def networks(self) -> list[str]:
        nets = self._run(self.client.network.list,
                         filters={"label": f"{PROJECT_LABEL}={self.project}"})
        return [n.name for n in nets]

    def volumes(self) -> list[str]:
        vols = self._run(self.client.volume.list,
                         filters={"label": f"{PROJECT_LABEL}={self.project}"})
        return [v.name for v in vols]

    def image_exists(self, tag: str) -> bool:
        return bool(self._run(self.client.image.exists, tag))


def _state(c: dict[str, Any]) -> ContainerState:
    st = c["State"]
    labels = dict(c["Config"].get("Labels") or {})
    name = c["Name"].lstrip("/")
    return ContainerState(name=name, service=labels.get(SERVICE_LABEL, name),
                          state=st["Status"], health=(st.get("Health") or {}).get("Status")
                          or "none", exit_code=st.get("ExitCode"), labels=labels)
