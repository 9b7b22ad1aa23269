"""A Docker Swarm of three nodes on one machine, for stackctl's integration tests.

Each node is a container running its own Docker engine (Debian's docker.io, built from the
local base image; see tests/integration/swarm/). The host engine here refuses
``--privileged``, so the nodes get an explicit capability set instead (:data:`NODE_RUN_ARGS`).

Layout (``name`` defaults to ``stackctl-swarm``)::

    <name>-net            user bridge network; the host reaches its container IPs
    <name>-registry       Debian's docker-registry, alias ``registry`` on the network,
                          published on the host at 127.0.0.1:5000
    <name>-node1          Swarm manager, engine API on tcp://<ip>:2375 (plain, test only)
    <name>-node2          worker
    <name>-node3          worker, the GPU node: ``--node-generic-resource gpu=GPU-0`` and
                          node label ``stackctl.gpu=true``

Inside every node, 127.0.0.1:5000 is forwarded (socat) to the registry, so an image pushed
by the host as ``127.0.0.1:5000/<image>`` is pulled by the nodes under the very same name, and
no node needs an insecure-registry setting (localhost registries are allowed over HTTP).

node2 and node3 are workers, not managers: with two managers the Raft quorum is two, so
stopping either manager would freeze the Swarm; one manager survives the "stop a non-GPU
node" test (node2) untouched, and three managers would be needed for real manager failover.

Usage::

    with swarm_cluster() as c:
        c.push("stackctl-local/base:bookworm")      # -> 127.0.0.1:5000/stackctl-local/base:bookworm
        c.docker("node1").service.list()            # python_on_whales client on the manager
        c.cli("service", "ls")                      # docker CLI against the manager
        c.stop_node("node2"); c.start_node("node2")

Everything (node containers, registry, network, volumes) is removed on exit, also on failure,
and leftovers of an interrupted earlier run with the same name are removed on entry.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from python_on_whales import DockerClient

from stackctl.images.specs import CONTENT_HASH_LABEL

HERE = Path(__file__).resolve().parent / "swarm"
BASE_IMAGE = "stackctl-local/base:bookworm"
NODE_IMAGE = "stackctl-test/swarm-node:1"
REGISTRY_IMAGE = "stackctl-test/registry:1"
REGISTRY = "127.0.0.1:5000"
WARM_PREFIX = "warm/"
"""Repository prefix of :meth:`SwarmCluster.warm`'s pushes (never a name a stack uses)."""
NODE_NAMES = ("node1", "node2", "node3")
MANAGER = "node1"
GPU_NODE = "node3"
GPU_LABEL = "stackctl.gpu"
GPU_RESOURCE = "gpu=GPU-0"
API_PORT = 2375

NODE_CAPS = (
    "SYS_ADMIN", "NET_ADMIN", "SYS_PTRACE", "SYS_MODULE", "DAC_READ_SEARCH", "NET_RAW",
    "MKNOD", "SETFCAP", "AUDIT_CONTROL", "IPC_LOCK", "SYS_CHROOT", "SYS_NICE",
)
NODE_RUN_ARGS: tuple[str, ...] = (
    *(arg for cap in NODE_CAPS for arg in ("--cap-add", cap)),
    "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
    "--cgroupns", "host", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
    "--tmpfs", "/run", "--tmpfs", "/var/run",
)
"""What Docker-in-Docker needs on this host in place of ``--privileged`` (which fails with
"unable to apply caps")."""

IMAGE_FILES = {
    NODE_IMAGE: ("node.Dockerfile", ("node.Dockerfile", "node-entrypoint.sh")),
    REGISTRY_IMAGE: ("registry.Dockerfile", ("registry.Dockerfile", "registry-config.yml")),
}
"""tag -> (Dockerfile, files whose text makes the content hash)."""


class ClusterError(RuntimeError):
    """The cluster could not be brought up; the message says which step."""


def _run(*args: str, timeout: float = 120, check: bool = True,
         input: bytes | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(args), capture_output=True, timeout=timeout, input=input)
    out = subprocess.CompletedProcess(proc.args, proc.returncode,
                                      proc.stdout.decode(errors="replace"),
                                      proc.stderr.decode(errors="replace"))
    if check and proc.returncode != 0:
        raise ClusterError(f"{' '.join(args[:6])}... failed ({proc.returncode}): "
                           f"{out.stderr.strip()[-800:]}")
    return out


# --- images ------------------------------------------------------------------------------


def content_hash(tag: str) -> str:
    """Hash of the Dockerfile and the files it copies, plus the base image's id (a rebuilt
    base invalidates the node and registry images)."""
    h = hashlib.sha256()
    for rel in IMAGE_FILES[tag][1]:
        h.update(rel.encode() + b"\0" + (HERE / rel).read_bytes() + b"\0")
    base = _run("docker", "image", "inspect", "--format", "{{.Id}}", BASE_IMAGE, check=False)
    h.update(base.stdout.strip().encode())
    return h.hexdigest()


