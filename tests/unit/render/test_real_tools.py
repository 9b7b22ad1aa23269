"""The generated files, checked by the real tools that will consume them.

* Compose: `docker compose -f compose.yaml --env-file <dummy env> --profile P config -q` for
  every profile of the shipped registry and the offline example (the Compose v2 binary only
  parses and interpolates: no daemon needed).
* LiteLLM: the generated config is loaded by the real `litellm` library, offline
  (`LITELLM_LOCAL_MODEL_COST_MAP=true` before the import), and turned into a `litellm.Router`,
  the object the proxy builds from it. LiteLLM only *warns* about unknown router_settings keys,
  so every key is also checked against the signature of `litellm.Router.__init__`.
* Healthchecks: the generated probe commands are run against the stub inference server.

A missing tool skips with its reason; CI runs with --no-skip, which makes that a failure.
"""

from __future__ import annotations

import copy
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from stackctl.registry.catalog import profiles
from stackctl.registry.load import load_registry
from stackctl.render.files import render_all
from stackctl.store.generated import write_all
from tests.paths import REPO

# importing litellm makes pydantic warn about litellm's own types: not ours to act on
pytestmark = pytest.mark.filterwarnings("ignore:.*`ReadOnly` qualifier:UserWarning")

REGISTRIES = {"shipped": Path("config"), "offline": Path("examples/offline/config")}
STUB = REPO / "stackctl" / "incontainer" / "inference_stub"  # run as `python -m inference_stub`
DUMMY_ENV = {"LITELLM_MASTER_KEY": "sk-dummy-master", "GRAFANA_ADMIN_PASSWORD": "dummy-password",
             "REDIS_PASSWORD": "sk-dummy-redis"}

LB_PROVIDERS = """\
providers:
  ollama:
    type: ollama
    base_url: http://127.0.0.1:11434
    models: [{name: "llama3.1:latest"}]
    container: {image: "ollama/ollama:0.12.10", port: 11434, health: {via: ollama-cli}}
  vllm:
    type: vllm
    base_url: http://127.0.0.1:8001
    models: [{name: qwen-coder-vllm}]
    container:
      image: vllm/vllm-openai:v0.11.0
      command: ["--served-model-name", "qwen-coder-vllm", "--port", "8000"]
      port: 8000
  openai:
    type: openai
    base_url: https://api.openai.com/v1
    requires_api_key: true
    env_var: OPENAI_API_KEY
    models: [gpt-4o-mini]
"""
LB_MAPPINGS = """\
exact_matches:
  "llama3.1:latest": {provider: ollama, aliases: [general]}
  qwen-coder-vllm: {provider: vllm}
  gpt-4o-mini: {provider: openai}
load_balancing:
  chat:
    providers:
      - {provider: ollama, weight: 0.7, preferred_model: "llama3.1:latest"}
      - {provider: vllm, weight: 0.3}
fallback_chains:
  chat: {chain: [gpt-4o-mini]}
  qwen-coder-vllm: {chain: ["llama3.1:latest"]}
  default: {chain: ["llama3.1:latest"]}
"""


def _generate(root: Path, rel: Path) -> Path:
    """Copy a registry to root/rel (sibling layout kept), generate; return the compose folder."""
    shutil.copytree(REPO / rel, root / rel)
    reg = load_registry(root / rel)
    write_all(render_all(reg))
    return reg.output_dir


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("real-tools")
    out = {name: _generate(root, rel) for name, rel in REGISTRIES.items()}
    lb = root / "lb" / "config"
    lb.mkdir(parents=True)
    (lb / "providers.yaml").write_text(LB_PROVIDERS)
    (lb / "model-mappings.yaml").write_text(LB_MAPPINGS)
    reg = load_registry(lb)
    write_all(render_all(reg))
    out["lb"] = reg.output_dir
    return out


def _profiles(name: str) -> list[str]:
    return profiles(load_registry(REPO / REGISTRIES[name]))


PROFILE_CASES = [(name, p) for name in REGISTRIES for p in [None, *_profiles(name)]]


