"""The generated compose file works on its own: plain `docker compose`, no stackctl involved.

A user who never runs `stackctl up` does

    docker compose --env-file .env --profile llamacpp --profile ollama --profile vllm-qwen \\
        -f compose/compose.yaml up --wait

and talks to the gateway with any OpenAI client. This test does the same with
testcontainers' `DockerCompose` (wait=True: `up --wait`, i.e. Docker's healthchecks in the
generated file decide readiness), then sends real completions through the gateway with
`requests`: one served by llama.cpp (SmolLM2 on the CPU) and one per stub-served model.

To share the machine with other tests and engineers (fixed host ports 4000, 6379, 8001,
8080…, project stackctl-offline), the offline example's registry is copied into tmp with its
own project name and free host ports everywhere (stack.yaml gateway/cache/monitoring,
providers' base_url ports), and `stackctl generate -C <copy>` renders the compose file
there; that is the only stackctl step. The `.env` next to the config holds the master key
and every other variable the generated file insists on. The project is always brought down
with its volumes. testcontainers' rough edges are handled in tests/tc.py.
"""

from __future__ import annotations

import re
import secrets
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests
from ruamel.yaml import YAML

from tests import tc  # first: testcontainers settings

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
OFFLINE = REPO / "examples" / "offline"
MONITORING = ("prometheus", "grafana", "loki")  # services with a default host port


@dataclass
class Plain:
    compose: Any  # testcontainers DockerCompose
    project: str
    key: str
    ports: dict[str, int]  # service -> host port chosen for it
    models: dict[str, str]  # public model name -> provider
    services: set[str]  # what the default profiles start, per the generated file


