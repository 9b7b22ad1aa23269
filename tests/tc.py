"""The one helper around testcontainers (4.15) for the contract and plain-compose tests.

Import this module before anything from `testcontainers`: importing it sets up testcontainers
for these machines (with `os.environ.setdefault`, so a developer's own values win):

    TESTCONTAINERS_RYUK_DISABLED=true       the reaper image cannot be pulled (no registry is
                                            reachable); every fixture removes its own
                                            containers, networks and compose projects instead
    TESTCONTAINERS_CONNECTION_MODE=docker_host
    TC_HOST=127.0.0.1                       every URL a test or a wait strategy builds points at
                                            127.0.0.1 and a published port; never at a
                                            container or bridge IP

testcontainers reads these settings when it is first imported (`testcontainers.core.config`),
hence "before".

What is here
    docker_problem(*images)   why Docker cannot run these images (no engine, no Compose v2,
                              image missing), or None; mirrors tests/integration/conftest.py
                              `_docker_ok` per image, and never pulls
    publish_on_loopback(c, p) publish container port p on 127.0.0.1 only (a random host port);
                              `with_exposed_ports` would publish on every host address
    http_url(c, p)            http://127.0.0.1:<published port of p>
    ComposeService            a compose service as a wait-strategy target that works
    compose_port / compose_url / wait_compose / compose_logs: see below

Rough edges of testcontainers 4.15's DockerCompose worked around here (and only here)
    * No project-name argument: the generated compose file's top-level `name:` sets it, so the
      callers give each run its own project name in stack.yaml before `stackctl generate`.
    * `ComposeContainer.get_exposed_port(p)` returns p itself (the container port) and
      `get_container_host_ip()` a fixed "127.0.0.1", so `HttpWaitStrategy` / `PortWaitStrategy`
      probe the container port on the host, which is some other program's port or nothing.
      `ComposeService` answers with the port compose really published (from
      `docker compose ps` Publishers, bound on 127.0.0.1) and refuses anything else.
    * `ComposeContainer.get_wrapped_container()` returns the ComposeContainer itself, which has
      no `.attrs`, so `HealthcheckWaitStrategy` raises AttributeError; its `reload()` does
      nothing and `status` is a stale `docker compose ps` value. `ComposeService` hands the
      wait strategies the Docker SDK container (by the ID compose reports) instead.
    * `DockerCompose.waiting_for({...})` passes the raw ComposeContainer to the strategies
      during `start()`, so it inherits both problems above; call `wait_compose(compose, {...})`
      after `start()` instead.
    * When `docker compose up --wait` fails, the CalledProcessError carries compose's output
      only in the logger; `compose_logs` fetches the services' logs for the failure message.
"""

from __future__ import annotations

import os

os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
os.environ.setdefault("TESTCONTAINERS_CONNECTION_MODE", "docker_host")
os.environ.setdefault("TC_HOST", "127.0.0.1")

import subprocess  # noqa: E402
from typing import TYPE_CHECKING, Any  # noqa: E402

if TYPE_CHECKING:
    from testcontainers.compose import ComposeContainer, DockerCompose
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.waiting_utils import WaitStrategy

LOOPBACK = "127.0.0.1"

GATEWAY_IMAGE = "stackctl-local/litellm:1.106.2"
REDIS_IMAGE = "stackctl-local/redis:7"
LLAMA_IMAGE = "stackctl-local/llama-server:0.3.36"
STUB_IMAGE = "stackctl-local/inference-stub:1"


# -- engine and images ----------------------------------------------------------------------