# -- docker compose -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def compose_env(tmp_path_factory) -> dict[str, Any]:
    env = {k: os.environ[k] for k in ("PATH", "HOME", "DOCKER_CONFIG") if k in os.environ}
    try:
        p = subprocess.run(["docker", "compose", "version"], check=False, capture_output=True,
                           text=True, env=env, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"`docker compose version` cannot run: {exc}")
    if p.returncode != 0:
        pytest.skip(f"`docker compose version` failed: {(p.stderr or p.stdout).strip()}")
    env_file = tmp_path_factory.mktemp("compose-env") / "test.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in DUMMY_ENV.items()))
    return {"env": env, "env_file": env_file, "version": p.stdout.strip()}


def compose(compose_env, out: Path, *args: str, env_file: bool = True):
    cmd = ["docker", "compose", "-f", str(out / "compose.yaml")]
    if env_file:
        cmd += ["--env-file", str(compose_env["env_file"])]
    return subprocess.run(cmd + list(args), check=False, capture_output=True, text=True,
                          env=compose_env["env"], timeout=60)


@pytest.mark.parametrize("name, profile", PROFILE_CASES,
                         ids=[f"{n}-{p or 'core'}" for n, p in PROFILE_CASES])
def test_compose_config_is_valid(compose_env, outputs, name, profile):
    args = ["--profile", profile] if profile else []
    p = compose(compose_env, outputs[name], *args, "config", "-q")
    assert p.returncode == 0, p.stderr
    assert p.stdout == "" and "warn" not in p.stderr.lower(), p.stderr
    if profile not in (None, "vllm-qwen", "vllm-dolphin", "monitoring"):
        return

    p = compose(compose_env, outputs[name], *args, "config", "--services")
    assert p.returncode == 0, p.stderr
    services = set(p.stdout.split())
    assert {"litellm", "redis"} <= services
    if profile in ("vllm-qwen", "vllm-dolphin"):
        other = {"vllm-qwen": "vllm-dolphin", "vllm-dolphin": "vllm-qwen"}[profile]
        assert profile in services and other not in services  # one exclusive GPU member
    if profile == "monitoring":
        assert {"prometheus", "alertmanager", "pushgateway", "redis-exporter"} <= services
        # Grafana, Loki and Alloy cannot be built here: only the shipped registry has them
        assert ({"grafana", "loki", "alloy"} <= services) == (name == "shipped")


def test_host_path_volumes_load(compose_env, tmp_path):
    """A provider mounting host folders (warned about) still gives a file Compose loads:
    only named volumes are declared at the top (issue #22)."""
    cfg = tmp_path / "examples" / "offline" / "config"
    shutil.copytree(REPO / "examples" / "offline" / "config", cfg)
    text = (cfg / "providers.yaml").read_text()
    (cfg / "providers.yaml").write_text(text.replace(
        "        gpu0-sim: /gpu\n", "        gpu0-sim: /gpu\n        ./models: /models\n"
        "        /srv/cache: /cache\n", 1))
    reg = load_registry(cfg)
    write_all(render_all(reg))
    p = compose(compose_env, reg.output_dir, "--profile", "vllm-qwen", "config", "-q")
    assert p.returncode == 0, p.stderr


@pytest.mark.parametrize("name", ["shipped", "lb"])
def test_compose_interpolates_secrets_from_the_env_file(compose_env, outputs, name):
    env = dict(DUMMY_ENV, OPENAI_API_KEY="sk-dummy-openai")
    env_file = outputs[name] / "secrets.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    cmd = ["docker", "compose", "-f", str(outputs[name] / "compose.yaml"),
           "--env-file", str(env_file), "config", "--format", "json"]
    p = subprocess.run(cmd, check=False, capture_output=True, text=True,
                       env=compose_env["env"], timeout=60)
    env_file.unlink()
    assert p.returncode == 0, p.stderr
    gw = json.loads(p.stdout)["services"]["litellm"]["environment"]
    assert gw["LITELLM_MASTER_KEY"] == "sk-dummy-master"
    if name == "lb":
        assert gw["OPENAI_API_KEY"] == "sk-dummy-openai"


def _env_file(out: Path, name: str, env: dict[str, str]) -> Path:
    path = out.parent / name
    path.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    return path


