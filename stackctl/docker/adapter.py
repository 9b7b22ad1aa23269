"""The one Docker adapter. Everything stackctl asks of the engine goes through `Docker`, on
python-on-whales (Compose v2, containers, images); unit tests inject a fake with the same
methods, integration tests use the real engine.

python-on-whales is imported inside the methods, when a command first needs Docker: this
module is imported by commands that never call the engine (`validate`, through
cli.common's error mapping) and python-on-whales costs them ~150 ms (measured).
"""

from __future__ import annotations

import json
import queue
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from stackctl.docker.images import ImageOps
from stackctl.docker.models import ContainerState

if TYPE_CHECKING:
    from python_on_whales import Container, DockerClient

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
GROUP_LABEL = "org.stackctl.gpu-group"
T = TypeVar("T")


class DockerError(Exception):
    """Docker or Compose refused; the message is Docker's own, for the user."""


class EngineUnreachable(DockerError):
    """No Docker engine answers (or no docker CLI): nothing about the stack can be known."""


UNREACHABLE = ("Cannot connect to the Docker daemon", "error during connect",
                "Is the docker daemon running")


@contextmanager
def docker_errors(what: str) -> Iterator[None]:
    """python-on-whales' exceptions as DockerError: Docker's last line, no command dump."""
    from python_on_whales.exceptions import DockerException  # ~150 ms: see the module doc

    try:
        yield
    except FileNotFoundError:
        raise EngineUnreachable("the docker CLI is not installed: run scripts/ensure-docker.sh") \
            from None
    except DockerException as exc:
        text = (exc.stderr or exc.stdout or "").strip()
        if any(marker in text for marker in UNREACHABLE):
            raise EngineUnreachable(f"no Docker engine answers ({text.splitlines()[-1]}); "
                                    "scripts/ensure-docker.sh starts one") from None
        lines = [line for line in text.splitlines() if line.strip()]
        raise DockerError(f"{what}: {lines[-1] if lines else f'exit {exc.return_code}'}") \
            from None


