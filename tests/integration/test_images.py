"""The local image set against the real Docker engine: build, cache hit, smoke runs.

Traffic goes only to 127.0.0.1 (ports published on loopback) and between this test's own
containers on a private network. The first build on a cold machine compiles llama.cpp
(several minutes); later runs are cache hits.
"""

from __future__ import annotations

import json
import os
import socket
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stackctl.images import specs
from stackctl.images.build import BuildOptions, BuildResult, build_images

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
STUB = REPO / "stackctl" / "incontainer" / "inference_stub"
MASTER_KEY = "sk-stackctl-imgtest"
PREFIX = f"stackctl-imgtest-{os.getpid()}-{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="module")
def docker() -> Any:
    from python_on_whales import DockerClient
    from python_on_whales.exceptions import DockerException

    client = DockerClient()
    try:
        client.system.info()
    except (DockerException, FileNotFoundError) as exc:
        pytest.fail(f"no Docker engine answers: run scripts/ensure-docker.sh ({exc})")
    return client


@pytest.fixture(scope="module")
def ops(docker: Any) -> Any:
    from stackctl.docker.images import ImageOps

    return ImageOps(docker)


@pytest.fixture(scope="module")
def first_build(ops: Any) -> list[BuildResult]:
    return build_images(ops, BuildOptions(stub_package=STUB))


def _remove(docker: Any, names: list[str]) -> None:
    for name in reversed(names):
        if docker.container.exists(name):
            docker.container.remove(name, force=True, volumes=True)
        elif docker.network.exists(name):
            docker.network.remove(name)


@pytest.fixture()
def containers(docker: Any) -> Iterator[list[str]]:
    """Names of containers/networks to remove after the test."""
    names: list[str] = []
    yield names
    _remove(docker, names)


@pytest.fixture(scope="module")
def module_containers(docker: Any) -> Iterator[list[str]]:
    """Names of containers/networks started ahead of their test, removed after the module."""
    names: list[str] = []
    yield names
    _remove(docker, names)


def _run(
    docker: Any,
    containers: list[str],
    image: str,
    name: str,
    port: int | None = None,
    **kwargs: Any,
) -> str:
    full = f"{PREFIX}-{name}"
    containers.append(full)
    publish = [("127.0.0.1:", port)] if port else []
    docker.run(image, name=full, detach=True, publish=publish, **kwargs)
    return full


def _host_port(docker: Any, container: str, port: int) -> int:
    bindings = docker.container.inspect(container).network_settings.ports[f"{port}/tcp"]
    return int(bindings[0]["HostPort"])


def _http(
    url: str, body: dict | None = None, headers: dict | None = None, timeout: float = 60
) -> tuple[int, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        url, data=data, headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _wait_http(
    docker: Any, container: str, url: str, timeout: float = 120, headers: dict | None = None
) -> float:
    start = time.monotonic()
    last: object = None
    while time.monotonic() - start < timeout:
        state = docker.container.inspect(container).state
        if not state.running:
            logs = docker.container.logs(container)[-3000:]
            pytest.fail(f"{container} exited with {state.exit_code}:\n{logs}")
        try:
            status, _ = _http(url, headers=headers, timeout=5)
            if status == 200:
                return time.monotonic() - start
            last = status
        except OSError as exc:
            last = exc
        time.sleep(0.25)
    logs = docker.container.logs(container)[-3000:]
    pytest.fail(f"{url} not ready after {timeout:.0f}s (last: {last}):\n{logs}")


def _wait_healthy(docker: Any, container: str, timeout: float = 120) -> None:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        health = docker.container.inspect(container).state.health
        if health is not None and health.status == "healthy":
            return
        time.sleep(0.5)
    pytest.fail(f"{container} not healthy after {timeout:.0f}s")


# --- build -------------------------------------------------------------------------------------


def test_every_image_exists_with_its_hash_label(first_build: list[BuildResult], ops: Any) -> None:
    assert [r.name for r in first_build] == [s.name for s in specs.IMAGE_SPECS]
    for result in first_build:
        info = ops.inspect(result.tag)
        assert info is not None, result.tag
        assert info.labels[specs.CONTENT_HASH_LABEL] == result.content_hash


def test_second_build_is_a_cache_hit(first_build: list[BuildResult], ops: Any) -> None:
    ids = {r.tag: ops.inspect(r.tag).id for r in first_build}
    again = build_images(ops, BuildOptions(stub_package=STUB))
    assert [(r.name, r.action) for r in again] == [(r.name, "cached") for r in first_build]
    assert [r.content_hash for r in again] == [r.content_hash for r in first_build]
    assert {r.tag: ops.inspect(r.tag).id for r in again} == ids  # nothing was rebuilt


def test_only_builds_the_named_image_and_its_parent(first_build: list[BuildResult], ops: Any) -> None:
    results = build_images(ops, BuildOptions(only=("redis",), stub_package=STUB))
    assert [(r.name, r.action) for r in results] == [("base", "cached"), ("redis", "cached")]


# --- smoke runs --------------------------------------------------------------------------------


def test_redis_answers_ping(first_build: list[BuildResult], docker: Any, containers: list[str]) -> None:
    import redis

    name = _run(docker, containers, specs.REDIS_TAG, "redis", port=6379)
    port = _host_port(docker, name, 6379)
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=5)
    deadline = time.monotonic() + 30
    while True:
        try:
            assert client.ping() is True
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    client.set("k", "v")
    assert client.get("k") == b"v"
    assert docker.execute(name, ["redis-cli", "ping"]).strip() == "PONG"
    _wait_healthy(docker, name)