def test_compose_refuses_to_run_without_master_key(compose_env, outputs):
    env_file = _env_file(outputs["shipped"], "no-master-key.env",
                         {"GRAFANA_ADMIN_PASSWORD": "dummy-password",
                          "REDIS_PASSWORD": "sk-dummy-redis"})
    p = compose(compose_env, outputs["shipped"], "--env-file", str(env_file), "config", "-q",
                env_file=False)
    assert p.returncode != 0
    assert "required variable LITELLM_MASTER_KEY is missing a value: " \
           "set LITELLM_MASTER_KEY in .env" in p.stderr


@pytest.mark.parametrize("name", ["shipped", "offline"])
def test_core_stack_needs_only_the_master_key_and_cache_password(compose_env, outputs, name):
    env_file = _env_file(outputs[name], "master-key-only.env",
                         {"LITELLM_MASTER_KEY": "sk-dummy-master",
                          "REDIS_PASSWORD": "sk-dummy-redis"})
    p = compose(compose_env, outputs[name], "--env-file", str(env_file), "config", "-q",
                env_file=False)
    assert p.returncode == 0, p.stderr


# -- LiteLLM --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def litellm():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "true")  # no network at import
        try:
            import litellm as mod
        except Exception as exc:  # noqa: BLE001 - any import failure is a skip reason
            pytest.skip(f"litellm cannot be imported: {exc!r}")
    return mod


def load_litellm_config(out: Path) -> dict[str, Any]:
    return YAML(typ="safe", pure=True).load((out / "litellm" / "config.yaml").read_text())


def resolve_env_refs(node: Any, env: dict[str, str]) -> Any:
    """What the proxy does with `os.environ/VAR` values: replace them by the variable."""
    if isinstance(node, dict):
        return {k: resolve_env_refs(v, env) for k, v in node.items()}
    if isinstance(node, list):
        return [resolve_env_refs(v, env) for v in node]
    if isinstance(node, str) and node.startswith("os.environ/"):
        return env[node.removeprefix("os.environ/")]
    return node


def unknown_router_keys(litellm, settings: dict[str, Any]) -> set[str]:
    params = set(inspect.signature(litellm.Router.__init__).parameters) - {"self"}
    return set(settings) - params


def test_unknown_router_key_detection_works(litellm):
    """Negative control for the signature check the tests below rely on."""
    assert unknown_router_keys(litellm, {"num_retries": 1, "cooldown": 3}) == {"cooldown"}


@pytest.mark.parametrize("name", ["shipped", "offline", "lb"])
def test_litellm_router_accepts_the_config(litellm, outputs, name):
    cfg = load_litellm_config(outputs[name])
    env = dict(DUMMY_ENV, OPENAI_API_KEY="sk-dummy-openai")
    cfg = resolve_env_refs(cfg, env)
    settings = cfg["router_settings"]
    assert unknown_router_keys(litellm, settings) == set(), \
        "router_settings keys LiteLLM would ignore with only a warning"

    # deep copies: the Router appends default_fallbacks to the fallbacks list it is given
    router = litellm.Router(model_list=copy.deepcopy(cfg["model_list"]),
                            **copy.deepcopy(settings))

    want = {d["model_info"]["id"]: d for d in cfg["model_list"]}
    got = {d["model_info"]["id"]: d for d in router.model_list}
    assert set(got) == set(want), "the router dropped or added deployments"
    for dep_id, dep in want.items():
        assert got[dep_id]["model_name"] == dep["model_name"]
        for k, v in dep["litellm_params"].items():
            assert got[dep_id]["litellm_params"][k] == v, (dep_id, k)
        model, provider, _, api_base = litellm.get_llm_provider(
            model=dep["litellm_params"]["model"], api_base=dep["litellm_params"].get("api_base"))
        assert provider == dep["litellm_params"]["model"].split("/", 1)[0], dep_id
        assert api_base == dep["litellm_params"]["api_base"]

    # LiteLLM stores default_fallbacks as a trailing wildcard entry of the fallbacks
    expected = list(settings.get("fallbacks", []))
    if "default_fallbacks" in settings:
        expected.append({"*": settings["default_fallbacks"]})
    assert (router.fallbacks or []) == expected
    assert router.model_group_alias == settings.get("model_group_alias", {})
    assert router.routing_strategy == settings["routing_strategy"]
    assert router.num_retries == settings["num_retries"]
    assert router.cooldown_time == settings["cooldown_time"]
    assert router.allowed_fails == settings["allowed_fails"]
    assert router.timeout == settings["timeout"]

    groups = set(router.get_model_names())
    for chain in settings.get("fallbacks", []):
        ((model, targets),) = chain.items()
        assert model in groups and set(targets) <= groups, chain
    for alias, target in settings.get("model_group_alias", {}).items():
        assert target in groups, (alias, target)
    for target in settings.get("default_fallbacks", []):
        assert target in groups

    # the proxy sets litellm_settings as attributes of the litellm module and builds the
    # cache from cache_params: unknown names there would be ignored silently too
    for key in cfg["litellm_settings"]:
        if key != "cache_params":
            assert hasattr(litellm, key), f"litellm_settings.{key} is not a litellm setting"
    cache_keys = set(inspect.signature(litellm.Cache.__init__).parameters)
    assert set(cfg["litellm_settings"].get("cache_params", {})) <= cache_keys
    assert cfg["general_settings"]["master_key"] == DUMMY_ENV["LITELLM_MASTER_KEY"]