class Docker:
    """Compose operations on one project's file, its containers, and the engine's images."""

    def __init__(self, compose_file: Path | None = None, project: str = "",
                 env_file: Path | None = None, client: DockerClient | None = None):
        from python_on_whales import DockerClient  # ~150 ms: see the module doc

        self.compose_file = compose_file
        self.project = project
        self.env_file = env_file if env_file and env_file.exists() else None
        self._client = client or DockerClient()

    def ping(self) -> None:
        """EngineUnreachable unless an engine answers `docker info`."""
        self._call("docker info", self._client.system.info)

    def info(self) -> dict[str, Any]:
        """The engine's facts `doctor` reports, from one `docker info`: `version` (the
        server's), `runtimes` (names, e.g. runc, nvidia), `root_dir` (DockerRootDir, where
        images and volumes live). EngineUnreachable when no engine answers."""
        info = self._call("docker info", self._client.system.info)
        return {"version": info.server_version or "", "runtimes": sorted(info.runtimes or {}),
                "root_dir": str(info.docker_root_dir or "")}

    def compose_version(self) -> str:
        """`docker compose version` as printed (e.g. "Docker Compose version v2.40.3");
        needs no engine. DockerError when the Compose v2 plugin is missing."""
        return self._call("docker compose version", self._client.compose.version)

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        with docker_errors(what):
            return fn()

    def _compose(self, profiles: list[str]) -> Any:
        from python_on_whales import DockerClient  # ~150 ms: see the module doc

        assert self.compose_file is not None, "a Docker adapter without a compose file"
        return DockerClient(compose_files=[self.compose_file], compose_project_name=self.project,
                            compose_env_files=[self.env_file] if self.env_file else [],
                            compose_profiles=profiles).compose

    # -- compose -----------------------------------------------------------------------------
    def up(self, profiles: list[str], services: list[str] | None = None) -> None:
        self._call("docker compose up", lambda: self._compose(profiles).up(
            services or None, detach=True, pull="never", quiet=True))

    def down(self, profiles: list[str], volumes: bool = False) -> None:
        self._call("docker compose down", lambda: self._compose(profiles).down(
            remove_orphans=True, volumes=volumes, quiet=True))

    def remove_services(self, services: list[str], volumes: bool = False) -> None:
        if services:
            self._call("docker compose rm", lambda: self._compose([]).rm(
                services, stop=True, volumes=volumes))

    def create_service(self, profiles: list[str], service: str) -> str | None:
        """Create one service's container without starting it (Compose recreates it when its
        configuration changed, else keeps it); its name, or None when it has none."""
        self._call(f"docker compose create {service}", lambda: self._compose(profiles).create(
            service, pull="never"))
        found = self.containers(service=service)
        return found[0].name if len(found) == 1 else None

    def service_images(self, profiles: list[str], services: list[str]) -> dict[str, str]:
        """service → image, as Compose resolves the file for these profiles."""
        config = self._call("docker compose config",
                            lambda: self._compose(profiles).config(return_json=True))
        return {name: svc["image"] for name, svc in config.get("services", {}).items()
                if name in services and svc.get("image")}

    # -- containers --------------------------------------------------------------------------
    def containers(self, service: str | None = None, group: str | None = None
                   ) -> list[ContainerState]:
        """The project's containers in any state; only one service's, or one GPU group's."""
        # here: concurrent.futures costs ~5 ms (measured) to every command importing the
        # adapter, `validate` included (through cli.common)
        from concurrent.futures import ThreadPoolExecutor

        filters = [("label", f"{PROJECT_LABEL}={self.project}")]
        if service:
            filters.append(("label", f"{SERVICE_LABEL}={service}"))
        if group:
            filters.append(("label", f"{GROUP_LABEL}={group}"))
        listed = self._call("docker container ls",
                            lambda: self._client.container.list(all=True, filters=filters))
        if len(listed) < 2:
            return [s for s in map(self._inspected, listed) if s]
        try:  # one `docker inspect` for all of them: a poll costs one CLI round trip
            both = self._call("docker container inspect",
                              lambda: self._client.container.inspect([c.id for c in listed]))
            return [_state(c) for c in both]
        except DockerError as exc:
            if "No such" not in str(exc):
                raise
        # one was removed between the list and the inspect: each on its own
        with ThreadPoolExecutor(max_workers=min(len(listed), 8)) as pool:
            return [s for s in pool.map(self._inspected, listed) if s]

    def _inspected(self, c: Container) -> ContainerState | None:
        try:
            return self._call("docker container inspect", lambda: _state(c))
        except DockerError as exc:
            if "No such" in str(exc):  # removed between the list and the inspect
                return None
            raise

    def published_ports(self) -> list[dict[str, Any]]:
        """Every TCP host port a running container publishes, whatever its project: dicts of
        container, project and service (Compose labels; None outside Compose), address (the
        host IP; 0.0.0.0 when Docker leaves it empty) and port. One `docker inspect` for all."""
        from python_on_whales.utils import run  # ~150 ms: see the module doc

        def published() -> list[dict[str, Any]]:
            ids = [c.id for c in self._client.container.list()]
            if not ids:
                return []
            found = json.loads(run(self._client.client_config.docker_cmd
                                   + ["container", "inspect", *ids]))
            out = []
            for c in found:
                labels = (c.get("Config") or {}).get("Labels") or {}
                for key, binds in ((c.get("NetworkSettings") or {}).get("Ports") or {}).items():
                    if not key.endswith("/tcp"):
                        continue
                    for b in binds or []:
                        out.append({"container": c["Name"].lstrip("/"),
                                    "project": labels.get(PROJECT_LABEL),
                                    "service": labels.get(SERVICE_LABEL),
                                    "address": b.get("HostIp") or "0.0.0.0",
                                    "port": int(b["HostPort"])})
            return out

        try:
            return self._call("docker container inspect", published)
        except DockerError as exc:
            if "No such" not in str(exc):
                raise
            # a container went away between the list and the inspect: once more
            return self._call("docker container inspect", published)

    def start(self, container: str) -> None:
        self._call(f"docker start {container}", lambda: self._client.container.start(container))

    def stop(self, container: str, timeout: float) -> None:
        """SIGTERM, then SIGKILL after `timeout` s; returns once the container has stopped."""
        self._call(f"docker stop {container}",
                   lambda: self._client.container.stop(container, time=int(round(timeout))))

    def logs(self, container: str, tail: int = 20) -> str:
        try:
            return self._call("docker logs", lambda: self._client.container.logs(
                container, tail=tail))
        except DockerError as exc:
            return f"(no logs: {exc})"

    def exec(self, container: str, command: list[str]) -> str:
        """`docker exec CONTAINER COMMAND…`; its stdout."""
        return self._call(f"docker exec {container}",
                          lambda: self._client.container.execute(container, command) or "")

    def signal(self, container: str, signal: str) -> None:
        """Send SIG`signal` to the container's PID 1 from inside it. Not `docker kill -s`:
        after that Docker counts the container as stopped by hand, and its restart policy
        no longer restarts it when it crashes. `kill` is a builtin of every image's sh
        (python3 is not in the upstream Prometheus image)."""
        self.exec(container, ["sh", "-c", f"kill -{signal.removeprefix('SIG')} 1"])

    def run_python(self, image: str, script: Path, args: list[str],
                   mounts: list[tuple[Path, str]]) -> str:
        """`script` run with the image's python3, read-only mounts, no network; its stdout."""
        volumes = [(script, "/stackctl/" + script.name, "ro")]
        volumes += [(host, inside, "ro") for host, inside in mounts]
        return self._call(f"docker run {image}", lambda: self._client.run(
            image, ["/stackctl/" + script.name, *args], entrypoint="python3", remove=True,
            volumes=volumes, networks=["none"]))

    def logs_since(self, container: str, since: datetime) -> str:
        try:
            return self._call("docker logs", lambda: self._client.container.logs(
                container, since=since))
        except DockerError as exc:
            return f"(no logs: {exc})"

    def log_lines(self, container: str, since: str | None = None, follow: bool = False,
                  tail: int | None = None) -> Iterator[str]:
        """A container's log (stdout and stderr), line by line as `docker logs` prints it;
        with `follow`, until the container stops or the caller closes the iterator."""
        cmd = [*self._client.client_config.docker_cmd, "container", "logs"]
        cmd += _log_args(since=since, tail=tail, follow=follow)
        return _stream_lines(cmd + [container], "docker logs")

    def service_log_lines(self, profiles: list[str], services: list[str], follow: bool = False,
                          since: str | None = None, tail: int | None = None,
                          timestamps: bool = False) -> Iterator[str]:
        """`docker compose logs` of the services (all when empty), prefixed `service-1  | `,
        line by line; with `follow`, until the caller closes the iterator."""
        cmd = [*self._compose(profiles).docker_compose_cmd, "logs", "--no-color"]
        cmd += _log_args(since=since, tail=tail, follow=follow)
        if timestamps:
            cmd.append("--timestamps")
        return _stream_lines(cmd + list(services), "docker compose logs")

    def copy_into(self, container: str, source: Path, dest: str) -> None:
        """`docker cp SOURCE CONTAINER:DEST`: works on a created (not started) container, into
        its volumes too, and needs no tool in the image."""
        self._call(f"docker cp {source.name} {container}:{dest}",
                   lambda: self._client.copy(source, (container, dest)))

    # -- volumes -----------------------------------------------------------------------------
    def volume_file(self, volume: str, path: str, image: str) -> bool | None:
        """Whether `path` (relative) is a file in the project's named `volume` (as the
        compose file names it): checked by `test -f` in `image`, which must be present, with
        the volume mounted read-only and no network. None: no such volume yet."""
        from python_on_whales.exceptions import DockerException  # ~150 ms: module doc

        full = f"{self.project}_{volume}"
        if not self._call("docker volume inspect", lambda: self._client.volume.exists(full)):
            return None
        with docker_errors(f"docker run {image}"):
            try:
                self._client.run(image, ["-f", f"/stackctl-volume/{path}"], entrypoint="test",
                                 remove=True, volumes=[(full, "/stackctl-volume", "ro")],
                                 networks=["none"], pull="never")
            except DockerException as exc:
                if exc.return_code == 1:  # test's "no": anything else is Docker's error
                    return False
                raise
        return True

    # -- images ------------------------------------------------------------------------------
    def image_exists(self, image: str) -> bool:
        return self._call("docker image inspect", lambda: self._client.image.exists(image))

    def pull(self, image: str) -> None:
        self._call(f"docker pull {image}", lambda: self._client.image.pull(image, quiet=True))

    @property
    def images(self) -> ImageOps:
        return ImageOps(self._client)