def test_llama_server_generates_real_tokens(
    first_build: list[BuildResult], docker: Any, containers: list[str]
) -> None:
    name = _run(docker, containers, specs.LLAMA_SERVER_TAG, "llama", port=8080)
    base = f"http://127.0.0.1:{_host_port(docker, name, 8080)}"
    _wait_http(docker, name, f"{base}/health", timeout=60)
    status, body = _http(
        f"{base}/v1/chat/completions",
        {
            "model": specs.SMOLLM2_ALIAS,
            "messages": [{"role": "user", "content": "Name three colours."}],
            "max_tokens": 24,
            "temperature": 0,
        },
    )
    assert status == 200, body
    reply = json.loads(body)
    assert reply["model"] == specs.SMOLLM2_ALIAS
    assert reply["choices"][0]["message"]["content"].strip()
    assert reply["usage"]["completion_tokens"] > 0
    _wait_healthy(docker, name, timeout=30)


def test_litellm_image_imports_litellm(first_build: list[BuildResult], docker: Any) -> None:
    code = "import litellm, prometheus_client, redis; print(litellm.__name__)"
    out = docker.run(specs.LITELLM_TAG, ["-c", code], entrypoint="python3", remove=True, networks=["none"])
    assert out.strip().endswith("litellm")


_ASGI_APP = """
import uvicorn

async def app(scope, receive, send):
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"8")]})
        await send({"type": "http.response.body", "body": b"answered"})

uvicorn.run(app, host="0.0.0.0", port=8000)
"""


def test_a_gateway_worker_shutting_down_answers_a_request_already_on_its_way(
    first_build: list[BuildResult], docker: Any, containers: list[str]
) -> None:
    # `reload` stops the old workers under traffic: uvicorn's own shutdown closed a connection
    # it had just accepted, before reading its request (RemoteDisconnected for the client)
    name = _run(docker, containers, specs.LITELLM_TAG, "shutdown", port=8000,
                entrypoint="python3", command=["-c", _ASGI_APP])
    base = f"http://127.0.0.1:{_host_port(docker, name, 8000)}"
    _wait_http(docker, name, base, timeout=30)
    on_its_way = socket.create_connection(("127.0.0.1", _host_port(docker, name, 8000)))
    silent = socket.create_connection(("127.0.0.1", _host_port(docker, name, 8000)))
    time.sleep(0.3)  # both accepted by the server
    docker.kill(name, signal="SIGTERM")
    time.sleep(0.2)  # the shutdown has begun
    on_its_way.sendall(b"GET / HTTP/1.1\r\nHost: gateway\r\n\r\n")
    for sock in (on_its_way, silent):
        sock.settimeout(5)
    reply = b"".join(iter(lambda: on_its_way.recv(4096), b""))  # until the server closes
    assert reply.startswith(b"HTTP/1.1 200") and reply.endswith(b"answered"), reply
    # a connection that brings no request is closed, so the worker does not wait for it
    assert silent.recv(4096) == b""
    end = time.monotonic() + 10
    while docker.container.inspect(name).state.running and time.monotonic() < end:
        time.sleep(0.1)
    assert docker.container.inspect(name).state.exit_code == 0


def test_inference_stub_serves(first_build: list[BuildResult], docker: Any, containers: list[str]) -> None:
    name = _run(
        docker,
        containers,
        specs.INFERENCE_STUB_TAG,
        "stub",
        port=8000,
        envs={"STUB_MODELS": "stub-a"},
    )
    base = f"http://127.0.0.1:{_host_port(docker, name, 8000)}"
    _wait_http(docker, name, f"{base}/v1/models", timeout=30)
    status, body = _http(f"{base}/v1/models")
    assert status == 200
    assert "stub-a" in [m["id"] for m in json.loads(body)["data"]]


