"""A fake of stackctl.docker.adapter.Docker that records calls and simulates containers.

Containers of the offline example's GPU-group members carry their group label, as the
generated compose file gives it (`groups`).

`behaviour[service]` decides what a started container does: "healthy" (default),
"never" (stays starting), "exit" (exits with code 1), "unhealthy".
"""

from __future__ import annotations

from stackctl.docker.models import ContainerState

OFFLINE_GROUPS = {"vllm-qwen": "gpu0", "vllm-dolphin": "gpu0"}


class FakeDocker:
    def __init__(self, project: str = "p", running: dict[str, dict[str, str]] | None = None,
                 images: dict[str, str] | None = None, present: set[str] | None = None,
                 groups: dict[str, str] | None = None):
        self.project = project
        self.groups = OFFLINE_GROUPS if groups is None else groups
        self.images = images or {}  # service → image, as `compose config` would resolve it
        self.present = set(self.images.values()) if present is None else present
        self.calls: list[tuple] = []
        self.behaviour: dict[str, str] = {}
        self.state: dict[str, ContainerState] = {}
        for service, labels in (running or {}).items():
            self._make(service, "healthy", labels)

    def _make(self, service: str, how: str, labels: dict[str, str] | None = None) -> None:
        name = f"{self.project}-{service}-1"
        kinds = {"healthy": ("running", "healthy", None), "never": ("running", "starting", None),
                 "exit": ("exited", "none", 1), "unhealthy": ("running", "unhealthy", None)}
        st, health, code = kinds[how]
        group = {"org.stackctl.gpu-group": self.groups[service]} if service in self.groups else {}
        self.state[service] = ContainerState(name=name, service=service, state=st,
                                             health=health, exit_code=code,
                                             labels={**group, **(labels or {})})

    def containers(self, service: str | None = None, group: str | None = None
                   ) -> list[ContainerState]:
        return [s for s in self.state.values() if service in (None, s.service)
                and group in (None, s.gpu_group)]

    def up(self, profiles: list[str], services: list[str] | None = None) -> None:
        self.calls.append(("up", tuple(profiles), tuple(services or ())))
        for s in services or ():
            self._make(s, self.behaviour.get(s, "healthy"))

    def create_service(self, profiles: list[str], service: str) -> str | None:
        self.calls.append(("create", service))
        if service not in self.state:
            self._make(service, "healthy")
            self.state[service].state, self.state[service].health = "created", "none"
        return self.state[service].name

    def start(self, container: str) -> None:
        self.calls.append(("start", container))
        service = next(s.service for s in self.state.values() if s.name == container)
        self._make(service, self.behaviour.get(service, "healthy"), self.state[service].labels)

    def stop(self, container: str, timeout: float) -> None:
        self.calls.append(("stop", container))
        for s in self.state.values():
            if s.name == container:
                s.state, s.health = "exited", "none"

    def logs(self, container: str, tail: int = 20) -> str:
        return f"log of {container}\nloading..."

    def down(self, profiles: list[str], volumes: bool = False) -> None:
        self.calls.append(("down", tuple(profiles), volumes))
        self.state.clear()

    def remove_services(self, services: list[str], volumes: bool = False) -> None:
        self.calls.append(("rm", tuple(services), volumes))
        for s in services:
            self.state.pop(s, None)

    def service_images(self, profiles: list[str], services: list[str]) -> dict[str, str]:
        return {s: i for s, i in self.images.items() if s in services}

    def image_exists(self, image: str) -> bool:
        return image in self.present

    def pull(self, image: str) -> None:
        from stackctl.docker.adapter import DockerError

        self.calls.append(("pull", image))
        if not image.startswith("pullable/"):
            raise DockerError(f"docker pull {image}: no registry reachable")
        self.present.add(image)

    def publish(self, service: str, port: int, address: str = "127.0.0.1",
                project: str | None = None) -> None:
        """`service`'s container publishes `port` while it runs; with `project`, a running
        container of that other project (named like Compose would) does."""
        self.__dict__.setdefault("_published", []).append((service, port, address, project))

    def published_ports(self) -> list[dict]:
        out = []
        for service, port, address, project in self.__dict__.get("_published", []):
            if project is None:
                st = self.state.get(service)
                if st is None or not st.running:
                    continue
                name, project = st.name, self.project
            else:
                name = f"{project}-{service}-1"
            out.append({"container": name, "project": project, "service": service,
                        "address": address, "port": port})
        return out

    # -- doctor: the engine's facts; set `engine` to None for "no engine answers" ---------
    engine: dict | None = {"version": "27.3.1", "runtimes": ["runc"],
                           "root_dir": "/var/lib/docker"}
    compose: str | None = "Docker Compose version v2.40.3"  # None: the plugin is missing

    def info(self) -> dict:
        from stackctl.docker.adapter import EngineUnreachable

        if self.engine is None:
            raise EngineUnreachable("no Docker engine answers (Cannot connect to the Docker "
                                    "daemon at unix:///nowhere.sock. Is the docker daemon "
                                    "running?); scripts/ensure-docker.sh starts one")
        return dict(self.engine)

    def signal(self, container: str, signal: str) -> None:
        self.calls.append(("signal", container, signal))

    def ping(self) -> None:
        self.info()

    def compose_version(self) -> str:
        from stackctl.docker.adapter import DockerError

        if self.compose is None:
            raise DockerError("docker compose version: docker: 'compose' is not a docker "
                              "command.")
        return self.compose

    # -- logs: `log_text[container]` is its log so far; `log_new[container]` what a follow
    # reads (from its `since`: it may repeat the end of log_text), then the follow ends, as
    # when the container stops ----------------------------------------------------------
    def log_lines(self, container: str, since: str | None = None, follow: bool = False,
                  tail: int | None = None):
        self.calls.append(("log_lines", container, since, follow, tail))
        source = self.__dict__.setdefault("log_new" if follow else "log_text", {})
        lines = list(source.get(container, []))
        yield from lines[-tail:] if tail else lines

    def service_log_lines(self, profiles: list[str], services: list[str], follow: bool = False,
                          since: str | None = None, tail: int | None = None,
                          timestamps: bool = False):
        self.calls.append(("service_log_lines", tuple(services), follow, since, tail,
                           timestamps))
        for service in services or sorted(self.state):
            yield f"{service}-1  | log of {service}"

    # -- model files: `volume_files[volume]` the files in a named volume (registry name);
    # a volume absent from it does not exist ------------------------------------------
    def copy_into(self, container: str, source, dest: str) -> None:
        self.calls.append(("copy_into", container, str(source), dest))

    def volume_file(self, volume: str, path: str, image: str) -> bool | None:
        self.calls.append(("volume_file", volume, path, image))
        files = self.__dict__.get("volume_files", {})
        return None if volume not in files else path in files[volume]