def _log_args(since: str | None, tail: int | None, follow: bool) -> list[str]:
    args = []
    if since is not None:
        args += ["--since", since]
    if tail is not None:
        args += ["--tail", str(tail)]
    if follow:
        args.append("--follow")
    return args


def _stream_lines(cmd: list[str], what: str) -> Iterator[str]:
    """The lines a docker CLI command prints (stdout and stderr, as they come). Closing the
    iterator (or Ctrl-C while it waits) stops the command: no `docker logs --follow` is left
    behind. A failed command raises DockerError (EngineUnreachable: no engine)."""
    try:
        proc = subprocess.Popen([str(c) for c in cmd], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise EngineUnreachable("the docker CLI is not installed: run "
                                "scripts/ensure-docker.sh") from None
    lines: queue.Queue[tuple[str, bytes] | None] = queue.Queue()
    errors: list[str] = []

    def read(stream: Any, source: str) -> None:
        for raw in iter(stream.readline, b""):
            lines.put((source, raw))
        lines.put(None)

    for stream, source in ((proc.stdout, "stdout"), (proc.stderr, "stderr")):
        threading.Thread(target=read, args=(stream, source), daemon=True).start()
    try:
        open_streams = 2
        while open_streams:
            item = lines.get()
            if item is None:
                open_streams -= 1
                continue
            source, raw = item
            text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            if source == "stderr":
                errors = (errors + [text])[-5:]
            yield text
        code = proc.wait()
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    if code != 0:
        text = "\n".join(errors)
        if any(marker in text for marker in UNREACHABLE):
            raise EngineUnreachable(f"no Docker engine answers ({errors[-1]}); "
                                    "scripts/ensure-docker.sh starts one")
        last = next((e for e in reversed(errors) if e.strip()), f"exit {code}")
        raise DockerError(f"{what}: {last}")


def _state(c: Container) -> ContainerState:
    st = c.state
    labels = dict(c.config.labels or {})
    status = st.status or "unknown"
    # a stopped container keeps the health of its last probe: stale, so not reported
    health = st.health.status if st.health and status == "running" else None
    return ContainerState(name=c.name, service=labels.get(SERVICE_LABEL, c.name), state=status,
                          health=health or "none", exit_code=st.exit_code, labels=labels,
                          restarts=c.restart_count or 0, started_at=st.started_at)
