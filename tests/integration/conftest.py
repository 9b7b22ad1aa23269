"""Integration fixtures: a real Docker engine, the local image set, the offline registry.

Each test module gets its own copy of examples/offline in tmp with its own compose project
name, brings it up through `stackctl up` and takes it down (with volumes) at the end.
Everything is reached on 127.0.0.1 only.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from stackctl.cli import cli
from stackctl.images.specs import IMAGE_SPECS
from stackctl.store.envfile import read_env

REPO = Path(__file__).resolve().parents[2]
OFFLINE = REPO / "examples" / "offline"
IMAGES = [spec.tag for spec in IMAGE_SPECS]  # the whole local set


def _docker_ok() -> str | None:
    try:
        subprocess.run(["docker", "info"], capture_output=True, check=True, timeout=20)
        subprocess.run(["docker", "compose", "version"], capture_output=True, check=True,
                       timeout=20)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"no Docker engine with Compose v2 ({exc}); run scripts/ensure-docker.sh"
    missing = [i for i in IMAGES
               if subprocess.run(["docker", "image", "inspect", i], capture_output=True).returncode]
    if missing:
        return f"local images missing: {', '.join(missing)}; run `stackctl images build`"
    return None


@pytest.fixture(scope="session")
def docker_ready() -> None:
    reason = _docker_ok()
    if reason:
        pytest.skip(reason)  # a failure in CI (STACKCTL_NO_SKIP=1)


class Stack:
    """One offline stack in tmp: run stackctl against it, read its key, talk to it.

    Its host ports are the offline example's shifted by an offset derived from the project
    name, so stacks of different test modules (or of two people on one machine) do not
    collide; `port(service)` tells each."""

    def __init__(self, root: Path, project: str, ports: dict[str, int]):
        self.root = root
        self.config = root / "config"
        self.project = project
        self.ports = ports

    def port(self, service: str) -> int:
        return self.ports[service]

    def cli(self, *args: str) -> object:
        runner = CliRunner()
        return runner.invoke(cli, [args[0], "-C", str(self.config), *args[1:]],
                             catch_exceptions=False)

    def run(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        """stackctl in its own process (for concurrency tests and real exit codes)."""
        return subprocess.run([sys.executable, "-m", "stackctl", args[0], "-C", str(self.config),
                               *args[1:]], capture_output=True, text=True, timeout=timeout,
                              cwd=self.root)

    @property
    def key(self) -> str:
        return read_env(self.root / ".env")["LITELLM_MASTER_KEY"]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port('litellm')}"

    def edit(self, file: str, change: Callable[[dict], None]) -> None:
        from ruamel.yaml import YAML

        yaml = YAML()
        path = self.config / file
        data = yaml.load(path.read_text())
        change(data)
        with path.open("w") as fh:
            yaml.dump(data, fh)

    def docker_objects(self) -> dict[str, list[str]]:
        label = f"label=com.docker.compose.project={self.project}"
        out = {}
        for kind, cmd in (("containers", ["docker", "ps", "-a", "-q"]),
                          ("networks", ["docker", "network", "ls", "-q"]),
                          ("volumes", ["docker", "volume", "ls", "-q"])):
            res = subprocess.run(cmd + ["--filter", label], capture_output=True, text=True)
            out[kind] = res.stdout.split()
        return out


OFFLINE_PORTS = {"litellm": 4000, "redis": 6379, "llama_cpp": 8080, "ollama": 11434,
                 "vllm-qwen": 8001, "vllm-dolphin": 8002, "prometheus": 9090,
                 "alertmanager": 9093, "pushgateway": 9091}
MONITORING_PORTS = ("prometheus", "alertmanager", "pushgateway")


def make_stack(tmp: Path, project: str, switch: str = "restart") -> Stack:
    """A copy of the offline example named `project`, on ports shifted by 10000–19900 (kept
    below 32768, where Docker and testcontainers pick random ports). Its GPU group switches
    by `switch`: restart (most tests: what they assert was written for it) or sleep (the
    example's own)."""
    import zlib

    root = tmp / project
    shutil.copytree(OFFLINE / "config", root / "config")
    offset = 10000 + 100 * (zlib.crc32(project.encode()) % 100)
    ports = {service: port + offset for service, port in OFFLINE_PORTS.items()}
    stack = Stack(root, project, ports)

    def stack_yaml(data: dict) -> None:
        data["project"] = project
        data["gpu_groups"]["gpu0"]["switch"] = switch
        data["gateway"]["host_port"] = ports["litellm"]
        data["cache"]["host_port"] = ports["redis"]
        for service in MONITORING_PORTS:
            data["monitoring"][service]["host_port"] = ports[service]
        data["monitoring"]["config_dir"] = str(REPO / "monitoring")  # the rules
        data["monitoring"]["dashboards_dir"] = str(REPO / "grafana-dashboards")

    def providers_yaml(data: dict) -> None:
        for name, prov in data["providers"].items():
            if switch == "restart":
                # no simulated GPU: restart-mode tests also build states that it forbids
                # (two members running after an interrupted switch, by hand)
                prov.get("container", {}).get("env", {}).pop("STUB_GPU_DIR", None)
            if name in ports:
                prov["base_url"] = prov["base_url"].replace(
                    f":{OFFLINE_PORTS[name]}", f":{ports[name]}")
    stack.edit("stack.yaml", stack_yaml)
    stack.edit("providers.yaml", providers_yaml)
    return stack


@pytest.fixture(scope="module")
def stack_factory(tmp_path_factory: pytest.TempPathFactory, docker_ready: None
                  ) -> Iterator[Callable[[str], Stack]]:
    made: list[Stack] = []

    def factory(project: str, switch: str = "restart") -> Stack:
        s = make_stack(tmp_path_factory.mktemp("stacks"), project, switch)
        made.append(s)
        return s

    yield factory
    for s in made:
        s.run("down", "--volumes")