_IN_CONTAINER_HTTP = """
import json, sys, urllib.error, urllib.request
url, body, key = sys.argv[1], sys.argv[2], sys.argv[3]
req = urllib.request.Request(url, data=body.encode() or None, headers={
    "Content-Type": "application/json", **({"Authorization": "Bearer " + key} if key else {})})
try:
    with urllib.request.urlopen(req, timeout=120) as r:
        status, headers, data = r.status, dict(r.headers), r.read()
except urllib.error.HTTPError as e:
    status, headers, data = e.code, dict(e.headers), e.read()
print(json.dumps({"status": status, "headers": {k.lower(): v for k, v in headers.items()},
                  "body": data.decode(errors="replace")}))
"""


def _http_in(docker: Any, container: str, url: str, body: dict | None = None, key: str = "") -> dict:
    """HTTP from inside ``container`` (python3 urllib): for networks without egress."""
    out = docker.execute(
        container,
        [
            "python3",
            "-c",
            _IN_CONTAINER_HTTP,
            url,
            json.dumps(body) if body is not None else "",
            key,
        ],
    )
    return json.loads(out.strip().splitlines()[-1])


@pytest.fixture(scope="module", autouse=True)
def gateway_trio(
    first_build: list[BuildResult],
    docker: Any,
    module_containers: list[str],
    tmp_path_factory: pytest.TempPathFactory,
) -> str:
    """Redis, llama-server and the LiteLLM proxy of the test below, started when the module
    starts (not waited for): the gateway's ~20 s start overlaps the other tests. Returns the
    gateway container's name."""
    import subprocess

    containers = module_containers
    tmp_path = tmp_path_factory.mktemp("gateway")
    net = f"{PREFIX}-net"
    # --internal: python-on-whales cannot set it; without egress nothing can leave.
    subprocess.run(["docker", "network", "create", "--internal", net], check=True, capture_output=True)
    containers.append(net)
    _run(docker, containers, specs.REDIS_TAG, "cache", networks=[net], network_aliases=["redis"])
    _run(
        docker,
        containers,
        specs.LLAMA_SERVER_TAG,
        "smollm2",
        networks=[net],
        network_aliases=["llama"],
    )
    config = tmp_path / "config.yaml"
    config.write_text(
        "model_list:\n"
        "  - model_name: smollm2\n"
        "    litellm_params:\n"
        "      model: openai/smollm2\n"
        "      api_base: http://llama:8080/v1\n"
        "      api_key: none\n"
        "litellm_settings:\n"
        '  callbacks: ["prometheus"]\n'
        "  cache: true\n"
        "  cache_params: {type: redis, host: redis, port: 6379}\n"
    )
    config.chmod(0o644)
    gw = _run(
        docker,
        containers,
        specs.LITELLM_TAG,
        "gateway",
        networks=[net],
        envs={"LITELLM_MASTER_KEY": MASTER_KEY},
        volumes=[(str(config), "/app/config.yaml", "ro")],
    )
    return gw


def test_litellm_proxy_serves_llama_through_redis_cache(docker: Any, gateway_trio: str) -> None:
    """The three images together on an internal network (no route out of it): LiteLLM
    proxy -> llama-server with a Redis response cache; real tokens, then a cache hit."""
    gw = gateway_trio
    _wait_healthy(docker, gw, timeout=180)  # the image's HEALTHCHECK: /health/liveliness
    local = "http://127.0.0.1:4000"
    request = {
        "model": "smollm2",
        "max_tokens": 16,
        "temperature": 0,
        "messages": [{"role": "user", "content": "Say hi."}],
    }
    first = _http_in(docker, gw, f"{local}/v1/chat/completions", request, MASTER_KEY)
    assert first["status"] == 200, first
    reply = json.loads(first["body"])
    assert reply["choices"][0]["message"]["content"].strip()
    assert reply["usage"]["completion_tokens"] > 0
    second = _http_in(docker, gw, f"{local}/v1/chat/completions", request, MASTER_KEY)
    assert second["status"] == 200, second
    assert "x-litellm-cache-key" in second["headers"]  # served from Redis
    assert json.loads(second["body"])["id"] == reply["id"]
    assert _http_in(docker, gw, f"{local}/metrics/")["status"] == 401  # key needed
    metrics = _http_in(docker, gw, f"{local}/metrics/", key=MASTER_KEY)
    assert metrics["status"] == 200
    assert "litellm_proxy_total_requests_metric" in metrics["body"]


