"""Integration fixtures: a real Docker engine, the local image set, the offline registry.

Stacks are copies of examples/offline in tmp, each with its own compose project name and
host ports, brought up through `stackctl up`. Everything is reached on 127.0.0.1 only.

Bringing a stack up costs ~30 s here (LiteLLM's start), so stacks are shared:

    shared_stack    session: ONE offline stack (restart mode, the default profiles), up once,
                    used by test_stack, test_doctor, test_ports, test_logs, test_cache,
                    test_bench, test_switch, test_faults, test_reload and test_monitoring.
                    A test that changes it (kills a container, switches, edits the registry)
                    puts back what it found before it ends (`restore`, or its own finally);
                    test_stack's `test_down_with_volumes_leaves_nothing` takes it down, and
                    runs after every other user of it (see ORDER below).
    stack_factory   module: stacks of a module's own, for tests that need a state the shared
                    one must not get (never healthy, images missing, sleep mode, ports
                    taken); taken down with volumes at the end of the module.
    swarm           session: the 3-node test Swarm (swarm_cluster.py), for test_swarm_cluster
                    and test_swarm.

ORDER: `pytest_collection_modifyitems` runs the integration modules in the order of
MODULE_ORDER (the users of the shared stack back to back, then its down test), whatever
order they were collected in; a module not listed runs after them. Host ports of stacks up
at the same time in one pytest are checked not to overlap (`claim_ports`).

Stacks of other pytest processes that may be up at the same time (`AT_ONCE`) never share a
host port either; test_plain_compose takes free ports from the kernel (above 32767).
A background process starts with SIGINT ignored: a test that interrupts stackctl starts it
with `preexec_fn=sigint_as_at_a_terminal`.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from stackctl.cli import cli
from stackctl.images.specs import IMAGE_SPECS
from stackctl.store.envfile import read_env
from tests import tc

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
    root = tmp / project
    shutil.copytree(OFFLINE / "config", root / "config")
    offset = 10000 + 100 * (zlib.crc32(project.encode()) % 100)  # as _host_ports
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


# host ports of the stacks made in this session that may be up, by project
_CLAIMED: dict[str, set[int]] = {}
# every project of make_stack that may be up at one time, also across pytest processes run
# side by side (claim_ports only sees its own), with the extra ports test_ports gives its own
AT_ONCE = {"stackctl-it": (), "stackctl-it-never": (), "stackctl-it-images": (),
           "stackctl-it-ports": (3000, 3100), "stackctl-it-sleep": (),
           "stackctl-it-ondemand": ()}


def _host_ports(project: str, extra: tuple[int, ...] = ()) -> set[int]:
    offset = 10000 + 100 * (zlib.crc32(project.encode()) % 100)
    return {port + offset for port in (*OFFLINE_PORTS.values(), *extra)}


def _check_at_once() -> None:
    seen: dict[int, str] = {}
    for project, extra in AT_ONCE.items():
        for port in _host_ports(project, extra):
            if port in seen:
                raise RuntimeError(f"stacks {seen[port]} and {project} would share host port "
                                   f"{port}: rename one (AT_ONCE)")
            seen[port] = project


_check_at_once()


def claim_ports(stack: Stack) -> None:
    """Fail early when `stack`'s host ports overlap those of another stack of this session
    (the offsets come from a hash of the project name: two names can land on one port)."""
    mine = set(stack.ports.values())
    for project, ports in _CLAIMED.items():
        if project != stack.project and mine & ports:
            pytest.fail(f"stacks {project} and {stack.project} share host ports "
                        f"{sorted(mine & ports)}: rename one")
    _CLAIMED[stack.project] = mine


def release_ports(stack: Stack) -> None:
    _CLAIMED.pop(stack.project, None)


@pytest.fixture(scope="module")
def stack_factory(tmp_path_factory: pytest.TempPathFactory, docker_ready: None
                  ) -> Iterator[Callable[[str], Stack]]:
    made: list[Stack] = []

    def factory(project: str, switch: str = "restart") -> Stack:
        s = make_stack(tmp_path_factory.mktemp("stacks"), project, switch)
        claim_ports(s)
        made.append(s)
        return s

    yield factory
    for s in made:
        s.run("down", "--volumes")
        release_ports(s)


# -- the shared stack ---------------------------------------------------------------------------

SHARED_PROJECT = "stackctl-it"
# test_monitoring's settings (they matter only once the monitoring profile runs): Prometheus
# scrapes every 2 s, Alertmanager sends to a webhook receiver the test starts in the network
SCRAPE = "2s"
WEBHOOK = "webhook"  # the receiver's name in the project network
WEBHOOK_ENV = "TEST_WEBHOOK_URL"


@pytest.fixture(scope="session")
def shared_stack(tmp_path_factory: pytest.TempPathFactory, docker_ready: None
                 ) -> Iterator[Stack]:
    """The offline stack (restart mode, default profiles: litellm, redis, llama_cpp, ollama,
    vllm-qwen), up once for the whole session. `up_output` is what that `up` printed.

    Users leave it as they found it: qwen the active member of gpu0, every default service
    running and ready, the registry files as copied (see the module docstring)."""
    s = make_stack(tmp_path_factory.mktemp("shared"), SHARED_PROJECT)
    claim_ports(s)

    def monitoring(data: dict) -> None:
        mon = data["monitoring"]
        mon["scrape_interval"] = SCRAPE
        mon["alerts"] = {"receivers": [{"name": "test", "webhook_url_env": WEBHOOK_ENV}],
                         "group_wait": "1s", "group_interval": "2s", "repeat_interval": "1h"}
    s.edit("stack.yaml", monitoring)
    # .env as stackctl makes it (0600); stackctl adds the keys it needs to it
    fd = os.open(s.root / ".env", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(f"{WEBHOOK_ENV}=http://{WEBHOOK}:9000/\n")
    r = s.cli("up", "--timeout", "180")
    assert r.exit_code == 0, r.output
    s.up_output = r.output  # type: ignore[attr-defined]
    yield s
    s.run("down", "--volumes")  # nothing left to do once test_stack's down test has run
    release_ports(s)


def sigint_as_at_a_terminal() -> None:
    """`preexec_fn` for a stackctl process that a test interrupts with SIGINT (Ctrl-C).

    A shell starts its background jobs (a CI launcher's `cmd &`, pytest runs side by side)
    with SIGINT ignored, every child inherits that, and Python leaves an ignored
    SIGINT ignored: the signal would then do nothing at all. At a terminal it has its
    default action, which Python turns into KeyboardInterrupt; this gives the child that."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def restore(stack: Stack) -> None:
    """`stackctl up` brings back what a test stopped or killed (the default profiles)."""
    r = stack.run("up", "--timeout", "180")
    assert r.returncode == 0, f"could not restore {stack.project}: {r.stdout}{r.stderr}"


# -- the test Swarm -----------------------------------------------------------------------------

# what the offline stack's default profiles run, so what `stackctl up` pushes to the Swarm
SWARM_STACK_IMAGES = [tc.GATEWAY_IMAGE, tc.REDIS_IMAGE, tc.LLAMA_IMAGE, tc.STUB_IMAGE]


@pytest.fixture(scope="session")
def swarm(docker_ready: None) -> Iterator[object]:
    """The 3-node Swarm of swarm_cluster.py, made once for test_swarm_cluster and test_swarm
    (each leaves it with three Ready nodes and nothing deployed).

    Its registry is warmed in the background while test_swarm_cluster runs (the stack's
    images pushed under warm/: `SwarmCluster.warm`), so that test_swarm's `stackctl up`
    mounts their layers instead of compressing ~1.6 GB again; it still pushes each image
    under its own name, the only one the nodes pull."""
    from tests.integration.swarm_cluster import swarm_cluster

    t0 = time.monotonic()
    with swarm_cluster("stackctl-swarm-it") as c:
        print(f"\n[swarm] cluster up in {c.startup_seconds:.1f}s "
              f"({time.monotonic() - t0:.1f}s with the image check); manager {c.manager}")
        c.warm(SWARM_STACK_IMAGES)
        yield c


# -- order --------------------------------------------------------------------------------------

# the modules that use the shared stack (up at the first of them, down after the last) and
# those that use the test Swarm
SHARED_STACK = ("test_stack.py", "test_doctor.py", "test_ports.py", "test_logs.py",
                "test_cache.py", "test_bench.py", "test_switch.py", "test_top.py", "test_faults.py",
                "test_reload.py", "test_monitoring.py")
SWARM = ("test_swarm_cluster.py", "test_swarm.py")

# the modules of tests/integration in the order they run; "module::test" entries move one
# test to that place (the shared stack's down test, after every other user of it)
MODULE_ORDER = (
    "test_images.py",
    *SHARED_STACK,
    "test_stack.py::test_down_with_volumes_leaves_nothing",
    # stacks of their own
    "test_plain_compose.py",
    *SWARM,
    # last: its time windows (a hold in place 1 s after `switch` starts) do not survive a
    # machine whose cores are both busy (e.g. with other tests run side by side)
    "test_sleep_switch.py",
)


def _rank(item: pytest.Item) -> int:
    module = item.path.name
    test = f"{module}::{getattr(item, 'originalname', item.name)}"
    for key in (test, module):
        if key in MODULE_ORDER:
            return MODULE_ORDER.index(key)
    return len(MODULE_ORDER)


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Integration items in MODULE_ORDER (stable within a module), in the slots they had.
    Under pytest-xdist (`--dist loadgroup`) the users of the shared stack run on one worker,
    those of the test Swarm on one worker; tests/conftest.py gives every other module its
    own (their stacks never share a host port: AT_ONCE)."""
    here = Path(__file__).resolve().parent
    for item in items:
        if item.path.parent == here:
            module = item.path.name
            group = "shared-stack" if module in SHARED_STACK else \
                "swarm" if module in SWARM else None
            if group:
                item.add_marker(pytest.mark.xdist_group(group))
    slots = [i for i, item in enumerate(items) if item.path.parent == here]
    ordered = sorted((items[i] for i in slots), key=_rank)
    for slot, item in zip(slots, ordered, strict=True):
        items[slot] = item
