"""The 3-node test Swarm itself (tests/integration/swarm_cluster.py) on the real engine.

Proves what stackctl's Swarm tests rely on: three Ready nodes, the GPU node's label and
generic resource, images pushed by the host and pulled by every node from the local
registry, generic-resource scheduling, overlay networking across nodes (vxlan), host-mode
published ports reachable from the host, and a node that is stopped and started again.
The ingress routing mesh is tried and reported, not asserted (it did not answer here before).
Traffic stays on the cluster's private bridge network and 127.0.0.1.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.integration.swarm_cluster import BASE_IMAGE, GPU_LABEL, SwarmCluster

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cluster(swarm: SwarmCluster) -> SwarmCluster:
    """The session's test Swarm (conftest.py), shared with test_swarm."""
    return swarm


@pytest.fixture(scope="module")
def image(cluster: SwarmCluster) -> str:
    t0 = time.monotonic()
    name = cluster.push(BASE_IMAGE)
    print(f"\n[swarm] pushed {name} in {time.monotonic() - t0:.1f}s")
    return name


def _running_tasks(c: SwarmCluster, service: str) -> list[tuple[str, str]]:
    """(node, current state) of the service's tasks that should be running."""
    out = c.cli("service", "ps", service, "--filter", "desired-state=running",
                "--format", "{{.Node}}|{{.CurrentState}}")
    return [tuple(line.split("|", 1)) for line in out.stdout.splitlines() if line]  # type: ignore[misc]


def _wait_running(c: SwarmCluster, service: str, count: int, timeout: float = 90) -> list[str]:
    """Wait until ``count`` tasks run; return their nodes."""
    deadline = time.monotonic() + timeout
    tasks: list[tuple[str, str]] = []
    while time.monotonic() < deadline:
        tasks = _running_tasks(c, service)
        running = [node for node, state in tasks if state.startswith("Running")]
        if len(running) >= count:
            return running
        time.sleep(0.5)
    ps = c.cli("service", "ps", "--no-trunc", service, check=False).stdout
    raise AssertionError(f"{service}: {count} tasks not running after {timeout:.0f}s:\n{ps}")


def _get(url: str, timeout: float = 3) -> int | str:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status
    except (urllib.error.URLError, OSError) as exc:
        return f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"


def _poll(url: str, timeout: float) -> int | str:
    deadline = time.monotonic() + timeout
    result: int | str = "not tried"
    while time.monotonic() < deadline:
        result = _get(url)
        if result == 200:
            return result
        time.sleep(0.5)
    return result


def test_three_nodes_ready_and_gpu_node(cluster: SwarmCluster) -> None:
    states = cluster.node_states()
    assert states == {n: ("ready", "active") for n in ("node1", "node2", "node3")}
    roles = {n: cluster.inspect_node(n)["Spec"]["Role"] for n in cluster.nodes}
    assert roles == {"node1": "manager", "node2": "worker", "node3": "worker"}
    gpu = cluster.inspect_node(cluster.gpu_node)
    assert gpu["Spec"]["Labels"].get(GPU_LABEL) == "true"
    assert gpu["Description"]["Resources"]["GenericResources"] == [
        {"NamedResourceSpec": {"Kind": "gpu", "Value": "GPU-0"}}]
    for other in ("node1", "node2"):
        node = cluster.inspect_node(other)
        assert GPU_LABEL not in node["Spec"].get("Labels", {})
        assert not node["Description"]["Resources"].get("GenericResources")
    # python_on_whales against the manager, as stackctl will use it
    hostnames = sorted(n.description.hostname for n in cluster.docker().node.list())
    assert hostnames == ["node1", "node2", "node3"]


def test_replicas_pull_from_the_registry_on_every_node(cluster: SwarmCluster, image: str) -> None:
    cluster.cli("service", "create", "-d", "--name", "t", "--mode", "replicated",
                "--replicas", "3", "--replicas-max-per-node", "1",
                "--constraint", "node.platform.os==linux", image, "sleep", "300")
    try:
        nodes = _wait_running(cluster, "t", 3)
        assert sorted(nodes) == ["node1", "node2", "node3"]
        for node in cluster.nodes:  # each node pulled it from 127.0.0.1:5000 (the registry)
            # a service pulls by digest, so the local tag shows as <none>
            out = cluster.cli("image", "ls", "--digests", "--format", "{{.Repository}}@{{.Digest}}",
                              node=node)
            repo = image.rsplit(":", 1)[0]
            assert any(line.startswith(f"{repo}@sha256:") for line in out.stdout.split()), out.stdout
    finally:
        cluster.cli("service", "rm", "t", check=False)