# --- monitoring images ------------------------------------------------------------------------

# image tag -> (port, path answered once ready, config mounted at, its content)
_MONITORING: dict[str, tuple[int, str, str | None, str]] = {
    specs.PROMETHEUS_TAG: (
        9090,
        "/-/ready",
        specs.PROMETHEUS_CONFIG_PATH,
        "scrape_configs:\n  - job_name: prometheus\n    static_configs: [{targets: ['localhost:9090']}]\n",
    ),
    specs.ALERTMANAGER_TAG: (
        9093,
        "/-/ready",
        specs.ALERTMANAGER_CONFIG_PATH,
        "route: {receiver: none}\nreceivers: [{name: none}]\n",
    ),
    specs.PUSHGATEWAY_TAG: (9091, "/-/ready", None, ""),
    specs.REDIS_EXPORTER_TAG: (9121, "/health", None, ""),
    specs.BLACKBOX_EXPORTER_TAG: (9115, "/-/healthy", None, ""),
}


@pytest.fixture(scope="module")
def monitoring_containers(
    first_build: list[BuildResult],
    docker: Any,
    module_containers: list[str],
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, str]:
    """Every monitoring image started at once (tag -> container name), so that their
    HEALTHCHECK intervals run side by side rather than one after the other."""
    started = {}
    for tag, (port, _, config_path, config) in _MONITORING.items():
        short = tag.split("/")[1].split(":")[0]
        volumes = []
        if config_path is not None:
            local = tmp_path_factory.mktemp(short) / "config.yml"
            local.write_text(config)
            local.chmod(0o644)
            volumes.append((str(local), config_path, "ro"))
        started[tag] = _run(docker, module_containers, tag, short, port=port, volumes=volumes)
    return started


@pytest.mark.parametrize("tag", list(_MONITORING), ids=lambda t: t.split("/")[1].split(":")[0])
def test_monitoring_image_serves_unprivileged_and_goes_healthy(
    docker: Any, monitoring_containers: dict[str, str], tag: str
) -> None:
    port, path, _, _ = _MONITORING[tag]
    name = monitoring_containers[tag]
    base = f"http://127.0.0.1:{_host_port(docker, name, port)}"
    _wait_http(docker, name, base + path, timeout=60)
    status, body = _http(base + "/metrics")
    assert status == 200 and b"# TYPE" in body
    _wait_healthy(docker, name, timeout=60)  # the image's HEALTHCHECK
    assert docker.execute(name, ["id", "-un"]).strip() == "prometheus"


def test_exporters_reach_redis_and_probe_http(
    first_build: list[BuildResult], docker: Any, containers: list[str]
) -> None:
    """The Redis exporter finds the cache under the stack's name (its REDIS_ADDR default);
    the blackbox exporter's http_2xx module probes a service on the same network."""
    net = f"{PREFIX}-mon"
    docker.network.create(net)
    containers.append(net)
    _run(docker, containers, specs.REDIS_TAG, "mon-redis", networks=[net], network_aliases=["redis"])
    _run(docker, containers, specs.PUSHGATEWAY_TAG, "mon-pg", networks=[net], network_aliases=["pg"])
    exporter = _run(docker, containers, specs.REDIS_EXPORTER_TAG, "mon-rx", port=9121, networks=[net])
    blackbox = _run(docker, containers, specs.BLACKBOX_EXPORTER_TAG, "mon-bb", port=9115, networks=[net])
    rx = f"http://127.0.0.1:{_host_port(docker, exporter, 9121)}"
    bb = f"http://127.0.0.1:{_host_port(docker, blackbox, 9115)}"
    _wait_http(docker, exporter, f"{rx}/health", timeout=30)
    _wait_http(docker, blackbox, f"{bb}/-/healthy", timeout=30)

    def sample(url: str, metric: str) -> str | None:
        lines = _http(url)[1].decode().splitlines()
        return next((line.split()[-1] for line in lines if line.startswith(metric + " ")), None)

    deadline = time.monotonic() + 30
    while sample(f"{rx}/metrics", "redis_up") != "1":
        assert time.monotonic() < deadline, "redis_up never became 1"
        time.sleep(0.5)
    up = f"{bb}/probe?module=http_2xx&target=http://pg:9091/-/ready"
    deadline = time.monotonic() + 30
    while sample(up, "probe_success") != "1":
        assert time.monotonic() < deadline, "the http_2xx probe of the Pushgateway never succeeded"
        time.sleep(0.5)
    assert sample(f"{bb}/probe?module=http_2xx&target=http://nothere:9/", "probe_success") == "0"