def free_ports(count: int) -> list[int]:
    """Ports nothing listens on right now on 127.0.0.1 (held open together: all distinct)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind((tc.LOOPBACK, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _edit(path: Path, change: Any) -> Any:
    yaml = YAML()
    data = yaml.load(path.read_text(encoding="utf-8"))
    change(data)
    with path.open("w", encoding="utf-8") as fh:
        yaml.dump(data, fh)
    return data


def _with_port(url: str, port: int) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{parts.hostname}:{port}"))


def make_copy(root: Path, project: str) -> tuple[Path, dict[str, int], list[str]]:
    """The offline registry in root with its own project and host ports; generated there."""
    config = root / "examples" / "offline" / "config"
    shutil.copytree(OFFLINE / "config", config)
    providers = YAML().load((config / "providers.yaml").read_text())["providers"]
    local = [name for name, p in providers.items() if p.get("container")]
    services = ["litellm", "redis", *local, *MONITORING]
    ports = dict(zip(services, free_ports(len(services)), strict=True))

    def stack(data: Any) -> None:
        from stackctl.registry.models import Monitoring  # the default images to keep

        data["project"] = project
        data.setdefault("gateway", {})["host_port"] = ports["litellm"]
        data.setdefault("cache", {})["host_port"] = ports["redis"]
        monitoring = data.setdefault("monitoring", {})
        for name in MONITORING:
            entry = monitoring.setdefault(name, {})
            entry.setdefault("image", getattr(Monitoring(), name).image)
            entry["host_port"] = ports[name]

    def provs(data: Any) -> None:
        for name in local:
            prov = data["providers"][name]
            prov["base_url"] = _with_port(prov["base_url"], ports[name])
            prov["container"].pop("host_port", None)  # base_url's port is the host port

    stack_data = _edit(config / "stack.yaml", stack)
    _edit(config / "providers.yaml", provs)
    done = subprocess.run([sys.executable, "-m", "stackctl", "generate", "-C", str(config)],
                          capture_output=True, text=True, timeout=120, cwd=root)
    assert done.returncode == 0, f"stackctl generate failed:\n{done.stdout}\n{done.stderr}"
    return config, ports, list(stack_data.get("default_profiles") or [])


def write_env(compose_file: Path, env_file: Path) -> str:
    """.env with LITELLM_MASTER_KEY and every other ${VAR:?} / secret variable of the file."""
    text = compose_file.read_text(encoding="utf-8")
    names = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*):?\?", text))
    secrets_block = YAML(typ="safe").load(text).get("secrets") or {}
    names |= {s["environment"] for s in secrets_block.values() if "environment" in s}
    names.add("LITELLM_MASTER_KEY")
    values = {n: f"sk-plain-{secrets.token_hex(16)}" for n in sorted(names)}
    env_file.write_text("".join(f"{n}={v}\n" for n, v in values.items()), encoding="utf-8")
    return values["LITELLM_MASTER_KEY"]


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory, docker_ready: None) -> Iterator[Plain]:
    from testcontainers.compose import DockerCompose

    root = tmp_path_factory.mktemp("plain-compose")
    project = f"stackctl-plain-{uuid.uuid4().hex[:8]}"
    config, ports, profiles = make_copy(root, project)
    compose_dir = config.parent / "compose"
    compose_file = compose_dir / "compose.yaml"
    assert compose_file.is_file(), list(compose_dir.iterdir())
    generated = YAML(typ="safe").load(compose_file.read_text())
    assert generated["name"] == project  # DockerCompose has no project argument (tc.py)
    key = write_env(compose_file, config.parent / ".env")
    services = {name for name, svc in generated["services"].items()
                if not svc.get("profiles") or set(svc["profiles"]) & set(profiles)}

    mappings = YAML(typ="safe").load((config / "model-mappings.yaml").read_text())
    models = {name: m["provider"] for name, m in mappings["exact_matches"].items()}

    compose = DockerCompose(compose_dir, compose_file_name="compose.yaml", profiles=profiles,
                            env_file=str(config.parent / ".env"), wait=True)
    try:
        try:
            compose.start()  # docker compose ... up --wait
        except subprocess.CalledProcessError as exc:
            pytest.fail(f"`docker compose up --wait` failed ({exc.returncode}):\n"
                        f"{(exc.stderr or b'').decode(errors='replace')[-3000:]}\n"
                        f"--- logs ---\n{tc.compose_logs(compose)[-6000:]}")
        yield Plain(compose, project, key, ports, models, services)
    finally:
        compose.stop()  # down --volumes


@pytest.fixture(scope="module")
def gateway_url(plain: Plain) -> str:
    from testcontainers.core.wait_strategies import HealthcheckWaitStrategy, HttpWaitStrategy

    # Through tc.ComposeService: published ports and the Docker container, not the raw
    # ComposeContainer (container port, AttributeError); see tests/tc.py.
    tc.wait_compose(plain.compose, {
        "litellm": HttpWaitStrategy(4000, "/health/readiness").with_startup_timeout(120),
        "llama_cpp": HealthcheckWaitStrategy().with_startup_timeout(120),
    })
    return tc.compose_url(plain.compose, "litellm", 4000)


def test_services_of_the_default_profiles_run_in_their_own_project(plain: Plain) -> None:
    running = plain.compose.get_containers()
    assert {c.Project for c in running} == {plain.project}
    assert {c.Service for c in running} == plain.services
    assert {"litellm", "redis", "llama_cpp"} <= plain.services
    assert all(c.State == "running" for c in running), running


def test_ports_are_published_on_loopback_where_the_copy_says(plain: Plain) -> None:
    for container in plain.compose.get_containers():
        published = [(p.URL, p.PublishedPort) for p in container.Publishers if p.PublishedPort]
        assert published == [(tc.LOOPBACK, plain.ports[container.Service])], \
            (container.Service, container.Publishers)
    # testcontainers' own lookup agrees (its ComposeContainer.get_exposed_port does not)
    assert plain.compose.get_service_port("litellm", 4000) == plain.ports["litellm"]
    assert tc.compose_port(plain.compose, "litellm", 4000) == plain.ports["litellm"]


def _model_of(plain: Plain, provider: str) -> str:
    return next(m for m, p in plain.models.items() if p == provider)


def _complete(url: str, key: str, model: str) -> dict[str, Any]:
    with requests.Session() as http:
        http.trust_env = False
        r = http.post(f"{url}/v1/chat/completions", timeout=300,
                      headers={"Authorization": f"Bearer {key}"},
                      json={"model": model, "max_tokens": 12, "temperature": 0,
                            "messages": [{"role": "user", "content": "Name a colour."}]})
    assert r.status_code == 200, r.text[:2000]
    return r.json()


def test_completion_through_the_gateway_from_llama_cpp(plain: Plain, gateway_url: str) -> None:
    model = _model_of(plain, "llama_cpp")
    body = _complete(gateway_url, plain.key, model)
    choice = body["choices"][0]
    assert choice["message"]["role"] == "assistant", body
    assert choice["message"]["content"].strip(), body
    assert "[stub" not in choice["message"]["content"], body  # a real model answered
    assert choice["finish_reason"] in ("stop", "length"), body
    assert 0 < body["usage"]["completion_tokens"] <= 12, body


@pytest.mark.parametrize("provider", ["vllm-qwen", "ollama"])
def test_completion_through_the_gateway_from_a_stub(plain: Plain, gateway_url: str,
                                                     provider: str) -> None:
    body = _complete(gateway_url, plain.key, _model_of(plain, provider))
    assert body["choices"][0]["message"]["content"].startswith(f"[stub {provider}]"), body


def test_gateway_enforces_the_master_key_from_env(plain: Plain, gateway_url: str) -> None:
    """The generated file hands .env's LITELLM_MASTER_KEY to the gateway: another key is refused.

    (A request with no key at all must get 401: tests/contract/test_gateway.py checks that.)
    """
    with requests.Session() as http:
        http.trust_env = False
        wrong = http.get(f"{gateway_url}/v1/models", timeout=30,
                         headers={"Authorization": "Bearer sk-not-the-key-in-env"})
        right = http.get(f"{gateway_url}/v1/models", timeout=30,
                         headers={"Authorization": f"Bearer {plain.key}"})
    assert wrong.status_code in (400, 401), (wrong.status_code, wrong.text)  # 400: no DB
    assert right.status_code == 200, right.text
    assert set(plain.models) <= {m["id"] for m in right.json()["data"]}, right.json()