def _label(tag: str) -> str | None:
    out = _run("docker", "image", "inspect", "--format",
               f'{{{{index .Config.Labels "{CONTENT_HASH_LABEL}"}}}}', tag, check=False)
    return out.stdout.strip() if out.returncode == 0 else None


def ensure_images(force: bool = False) -> dict[str, str]:
    """Build the node and registry images unless their content-hash label is current.

    Returns {tag: "built" | "cached"}. Uses the classic builder of the host's docker CLI
    (no buildx here)."""
    actions: dict[str, str] = {}
    for tag, (dockerfile, _) in IMAGE_FILES.items():
        want = content_hash(tag)
        if not force and _label(tag) == want:
            actions[tag] = "cached"
            continue
        _run("docker", "build", "-q", "-f", str(HERE / dockerfile), "-t", tag,
             "--label", f"{CONTENT_HASH_LABEL}={want}", str(HERE), timeout=900)
        actions[tag] = "built"
    return actions


# --- the cluster -------------------------------------------------------------------------


@dataclass
class SwarmCluster:
    """A running cluster; see the module docstring."""

    name: str
    nodes: dict[str, str] = field(default_factory=dict)
    """node name (node1..3, also its Swarm hostname) -> container name."""
    ips: dict[str, str] = field(default_factory=dict)
    """node name -> IP on the cluster's bridge network (reachable from the host)."""
    manager: str = ""
    """Engine API URL of the manager, tcp://<node1 IP>:2375."""
    gpu_node: str = GPU_NODE
    registry: str = REGISTRY
    network: str = ""
    registry_container: str = ""
    volumes: list[str] = field(default_factory=list)
    pushed: list[str] = field(default_factory=list)
    """Host tags made by :meth:`push` (removed on exit; the images themselves stay)."""
    startup_seconds: float = 0.0
    warming: Future | None = None
    """The background push of :meth:`warm`, if any."""

    def url(self, node: str) -> str:
        return f"tcp://{self.ips[node]}:{API_PORT}"

    def docker(self, node: str = MANAGER) -> DockerClient:
        """A python_on_whales client for that node's engine."""
        return DockerClient(host=self.url(node))

    def cli(self, *args: str, node: str = MANAGER, timeout: float = 120,
            check: bool = True) -> subprocess.CompletedProcess[str]:
        """The host's docker CLI against a node's engine (``docker -H <node> args``)."""
        return _run("docker", "-H", self.url(node), *args, timeout=timeout, check=check)

    def push(self, image: str, prefix: str = "") -> str:
        """Tag ``image`` (from the host's engine) as 127.0.0.1:5000/<prefix><image>, push it,
        and return that name, which every node can pull as is."""
        target = f"{self.registry}/{prefix}{image}"
        _run("docker", "tag", image, target)
        self.pushed.append(target)
        _run("docker", "push", "-q", target, timeout=600)
        return target

    def warm(self, images: list[str]) -> None:
        """Push ``images`` under :data:`WARM_PREFIX` in the background (:meth:`wait_warm`).

        Pushing compresses every layer (minutes of CPU for LiteLLM's image here); once the
        registry has them, a later push of the same image under its own name by anyone
        (``stackctl up``) mounts those layers from the warm/ repository instead of
        compressing and sending them again. The image itself still has to be pushed under
        its own name, or no node can pull it: warming proves nothing in its place."""
        pool = ThreadPoolExecutor(1, thread_name_prefix="swarm-warm")
        self.warming = pool.submit(lambda: [self.push(i, WARM_PREFIX) for i in images])
        pool.shutdown(wait=False)

    def wait_warm(self, timeout: float = 900) -> float:
        """Wait for :meth:`warm` to end (its failure is raised); return the seconds waited."""
        t0 = time.monotonic()
        if self.warming is not None:
            self.warming.result(timeout=timeout)
        return time.monotonic() - t0

    def stop_node(self, node: str, timeout: int = 10) -> None:
        _run("docker", "stop", "-t", str(timeout), self.nodes[node], timeout=timeout + 60)

    def start_node(self, node: str, wait: float = 60) -> None:
        """Start a stopped node container again and wait until its engine and the Swarm
        see it Ready (its IP may change, and is re-read)."""
        _run("docker", "start", self.nodes[node])
        self.ips[node] = _container_ip(self.nodes[node], self.network)
        if node == MANAGER:
            self.manager = self.url(node)
        _wait_engine(self.url(node), wait)
        self.wait_ready([node], wait)

    def node_states(self) -> dict[str, tuple[str, str]]:
        """Swarm hostname -> (state, availability), as the manager sees it."""
        out = self.cli("node", "ls", "--format", "{{.Hostname}} {{.Status}} {{.Availability}}")
        states = {}
        for line in out.stdout.splitlines():
            host, state, avail = line.split()
            states[host] = (state.lower(), avail.lower())
        return states

    def wait_ready(self, nodes: list[str] | None = None, timeout: float = 60) -> None:
        want = nodes or list(self.nodes)
        deadline = time.monotonic() + timeout
        states: dict[str, tuple[str, str]] = {}
        while time.monotonic() < deadline:
            try:
                states = self.node_states()
            except ClusterError:
                states = {}
            if all(states.get(n, ("", ""))[0] == "ready" for n in want):
                return
            time.sleep(0.5)
        raise ClusterError(f"nodes not Ready after {timeout:.0f}s: {states}")

    def logs(self, node: str, tail: int = 400) -> list[str]:
        """The last lines of a node container's output (its dockerd log)."""
        out = _run("docker", "logs", "--tail", str(tail), self.nodes[node], check=False)
        return (out.stdout + out.stderr).splitlines()

    def inspect_node(self, node: str) -> dict:
        return json.loads(self.cli("node", "inspect", node).stdout)[0]


