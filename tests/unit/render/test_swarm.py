"""The Docker Swarm stack file (render/swarm.py).

Golden files: tests/golden/<registry>/swarm.yaml. After an intended change, regenerate and
review:

    UPDATE_GOLDEN=1 python -m pytest tests/unit/render/test_swarm.py -q
    git diff tests/golden

`docker stack config` (Docker CLI 28; it needs no Swarm and no engine) must accept the file
for both registries: skipped without the docker CLI, a failure with STACKCTL_REQUIRE_TOOLS=1.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from stackctl.registry.catalog import exclusive_groups, profile_of
from stackctl.registry.load import load_registry
from stackctl.registry.vocabulary import SWARM_FILE
from stackctl.render.compose import render_compose
from stackctl.render.files import render_all
from stackctl.render.swarm import (
    default_members,
    render_swarm,
    swarm_secrets,
    swarm_text,
)
from tests.paths import CONFIGS, GOLDEN, REPO

NAMES = list(CONFIGS)
SECRETS = {  # set while rendering: none may reach the stack file
    "LITELLM_MASTER_KEY": "sk-should-not-appear-master",
    "REDIS_PASSWORD": "sk-should-not-appear-redis",
    "HF_TOKEN": "hf_should_not_appear",
    "OPENAI_API_KEY": "sk-should-not-appear-openai",
}
# keys `docker stack deploy` rejects or ignores ("Ignoring unsupported options")
UNSUPPORTED = {"profiles", "depends_on", "container_name", "build", "restart", "tmpfs",
               "links", "network_mode", "devices"}


def load_yaml(text: str) -> Any:
    return YAML(typ="safe", pure=True).load(text)


@pytest.fixture
def secret_env(monkeypatch):
    for k, v in SECRETS.items():
        monkeypatch.setenv(k, v)


@pytest.fixture(params=NAMES)
def repo_reg(request, monkeypatch, secret_env):
    monkeypatch.chdir(REPO)
    reg = load_registry(CONFIGS[request.param])
    return request.param, reg


def render_copy(registry_dir, yaml_edit, name: str, *edits) -> tuple[Any, dict[str, Any]]:
    """Render a copy of a registry after edits (file name, edit function) to it."""
    cfg = registry_dir(name)
    for fname, edit in edits:
        yaml_edit(cfg / fname, edit)
    reg = load_registry(cfg)
    return reg, render_swarm(reg)


def require_docker() -> str:
    path = shutil.which("docker")
    if path is None:
        msg = "the docker CLI is not on PATH (Debian: apt-get install docker.io)"
        if os.environ.get("STACKCTL_REQUIRE_TOOLS") == "1":
            pytest.fail(msg + " and STACKCTL_REQUIRE_TOOLS=1")
        pytest.skip(msg)
    return path


# -- golden files, stability -------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_renderer_matches_golden(name, monkeypatch):
    monkeypatch.chdir(REPO)
    text = swarm_text(load_registry(CONFIGS[name]))
    golden = GOLDEN / name / "swarm.yaml"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.write_text(text, encoding="utf-8")
        return
    assert golden.exists(), f"{golden} missing: run with UPDATE_GOLDEN=1"
    expected = golden.read_text(encoding="utf-8")
    diff = "".join(difflib.unified_diff(expected.splitlines(keepends=True),
                                        text.splitlines(keepends=True),
                                        str(golden.relative_to(REPO)), "renderer output"))
    assert text == expected, f"differs from the golden file (UPDATE_GOLDEN=1 to accept):\n{diff}"


@pytest.mark.parametrize("name", NAMES)
def test_copy_renders_the_same_bytes(name, registry_dir, secret_env):
    """Rendered from a copy elsewhere, with secrets in the environment: the same bytes (no
    absolute path, no value from the environment), twice."""
    cfg = registry_dir(name)
    reg = load_registry(cfg)
    text = swarm_text(reg)
    assert text == swarm_text(load_registry(cfg))
    assert text == (GOLDEN / name / "swarm.yaml").read_text(encoding="utf-8")
    assert str(cfg.parent) not in text


def test_no_secret_value_anywhere(repo_reg):
    _, reg = repo_reg
    text = swarm_text(reg)
    for value in SECRETS.values():
        assert value not in text


# -- docker stack config ---------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_docker_stack_config_accepts_it(name, tmp_path, monkeypatch, secret_env):
    """The stack file and the gateway's files in the generated layout; the CLI resolves the
    configs beside it, interpolates `$$` to `$` and keeps the secrets external."""
    docker = require_docker()
    monkeypatch.chdir(REPO)
    reg = load_registry(CONFIGS[name])
    out = tmp_path / "out"
    generated = {f.path.relative_to(reg.output_dir).as_posix(): f.text for f in render_all(reg)}
    generated[SWARM_FILE] = swarm_text(reg)
    for rel, text in generated.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_text(text, encoding="utf-8")
    r = subprocess.run([docker, "stack", "config", "-c", SWARM_FILE], cwd=out,
                       capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 0, r.stderr
    assert "Ignoring" not in r.stderr and "unsupported" not in r.stderr.lower(), r.stderr
    cfg = load_yaml(r.stdout)
    assert set(cfg["services"]) == set(render_swarm(reg)["services"])
    for conf in cfg["configs"].values():
        assert Path(conf["file"]).is_file(), conf
    for secret in cfg["secrets"].values():
        assert secret["external"] is True
    entry = cfg["services"]["litellm"]["entrypoint"]
    assert entry[:2] == ["sh", "-c"] and 'exec litellm "$@"' in entry[2] and "$$" not in entry[2]
    assert "$(cat /run/secrets/" in cfg["services"]["redis"]["command"][2]
    for value in SECRETS.values():  # `${HF_TOKEN:-}` is filled in at deploy: not our file's
        assert value not in generated[SWARM_FILE]


def test_config_names_follow_the_texts(repo_reg):
    """Each config is named by the hash of the text `generate` writes to its file."""
    _, reg = repo_reg
    texts = {f.path.relative_to(reg.output_dir).as_posix(): f.text for f in render_all(reg)}
    doc = render_swarm(reg)
    files = {}
    for cname, conf in doc["configs"].items():
        rel = conf["file"].removeprefix("../")
        assert conf["file"].startswith("../") and rel in texts
        assert cname.endswith("_" + hashlib.sha256(texts[rel].encode()).hexdigest()[:10])
        files[rel] = cname
    want = {"litellm/config.yaml", "litellm/stackctl_trace.py"}
    if exclusive_groups(reg):
        want.add("litellm/stackctl_routing.py")
    assert set(files) == want
    mounts = {c["source"]: c["target"] for c in doc["services"]["litellm"]["configs"]}
    assert mounts == {cname: "/app/litellm/" + rel.split("/")[1] for rel, cname in files.items()}


def test_changed_config_gets_a_new_name(registry_dir, yaml_edit):
    _, before = render_copy(registry_dir, yaml_edit, "offline")
    _, after = render_copy(registry_dir, yaml_edit, "offline", (
        "stack.yaml", lambda d: d.setdefault("gateway", {}).__setitem__(
            "router", {"num_retries": 2})))
    old, new = set(before["configs"]), set(after["configs"])
    changed = old ^ new
    assert len(changed) == 2 and all(c.startswith("litellm_config_yaml_") for c in changed)


# -- what `docker stack deploy` needs --------------------------------------------------------

def test_swarm_document_shape(repo_reg):
    _, reg = repo_reg
    doc = render_swarm(reg)
    assert list(doc) == ["services", "networks", "volumes", "configs", "secrets"]
    assert doc["networks"] == {"default": {"driver": "overlay", "attachable": True}}
    compose = render_compose(reg)["services"]
    for name, svc in doc["services"].items():
        assert not UNSUPPORTED & set(svc), (name, UNSUPPORTED & set(svc))
        assert "networks" not in svc  # all on the default overlay network
        assert "ports" not in svc or all(p["mode"] == "host" for p in svc["ports"])
        assert svc["deploy"]["restart_policy"] == {"condition": "any", "delay": "2s"}
        # the compose labels, as service labels (the runtime finds members by them)
        assert svc["deploy"]["labels"] == compose[name]["labels"] == svc["labels"]
        assert svc["healthcheck"]["interval"] == compose[name]["healthcheck"]["interval"]
    assert not set(doc["services"]) & {"prometheus", "alertmanager", "grafana"}


def test_group_members_and_profiles_scale_0_1(repo_reg):
    _, reg = repo_reg
    services = render_swarm(reg)["services"]
    assert services["vllm-qwen"]["deploy"]["replicas"] == 1
    assert services["vllm-dolphin"]["deploy"]["replicas"] == 0
    assert default_members(reg) == {"vllm-qwen"}
    for name, prov in reg.providers.providers.items():
        if name in services and not (prov.container.gpu and prov.container.gpu.exclusive_group):
            want = int(profile_of(name, prov) in reg.stack.default_profiles)
            assert services[name]["deploy"]["replicas"] == want, name
    assert services["litellm"]["deploy"]["replicas"] == reg.stack.deploy.gateway_replicas == 2


def test_first_member_when_no_default_profile_names_one(registry_dir, yaml_edit):
    _, doc = render_copy(registry_dir, yaml_edit, "offline",
                         ("stack.yaml", lambda d: d.__setitem__("default_profiles", ["ollama"])))
    replicas = {n: s["deploy"]["replicas"] for n, s in doc["services"].items()}
    assert replicas == {"litellm": 2, "redis": 1, "llama_cpp": 0, "ollama": 1,
                        "vllm-qwen": 1, "vllm-dolphin": 0}
    _, doc = render_copy(registry_dir, yaml_edit, "offline",
                         ("stack.yaml", lambda d: d.__setitem__(
                             "default_profiles", ["llamacpp", "vllm-dolphin"])))
    replicas = {n: s["deploy"]["replicas"] for n, s in doc["services"].items()}
    assert replicas["vllm-qwen"] == 0 and replicas["vllm-dolphin"] == 1
    assert replicas["ollama"] == 0 and replicas["llama_cpp"] == 1


def test_gpu_placement_and_generic_resources_shipped(monkeypatch):
    monkeypatch.chdir(REPO)
    reg = load_registry(CONFIGS["shipped"])
    services = render_swarm(reg)["services"]
    gpu = {n: p.container.gpu.count for n, p in reg.providers.providers.items()
           if p.enabled and p.container and p.container.gpu and p.container.gpu.count > 0}
    assert set(gpu) == {"ollama", "llama_cpp_native", "vllm-qwen", "vllm-dolphin"}
    for name, svc in services.items():
        deploy = svc["deploy"]
        if name in gpu:
            assert deploy["placement"] == {"constraints": ["node.labels.stackctl.gpu == true"]}
            assert deploy["resources"] == {"reservations": {"generic_resources": [
                {"discrete_resource_spec": {"kind": "gpu", "value": gpu[name]}}]}}
        else:
            assert "resources" not in deploy
            assert "constraints" not in deploy.get("placement", {})


def test_gpu_placement_offline_members_without_gpus(registry_dir, yaml_edit):
    """The offline members reserve no GPU (count 0) but stay on the GPU node (exclusive
    group); stack.yaml names the label and the resource kind."""
    _, doc = render_copy(registry_dir, yaml_edit, "offline", (
        "stack.yaml", lambda d: d.__setitem__(
            "deploy", {"gpu_node_label": "lab.gpu", "gpu_resource": "NVIDIA-GPU"})))
    services = doc["services"]
    for name in ("vllm-qwen", "vllm-dolphin"):
        assert services[name]["deploy"]["placement"] == {
            "constraints": ["node.labels.lab.gpu == true"]}
        assert "resources" not in services[name]["deploy"]
        assert services[name]["deploy"]["labels"]["org.stackctl.gpu-group"] == "gpu0"
        # switched by scaling on a Swarm: no sleep mode, no dev-mode endpoints
        assert "--enable-sleep-mode" not in services[name]["command"]
        assert "VLLM_SERVER_DEV_MODE" not in services[name]["environment"]
        assert services[name]["deploy"]["endpoint_mode"] == "dnsrr"
    for name in ("ollama", "llama_cpp"):
        assert "placement" not in services[name]["deploy"]
    _, shipped = render_copy(registry_dir, yaml_edit, "shipped", (
        "stack.yaml", lambda d: d.__setitem__("deploy", {"gpu_resource": "NVIDIA-GPU"})))
    res = shipped["services"]["vllm-qwen"]["deploy"]["resources"]["reservations"]
    assert res["generic_resources"][0]["discrete_resource_spec"]["kind"] == "NVIDIA-GPU"


def test_gateway(registry_dir, yaml_edit):
    reg, doc = render_copy(registry_dir, yaml_edit, "shipped", (
        "stack.yaml", lambda d: (d.__setitem__("deploy", {"gateway_replicas": 3}),
                                 d["gateway"].__setitem__("host_port", 4100))))
    gw = doc["services"]["litellm"]
    assert gw["ports"] == [{"target": 4000, "published": 4100, "protocol": "tcp",
                            "mode": "host"}]
    deploy = gw["deploy"]
    assert deploy["replicas"] == 3
    assert deploy["update_config"]["parallelism"] == 1
    assert deploy["update_config"]["order"] == "start-first"
    assert deploy["update_config"]["failure_action"] == "rollback"
    assert deploy["rollback_config"] == {"parallelism": 1, "order": "start-first"}
    assert deploy["placement"] == {"max_replicas_per_node": 1}
    assert gw["volumes"] == [{"type": "tmpfs", "target": "/tmp/litellm-metrics"}]
    assert gw["command"][:2] == ["--config", "/app/litellm/config.yaml"]
    compose_gw = render_compose(reg)["services"]["litellm"]
    assert gw["healthcheck"] == compose_gw["healthcheck"]


def test_secrets_are_external_and_read_from_files(registry_dir, yaml_edit, secret_env):
    """Master key, Redis password and an enabled cloud provider's key: Swarm secrets named
    `<project>_<var>`, read by the start scripts; none stays in an environment."""
    reg, doc = render_copy(registry_dir, yaml_edit, "shipped", (
        "providers.yaml", lambda d: d["providers"]["openai"].__setitem__("status", "active")))
    want = {"stackctl_litellm_master_key": "LITELLM_MASTER_KEY",
            "stackctl_redis_password": "REDIS_PASSWORD",
            "stackctl_openai_api_key": "OPENAI_API_KEY"}
    assert swarm_secrets(reg) == want
    assert doc["secrets"] == {name: {"external": True} for name in want}
    gw = doc["services"]["litellm"]
    assert gw["secrets"] == list(want)
    script = gw["entrypoint"][2]
    for name, var in want.items():
        assert var not in gw["environment"]
        assert f'{var}="$$(cat /run/secrets/{name})"' in script and f"export {var}\n" in script
    assert gw["entrypoint"][-1] == "litellm" and script.endswith('exec litellm "$$@"\n')
    redis = doc["services"]["redis"]
    assert "environment" not in redis and redis["secrets"] == ["stackctl_redis_password"]
    assert redis["command"][2].startswith(
        'REDIS_PASSWORD="$$(cat /run/secrets/stackctl_redis_password)"')
    assert "export" not in redis["command"][2]  # a shell variable: not in redis' environment
    assert "requirepass $$REDIS_PASSWORD" in redis["command"][2]
    assert "cat /run/secrets/stackctl_redis_password" in redis["healthcheck"]["test"][3]
    assert redis["deploy"]["replicas"] == 1 and "ports" not in redis
    text = swarm_text(reg)
    for value in SECRETS.values():
        assert value not in text


def test_no_cache_no_redis_secret(registry_dir, yaml_edit):
    reg, doc = render_copy(registry_dir, yaml_edit, "offline", (
        "stack.yaml", lambda d: d["cache"].__setitem__("enabled", False)))
    assert "redis" not in doc["services"]
    assert swarm_secrets(reg) == {"stackctl-offline_litellm_master_key": "LITELLM_MASTER_KEY"}
    assert "REDIS_PASSWORD" not in doc["services"]["litellm"]["entrypoint"][2]


@pytest.mark.parametrize("name", NAMES)
def test_images_from_the_deploy_registry(name, registry_dir, yaml_edit):
    reg, plain = render_copy(registry_dir, yaml_edit, name)
    compose = render_compose(reg)["services"]
    for svc_name, svc in plain["services"].items():
        assert svc["image"] == compose[svc_name]["image"]
    _, pushed = render_copy(registry_dir, yaml_edit, name, (
        "stack.yaml", lambda d: d.__setitem__("deploy", {"registry": "registry.lab:5000"})))
    for svc_name, svc in pushed["services"].items():
        assert svc["image"] == "registry.lab:5000/" + compose[svc_name]["image"]


# -- host paths --------------------------------------------------------------------------------

def _host_volumes(d: Any) -> Any:
    """The offline example's llama_cpp with host-path mounts (relative to the config folder,
    as every registry path) and a named volume."""
    d["providers"]["llama_cpp"]["container"]["volumes"] = {
        "./models": "/models", "../data": "/data", "llama-cache": "/cache"}
    return d


def test_host_paths_resolve_from_the_stack_files_folder(registry_dir, yaml_edit):
    """`docker stack deploy` reads a relative bind source from the stack file's folder
    (swarm/), not from the compose file's: each must land on the registry's folder."""
    reg, doc = render_copy(registry_dir, yaml_edit, "offline", ("providers.yaml", _host_volumes))
    stack_dir = (reg.output_dir / SWARM_FILE).parent
    mounts = doc["services"]["llama_cpp"]["volumes"]
    assert mounts[2] == "llama-cache:/cache"  # a named volume is as it was
    resolved = [os.path.normpath(stack_dir / m.rsplit(":", 1)[0]) for m in mounts[:2]]
    assert resolved == [str(reg.config_dir.resolve() / "models"),
                        str(reg.config_dir.resolve().parent / "data")]


def test_docker_stack_config_resolves_host_paths(registry_dir, yaml_edit):
    """The same through the docker CLI's own loader (it makes bind sources absolute)."""
    docker = require_docker()
    reg, _ = render_copy(registry_dir, yaml_edit, "offline", ("providers.yaml", _host_volumes))
    stack = reg.output_dir / SWARM_FILE
    for f in render_all(reg, ("swarm",)):
        f.path.parent.mkdir(parents=True, exist_ok=True)
        f.path.write_text(f.text, encoding="utf-8")
    r = subprocess.run([docker, "stack", "config", "-c", str(stack)], cwd="/",
                       capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 0, r.stderr
    binds = {v["target"]: v["source"] for v in
             load_yaml(r.stdout)["services"]["llama_cpp"]["volumes"] if v["type"] == "bind"}
    assert binds == {"/models": str(reg.config_dir.resolve() / "models"),
                     "/data": str(reg.config_dir.resolve().parent / "data")}