def docker_problem(*images: str, compose: bool = False) -> str | None:
    """Why these images cannot be run here (to `pytest.skip` with), or None."""
    checks = [["docker", "info"]] + ([["docker", "compose", "version"]] if compose else [])
    try:
        for cmd in checks:
            subprocess.run(cmd, capture_output=True, check=True, timeout=20)
    except (OSError, subprocess.SubprocessError) as exc:
        what = "Docker engine with Compose v2" if compose else "Docker engine"
        return f"no {what} ({exc}); run scripts/ensure-docker.sh"
    missing = [i for i in images
               if subprocess.run(["docker", "image", "inspect", i], capture_output=True,
                                 timeout=20).returncode]
    if missing:
        return f"local images missing: {', '.join(missing)}; run `stackctl images build`"
    return None


# -- single containers ----------------------------------------------------------------------

def publish_on_loopback(container: DockerContainer, port: int) -> DockerContainer:
    """Publish `port` on 127.0.0.1 only, on a host port Docker picks."""
    # DockerContainer.ports goes to docker-py as is: ("ip", None) = that address, any port.
    container.ports[f"{port}/tcp"] = (LOOPBACK, None)  # type: ignore[assignment]
    return container


def http_url(container: DockerContainer, port: int) -> str:
    host = container.get_container_host_ip()
    if host != LOOPBACK:
        raise RuntimeError(f"testcontainers resolved the host as {host!r}, not {LOOPBACK}: "
                           "is TC_HOST overridden?")
    return f"http://{LOOPBACK}:{container.get_exposed_port(port)}"


# -- compose ----------------------------------------------------------------------------------

class ComposeService:
    """A compose service as a `WaitStrategyTarget` whose host and ports are the published ones.

    Everything goes to 127.0.0.1: a port published on another address is an error, not a
    target.
    """

    def __init__(self, compose: DockerCompose, service: str):
        self.compose = compose
        self.service = service
        self._info: ComposeContainer = compose.get_container(service)
        self._docker: Any = None

    # the WaitStrategyTarget protocol
    def get_container_host_ip(self) -> str:
        return LOOPBACK

    def get_exposed_port(self, port: int) -> int:
        self._info = self.compose.get_container(self.service)
        published = sorted({p.PublishedPort for p in self._info.Publishers
                            if p.TargetPort == port and p.PublishedPort
                            and p.URL in (LOOPBACK, "0.0.0.0")})
        if not published:
            raise RuntimeError(f"compose service {self.service!r} does not publish port {port} "
                               f"on {LOOPBACK} (publishers: {self._info.Publishers})")
        return int(published[0])

    def get_wrapped_container(self) -> Any:
        if self._docker is None:
            import docker

            self._docker = docker.from_env().containers.get(self._info.ID)
        return self._docker

    def get_logs(self) -> tuple[bytes, bytes]:
        out, err = self.compose.get_logs(self.service)
        return out.encode(), err.encode()

    def reload(self) -> None:
        self.get_wrapped_container().reload()

    @property
    def status(self) -> str:
        self.reload()
        return str(self.get_wrapped_container().status)

    def url(self, port: int) -> str:
        return f"http://{LOOPBACK}:{self.get_exposed_port(port)}"


def compose_port(compose: DockerCompose, service: str, port: int) -> int:
    """Host port compose published `service`'s container port `port` on (127.0.0.1 only)."""
    return ComposeService(compose, service).get_exposed_port(port)


def compose_url(compose: DockerCompose, service: str, port: int) -> str:
    return ComposeService(compose, service).url(port)


def wait_compose(compose: DockerCompose, strategies: dict[str, WaitStrategy]) -> None:
    """Run wait strategies against running compose services (instead of `waiting_for`)."""
    for service, strategy in strategies.items():
        strategy.wait_until_ready(ComposeService(compose, service))


def compose_logs(compose: DockerCompose, tail: int = 60) -> str:
    """The last lines of every service's log, for a failure message (never raises)."""
    try:
        out = subprocess.run([*compose.compose_command_property, "logs", "--no-color",
                              "--tail", str(tail)], capture_output=True, text=True,
                             cwd=str(compose.context), timeout=60)
        return out.stdout + out.stderr
    except (OSError, subprocess.SubprocessError) as exc:
        return f"(no logs: {exc})"