def _container_ip(container: str, network: str) -> str:
    out = _run("docker", "inspect", "--format",
               f'{{{{(index .NetworkSettings.Networks "{network}").IPAddress}}}}', container)
    ip = out.stdout.strip()
    if not ip:
        raise ClusterError(f"{container} has no IP on {network}")
    return ip


def _wait_engine(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        out = _run("docker", "-H", url, "version", "--format", "{{.Server.Version}}",
                   timeout=10, check=False)
        if out.returncode == 0:
            return
        last = out.stderr.strip()
        time.sleep(0.3)
    raise ClusterError(f"engine at {url} not up after {timeout:.0f}s: {last[-300:]}")


def _remove_all(name: str) -> None:
    """Remove every container, network and volume of a cluster called ``name``."""
    containers = [f"{name}-node{i}" for i in range(1, len(NODE_NAMES) + 1)] + [f"{name}-registry"]
    _run("docker", "rm", "-f", "-v", *containers, check=False, timeout=120)
    _run("docker", "network", "rm", f"{name}-net", check=False)
    vols = [f"{name}-{n}-docker" for n in NODE_NAMES] + [f"{name}-registry-data"]
    _run("docker", "volume", "rm", "-f", *vols, check=False)


def _start(c: SwarmCluster) -> None:
    name = c.name
    c.network = f"{name}-net"
    _run("docker", "network", "create", "--driver", "bridge",
         "--label", "org.stackctl.test=swarm", c.network)

    c.registry_container = f"{name}-registry"
    reg_vol = f"{name}-registry-data"
    c.volumes.append(reg_vol)
    _run("docker", "run", "-d", "--name", c.registry_container, "--network", c.network,
         "--network-alias", "registry", "-p", f"{REGISTRY}:5000",
         "-v", f"{reg_vol}:/var/lib/docker-registry", "--label", "org.stackctl.test=swarm",
         REGISTRY_IMAGE)

    for node in NODE_NAMES:
        container = f"{name}-{node}"
        vol = f"{name}-{node}-docker"
        c.volumes.append(vol)
        extra = ["--node-generic-resource", GPU_RESOURCE] if node == GPU_NODE else []
        _run("docker", "run", "-d", "--name", container, "--hostname", node,
             "--network", c.network, "--label", "org.stackctl.test=swarm",
             *NODE_RUN_ARGS, "-v", f"{vol}:/var/lib/docker", NODE_IMAGE, *extra)
        c.nodes[node] = container
    for node, container in c.nodes.items():
        c.ips[node] = _container_ip(container, c.network)
    c.manager = c.url(MANAGER)
    for node in NODE_NAMES:
        _wait_engine(c.url(node), 60)

    mgr_ip = c.ips[MANAGER]
    c.cli("swarm", "init", "--advertise-addr", mgr_ip)
    token = c.cli("swarm", "join-token", "-q", "worker").stdout.strip()
    for node in NODE_NAMES:
        if node != MANAGER:
            c.cli("swarm", "join", "--token", token, "--advertise-addr", c.ips[node],
                  f"{mgr_ip}:2377", node=node, timeout=60)
    c.wait_ready(timeout=60)
    c.cli("node", "update", "--label-add", f"{GPU_LABEL}=true", GPU_NODE)


@contextmanager
def swarm_cluster(name: str = "stackctl-swarm", *, build: bool = True) -> Iterator[SwarmCluster]:
    """Bring the cluster up (building its images first when stale), yield it, remove it."""
    if build:
        ensure_images()
    _remove_all(name)  # leftovers of an interrupted run
    cluster = SwarmCluster(name=name)
    t0 = time.monotonic()
    try:
        _start(cluster)
        cluster.startup_seconds = time.monotonic() - t0
        yield cluster
    finally:
        _remove_all(name)
        if cluster.pushed:
            _run("docker", "image", "rm", *sorted(set(cluster.pushed)), check=False)