def test_litellm_router_keeps_the_weights(litellm, outputs):
    cfg = resolve_env_refs(load_litellm_config(outputs["lb"]),
                           dict(DUMMY_ENV, OPENAI_API_KEY="sk-dummy-openai"))
    router = litellm.Router(model_list=cfg["model_list"], **cfg["router_settings"])
    weights = {d["model_info"]["provider"]: d["litellm_params"].get("weight")
               for d in router.model_list if d["model_name"] == "chat"}
    assert weights == {"ollama": 0.7, "vllm": 0.3}


# -- generated healthchecks against the stub server -----------------------------------------

class Stub:
    def __init__(self, **env: str):
        if not STUB.exists():
            pytest.skip(f"stub server not found at {STUB}")
        full = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(STUB.parent), "STUB_PORT": "0",
                "STUB_HOST": "127.0.0.1", **env}
        self.proc = subprocess.Popen([sys.executable, "-m", STUB.name], env=full, text=True,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        self.port: int | None = None
        found = threading.Event()

        def read() -> None:
            for line in self.proc.stderr:  # type: ignore[union-attr]
                m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
                if m and self.port is None:
                    self.port = int(m.group(1))
                    found.set()

        threading.Thread(target=read, daemon=True).start()
        if not found.wait(10):
            self.stop()
            raise AssertionError("stub did not report its port")

    def wait_ready(self, path: str) -> None:
        import urllib.request

        deadline = time.monotonic() + 10
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=2).read()
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def run_probe(outputs, registry: str, service: str, stub: Stub) -> subprocess.CompletedProcess:
    """Run the service's generated `python3 -c` healthcheck, pointed at the stub's port."""
    doc = YAML(typ="safe").load((outputs[registry] / "compose.yaml").read_text())
    svc = doc["services"][service]
    test = svc["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python3", "-c"], test
    code = re.sub(r"http://127\.0\.0\.1:\d+", f"http://127.0.0.1:{stub.port}", test[3])
    return subprocess.run([sys.executable, "-c", code], check=False, capture_output=True,
                          text=True, timeout=30)


def test_vllm_probe_passes_against_a_ready_server(outputs):
    stub = Stub(STUB_FLAVOR="vllm", STUB_MODELS="qwen-coder-vllm", STUB_NAME="vllm-qwen")
    try:
        stub.wait_ready("/v1/models")
        p = run_probe(outputs, "offline", "vllm-qwen", stub)
        assert p.returncode == 0, p.stderr
    finally:
        stub.stop()


def test_vllm_probe_fails_for_the_wrong_model(outputs):
    stub = Stub(STUB_FLAVOR="vllm", STUB_MODELS="some-other-model")
    try:
        stub.wait_ready("/v1/models")
        assert run_probe(outputs, "offline", "vllm-qwen", stub).returncode != 0
    finally:
        stub.stop()


def test_ollama_probe_passes_against_a_ready_server(outputs):
    stub = Stub(STUB_FLAVOR="ollama", STUB_MODELS="qwen2.5-coder:7b", STUB_NAME="ollama")
    try:
        stub.wait_ready("/api/tags")
        p = run_probe(outputs, "offline", "ollama", stub)
        assert p.returncode == 0, p.stderr
    finally:
        stub.stop()