def test_generic_resource_service_lands_only_on_the_gpu_node(cluster: SwarmCluster,
                                                             image: str) -> None:
    # Two replicas, one GPU in the whole Swarm: one runs on node3, the other stays pending.
    cluster.cli("service", "create", "-d", "--name", "g", "--replicas", "2",
                "--generic-resource", "gpu=1", image, "sleep", "300")
    try:
        assert _wait_running(cluster, "g", 1) == ["node3"]
        time.sleep(3)
        tasks = _running_tasks(cluster, "g")
        running = [n for n, s in tasks if s.startswith("Running")]
        assert running == ["node3"], tasks
        assert any(s.startswith("Pending") for _, s in tasks), tasks
        err = cluster.cli("service", "ps", "g", "--no-trunc", "--format", "{{.Error}}").stdout
        print(f"\n[swarm] second gpu=1 replica: {err.strip() or '(pending, no error text)'}")
    finally:
        cluster.cli("service", "rm", "g", check=False)


def test_overlay_network_across_nodes(cluster: SwarmCluster, image: str) -> None:
    """A container on node1 reaches, on one attachable overlay network (vxlan between the
    node containers): a container on node2 by name, a dnsrr service on node2 by its service
    name (asserted), and a VIP service by its name (reported: a service VIP is IPVS, like the
    ingress mesh)."""
    cluster.cli("network", "create", "--driver", "overlay", "--attachable", "ov")
    server = ["python3", "-m", "http.server", "8000"]
    try:
        cluster.cli("run", "-d", "--name", "srv", "--network", "ov", image, *server,
                    node="node2", timeout=180)
        for svc, mode in (("dsrv", "dnsrr"), ("vsrv", "vip")):
            cluster.cli("service", "create", "-d", "--name", svc, "--network", "ov",
                        "--endpoint-mode", mode, "--constraint", "node.hostname==node2",
                        image, *server)
        _wait_running(cluster, "dsrv", 1)
        _wait_running(cluster, "vsrv", 1)
        probe = ("import sys, time, urllib.request\n"
                 "def get(host, tries):\n"
                 "    err = ''\n"
                 "    for i in range(tries):\n"
                 "        try:\n"
                 "            return urllib.request.urlopen(f'http://{host}:8000/', timeout=2).status\n"
                 "        except OSError as exc:\n"
                 "            err = repr(exc); time.sleep(0.5)\n"
                 "    return err\n"
                 "print(get('srv', 40)); print(get('dsrv', 40)); print(get('vsrv', 10))\n")
        out = cluster.cli("run", "--rm", "--network", "ov", image, "python3", "-c", probe,
                          node="node1", timeout=180)
        container, dnsrr, vip = out.stdout.strip().splitlines()
        print(f"\n[swarm] overlay node1->node2: container {container}, dnsrr service {dnsrr}, "
              f"VIP service {vip}")
        assert (container, dnsrr) == ("200", "200")
    finally:
        cluster.cli("service", "rm", "dsrv", "vsrv", check=False)
        cluster.cli("rm", "-f", "srv", node="node2", check=False)
        time.sleep(2)  # the service tasks leave the network first
        cluster.cli("network", "rm", "ov", check=False)


def test_published_ports(cluster: SwarmCluster, image: str) -> None:
    cmd = [image, "python3", "-m", "http.server", "8000"]
    cluster.cli("service", "create", "-d", "--name", "web", "--constraint",
                "node.hostname==node2", "--publish", "mode=host,target=8000,published=18000", *cmd)
    cluster.cli("service", "create", "-d", "--name", "mesh", "--constraint",
                "node.hostname==node3", "--publish", "18001:8000", *cmd)
    try:
        _wait_running(cluster, "web", 1)
        _wait_running(cluster, "mesh", 1)
        assert _poll(f"http://{cluster.ips['node2']}:18000/", 30) == 200
        # the ingress routing mesh: reported, not asserted
        with ThreadPoolExecutor(len(cluster.ips)) as pool:  # the nodes' 10 s side by side
            polls = {node: pool.submit(_poll, f"http://{ip}:18001/", 10)
                     for node, ip in cluster.ips.items()}
        mesh = {node: poll.result() for node, poll in polls.items()}
        print(f"\n[swarm] ingress routing mesh (:18001, task on node3): {mesh}")
        if any(v != 200 for v in mesh.values()):
            for node in cluster.nodes:
                logs = cluster.logs(node)
                hints = [ln for ln in logs if any(k in ln.lower() for k in
                                                  ("ipvs", "ingress", "lb-", "iptables"))]
                print(f"[swarm] {node} dockerd lines about ingress/ipvs: {hints[-5:]}")
    finally:
        cluster.cli("service", "rm", "web", "mesh", check=False)


def test_stop_and_start_a_worker(cluster: SwarmCluster) -> None:
    ip = cluster.ips["node2"]
    cluster.stop_node("node2")
    deadline = time.monotonic() + 60
    while cluster.node_states()["node2"][0] != "down":
        assert time.monotonic() < deadline, cluster.node_states()
        time.sleep(0.5)
    t0 = time.monotonic()
    cluster.start_node("node2")
    print(f"\n[swarm] node2 Ready again {time.monotonic() - t0:.1f}s after start "
          f"(IP {ip} -> {cluster.ips['node2']})")
    assert cluster.node_states()["node2"] == ("ready", "active")
