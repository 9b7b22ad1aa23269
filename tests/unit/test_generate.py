"""`stackctl generate` and the pure renderers behind it.

Golden files: tests/golden/<registry>/{compose.yaml,litellm.yaml} hold the renderer output for
the shipped registry (config/) and the offline example (examples/offline/config/). After an
intended change to a renderer or a registry, regenerate them and review the diff:

    UPDATE_GOLDEN=1 python -m pytest tests/unit/test_generate.py -q
    git diff tests/golden

The committed compose/ and examples/offline/compose/ must equal what `generate` writes:
`test_committed_generated_files_are_up_to_date` is the CI staleness check (fix a failure with
`stackctl generate` and `stackctl generate -C examples/offline/config`).

The renderer assertions below read the generated YAML back as data.
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from ruamel.yaml import YAML

from stackctl.cli import cli
from stackctl.registry.load import load_registry
from stackctl.render.files import render_all

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "golden"
CONFIGS = {"shipped": REPO / "config", "offline": REPO / "examples" / "offline" / "config"}
OUTPUT = {"shipped": Path("compose"), "offline": Path("examples/offline/compose")}
GOLDEN_NAMES = {"compose.yaml": "compose.yaml", "litellm/config.yaml": "litellm.yaml"}

SECRETS = {  # set while generating: none of these values may reach a generated file
    "LITELLM_MASTER_KEY": "sk-should-not-appear-master",
    "GRAFANA_ADMIN_PASSWORD": "grafana-should-not-appear",
    "HF_TOKEN": "hf_should_not_appear",
    "OPENAI_API_KEY": "sk-should-not-appear-openai",
    "OLLAMA_API_KEY": "ollama-should-not-appear",
    "ANTHROPIC_API_KEY": "sk-ant-should-not-appear",
}

# A registry with a load-balanced group, an alias, a default chain and a cloud provider.
LB_PROVIDERS = """\
providers:
  ollama:
    type: ollama
    base_url: http://127.0.0.1:11434
    models:
      - name: "llama3.1:latest"
    container:
      image: ollama/ollama:0.12.10
      port: 11434
      gpu: {count: 1}
      health: {via: ollama-cli}
  llama_cpp:
    type: llama_cpp
    base_url: http://127.0.0.1:8080
    models:
      - name: llama-gguf
    container:
      image: ghcr.io/ggml-org/llama.cpp:server-b6990
      command: ["--model", "/models/m.gguf", "--port", "8080"]
      port: 8080
      health: {endpoint: /health, via: curl}
  openai:
    type: openai
    base_url: https://api.openai.com/v1
    requires_api_key: true
    env_var: OPENAI_API_KEY
    models: [gpt-4o-mini]
"""
LB_MAPPINGS = """\
exact_matches:
  "llama3.1:latest":
    provider: ollama
    aliases: [general]
  llama-gguf:
    provider: llama_cpp
  gpt-4o-mini:
    provider: openai
load_balancing:
  chat:
    providers:
      - provider: ollama
        weight: 0.7
        preferred_model: "llama3.1:latest"
      - provider: llama_cpp
        weight: 0.3
fallback_chains:
  chat:
    chain: [gpt-4o-mini]
  default:
    chain: ["llama3.1:latest"]
"""
LB_STACK = """\
project: lbtest
cache:
  namespace: lbtest
  ttl: 120
"""
LB_FILES = {"providers.yaml": LB_PROVIDERS, "model-mappings.yaml": LB_MAPPINGS,
            "stack.yaml": LB_STACK}


def load_yaml(text: str) -> Any:
    return YAML(typ="safe", pure=True).load(text)


def generate(runner, *args: str):
    return runner.invoke(cli, ["generate", *args], catch_exceptions=False)


@pytest.fixture
def secret_env(monkeypatch):
    for k, v in SECRETS.items():
        monkeypatch.setenv(k, v)


@pytest.fixture(params=["shipped", "offline"])
def generated(request, runner, registry_dir, secret_env) -> dict[str, Any]:
    """Run `stackctl generate` on a copy of a registry; the files as text and as data."""
    cfg = registry_dir(request.param)
    r = generate(runner, "-C", str(cfg))
    assert r.exit_code == 0, r.output
    out = cfg.parent / "compose"
    compose_text = (out / "compose.yaml").read_text(encoding="utf-8")
    litellm_text = (out / "litellm" / "config.yaml").read_text(encoding="utf-8")
    return {"name": request.param, "cfg": cfg, "out": out,
            "compose_text": compose_text, "litellm_text": litellm_text,
            "compose": load_yaml(compose_text), "litellm": load_yaml(litellm_text),
            "providers": load_yaml((cfg / "providers.yaml").read_text())["providers"],
            "mappings": load_yaml((cfg / "model-mappings.yaml").read_text()),
            "stack": load_yaml((cfg / "stack.yaml").read_text()) or {}}


@pytest.fixture
def lb(runner, registry_dir, secret_env) -> dict[str, Any]:
    cfg = registry_dir(files=LB_FILES)
    r = runner.invoke(cli, ["validate", "-C", str(cfg), "--strict"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    r = generate(runner, "-C", str(cfg))
    assert r.exit_code == 0, r.output
    out = cfg.parent / "compose"
    texts = {n: (out / n).read_text(encoding="utf-8") for n in GOLDEN_NAMES}
    return {"texts": texts, "compose": load_yaml(texts["compose.yaml"]),
            "litellm": load_yaml(texts["litellm/config.yaml"])}


# -- golden files ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["shipped", "offline"])
def test_renderer_matches_golden(name, monkeypatch):
    monkeypatch.chdir(REPO)
    files = {f.path.relative_to(load_registry(CONFIGS[name]).output_dir).as_posix(): f.text
             for f in render_all(load_registry(CONFIGS[name]))}
    assert set(files) == set(GOLDEN_NAMES)
    for generated_name, golden_name in GOLDEN_NAMES.items():
        golden = GOLDEN / name / golden_name
        if os.environ.get("UPDATE_GOLDEN") == "1":
            golden.parent.mkdir(parents=True, exist_ok=True)
            golden.write_text(files[generated_name], encoding="utf-8")
            continue
        assert golden.exists(), f"{golden} missing: run with UPDATE_GOLDEN=1"
        expected = golden.read_text(encoding="utf-8")
        diff = "".join(difflib.unified_diff(
            expected.splitlines(keepends=True), files[generated_name].splitlines(keepends=True),
            str(golden.relative_to(REPO)), "renderer output"))
        assert files[generated_name] == expected, \
            f"renderer output differs from the golden file (UPDATE_GOLDEN=1 to accept):\n{diff}"


def test_generated_files_in_tmp_equal_golden(generated):
    """Generating from a copy elsewhere gives the same bytes: no absolute paths leak in."""
    assert generated["compose_text"] == (GOLDEN / generated["name"] / "compose.yaml").read_text()
    assert generated["litellm_text"] == (GOLDEN / generated["name"] / "litellm.yaml").read_text()
    assert str(generated["cfg"].parent) not in generated["compose_text"]


# -- the generate command -------------------------------------------------------------------

def _snapshot(folder: Path) -> dict[Path, tuple[bytes, int]]:
    return {p: (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("name", ["shipped", "offline"])
def test_generate_is_byte_stable(runner, registry_dir, name):
    cfg = registry_dir(name)
    out = cfg.parent / "compose"
    r = generate(runner, "-C", str(cfg))
    assert r.exit_code == 0, r.output
    rel = out.relative_to(Path.cwd()).as_posix()
    assert f"wrote {rel}/compose.yaml" in r.output
    assert f"wrote {rel}/litellm/config.yaml" in r.output
    first = _snapshot(out)
    assert len(first) == 2, list(first)  # no stray temporary files

    r = generate(runner, "-C", str(cfg))
    assert r.exit_code == 0, r.output
    assert r.output.splitlines() == [f"unchanged {rel}/compose.yaml",
                                     f"unchanged {rel}/litellm/config.yaml"]
    second = _snapshot(out)
    assert second == first  # same bytes, and not even rewritten


def test_check_fresh_then_stale(runner, registry_dir):
    cfg = registry_dir("shipped")
    compose = cfg.parent / "compose" / "compose.yaml"
    r = generate(runner, "--check")
    assert r.exit_code == 1, r.output  # nothing generated yet
    assert not compose.exists()

    assert generate(runner).exit_code == 0
    r = generate(runner, "--check")
    assert r.exit_code == 0, r.output
    assert "generated files are up to date" in r.output

    text = compose.read_text()
    edited = text.replace("    restart: unless-stopped\n", "    restart: always\n", 1)
    assert edited != text
    compose.write_text(edited)
    r = generate(runner, "--check")
    assert r.exit_code == 1, r.output
    assert "--- compose/compose.yaml (on disk)\n" in r.output
    assert "+++ compose/compose.yaml (from registry)\n" in r.output
    assert re.search(r"^@@ -\d+,\d+ \+\d+,\d+ @@$", r.output, re.MULTILINE), r.output
    assert "\n-    restart: always\n" in r.output
    assert "\n+    restart: unless-stopped\n" in r.output
    assert "litellm/config.yaml" not in r.output.split("generated file(s) are stale")[0]
    assert "1 generated file(s) are stale: run `stackctl generate -C config`" in r.output
    assert compose.read_text() == edited  # --check writes nothing
    assert "Traceback" not in r.output


def test_check_after_registry_edit(runner, registry_dir, yaml_edit):
    cfg = registry_dir("shipped")
    assert generate(runner).exit_code == 0
    yaml_edit(cfg / "stack.yaml", lambda d: d["cache"].__setitem__("ttl", 600))
    r = generate(runner, "--check")
    assert r.exit_code == 1, r.output
    assert "-    ttl: 3600\n" in r.output and "+    ttl: 600\n" in r.output
    assert "2 generated file(s) are stale" in r.output


@pytest.mark.parametrize("name", ["shipped", "offline"])
def test_committed_generated_files_are_up_to_date(runner, monkeypatch, name):
    """CI staleness check: the committed compose folders equal the registry's output."""
    monkeypatch.chdir(REPO)
    r = generate(runner, "--check", "-C", str(CONFIGS[name].relative_to(REPO)))
    assert r.exit_code == 0, r.output
    assert "generated files are up to date" in r.output
    for generated_name in GOLDEN_NAMES:
        assert (REPO / OUTPUT[name] / generated_name).is_file()


def test_generate_refuses_a_broken_registry(runner, registry_dir, yaml_edit):
    cfg = registry_dir("shipped")
    yaml_edit(cfg / "model-mappings.yaml",
              lambda d: d["exact_matches"]["llama3.1:latest"].__setitem__("provider", "olama"))
    r = generate(runner)
    assert r.exit_code == 1, r.output
    assert re.search(r"the registry has \d+ error\(s\):", r.output), r.output
    assert "config/model-mappings.yaml:" in r.output and "unknown provider 'olama'" in r.output
    assert "run `stackctl validate` for details" in r.output
    assert not (cfg.parent / "compose").exists()
    assert "Traceback" not in r.output


# -- renderer assertions (as data) ----------------------------------------------------------

def test_every_service_has_a_healthcheck(generated):
    for name, svc in generated["compose"]["services"].items():
        hc = svc.get("healthcheck")
        assert hc, f"service {name} has no healthcheck"
        assert hc["test"][0] == "CMD" and len(hc["test"]) > 1, (name, hc)
        for k in ("interval", "timeout", "start_period"):
            assert re.fullmatch(r"\d+(\.\d+)?s", hc[k]), (name, k, hc[k])
        assert hc["retries"] >= 1


def test_every_port_is_published_on_loopback(generated):
    published = 0
    for name, svc in generated["compose"]["services"].items():
        for port in svc.get("ports", []):
            assert isinstance(port, str) and port.startswith("127.0.0.1:"), (name, port)
            assert re.fullmatch(r"127\.0\.0\.1:\d+:\d+", port), (name, port)
            published += 1
    assert published >= 5


def test_host_ports_are_distinct(generated):
    ports = [p.split(":")[1] for s in generated["compose"]["services"].values()
             for p in s.get("ports", [])]
    assert len(ports) == len(set(ports)), ports


def test_gpu_reservations(generated):
    services = generated["compose"]["services"]
    for name, prov in generated["providers"].items():
        gpu = (prov.get("container") or {}).get("gpu")
        if prov.get("status", "active") != "active" or not prov.get("container"):
            assert name not in services
            continue
        svc = services[name]
        if gpu and gpu.get("count", 1) > 0:
            devices = svc["deploy"]["resources"]["reservations"]["devices"]
            assert devices == [{"driver": "nvidia", "count": gpu.get("count", 1),
                                "capabilities": ["gpu"]}], name
        else:
            assert "deploy" not in svc, name
    with_gpu = sorted(n for n, s in services.items() if "deploy" in s)
    if generated["name"] == "shipped":
        assert with_gpu == ["llama_cpp_native", "ollama", "vllm-dolphin", "vllm-qwen"]
    else:
        assert with_gpu == []  # the offline stubs must start on a machine without a GPU


def test_exclusive_group_members_have_their_own_profiles(generated):
    services = generated["compose"]["services"]
    members = {n: s for n, s in services.items()
               if s.get("labels", {}).get("org.stackctl.gpu-group") == "gpu0"}
    assert sorted(members) == ["vllm-dolphin", "vllm-qwen"]
    assert members["vllm-qwen"]["profiles"] == ["vllm-qwen"]
    assert members["vllm-dolphin"]["profiles"] == ["vllm-dolphin"]
    for core in ("litellm", "redis"):
        assert "profiles" not in services[core]  # always started


def test_no_secret_value_in_generated_text(generated):
    for text in (generated["compose_text"], generated["litellm_text"]):
        for var, value in SECRETS.items():
            assert value not in text, var
    env = generated["compose"]["services"]["litellm"]["environment"]
    assert env["LITELLM_MASTER_KEY"].startswith("${LITELLM_MASTER_KEY:?")
    grafana = generated["compose"]["services"]["grafana"]["environment"]
    assert grafana["GF_SECURITY_ADMIN_PASSWORD__FILE"] == "/run/secrets/grafana_admin_password"
    assert generated["compose"]["secrets"]["grafana_admin_password"] == \
        {"environment": "GRAFANA_ADMIN_PASSWORD"}


def test_deployment_prefixes_and_api_bases(generated):
    providers, services = generated["providers"], generated["compose"]["services"]
    seen = set()
    for dep in generated["litellm"]["model_list"]:
        params, prov_name = dep["litellm_params"], dep["model_info"]["provider"]
        ptype = providers[prov_name]["type"]
        seen.add(ptype)
        base = urlparse(params["api_base"])
        assert base.hostname in services, f"{params['api_base']} names no compose service"
        port = providers[prov_name]["container"]["port"]
        assert base.port == port
        if ptype == "ollama":
            assert params["model"].startswith("ollama_chat/"), dep
            assert base.path == "", dep
        elif ptype == "vllm":
            assert params["model"].startswith("hosted_vllm/"), dep
            assert base.path == "/v1", dep
        elif ptype == "llama_cpp":
            assert params["model"].startswith("openai/"), dep
            assert base.path == "/v1", dep
    assert {"ollama", "vllm", "llama_cpp"} <= seen
    ids = [d["model_info"]["id"] for d in generated["litellm"]["model_list"]]
    assert len(ids) == len(set(ids))


def test_vllm_backend_is_the_served_model_name(generated):
    """The vLLM deployment asks for the --served-model-name the container is started with."""
    services = generated["compose"]["services"]
    for dep in generated["litellm"]["model_list"]:
        if dep["litellm_params"]["model"].startswith("hosted_vllm/"):
            svc = services[dep["model_info"]["provider"]]
            backend = dep["litellm_params"]["model"].removeprefix("hosted_vllm/")
            cmd = svc.get("command") or []
            served = cmd[cmd.index("--served-model-name") + 1] if "--served-model-name" in cmd \
                else svc["environment"]["STUB_MODELS"]
            assert backend == served


def test_fallbacks_come_from_the_chains(generated):
    chains = {m: c["chain"] for m, c in generated["mappings"]["fallback_chains"].items()
              if m != "default"}
    assert chains
    fallbacks = generated["litellm"]["router_settings"]["fallbacks"]
    assert fallbacks == [{m: chain} for m, chain in chains.items()]


def test_cache_and_master_key(generated):
    ls = generated["litellm"]["litellm_settings"]
    cache_cfg = generated["stack"].get("cache", {})
    assert ls["cache"] is True
    assert ls["cache_params"] == {"type": "redis", "host": "redis", "port": 6379,
                                  "namespace": cache_cfg.get("namespace", "stackctl"),
                                  "ttl": cache_cfg.get("ttl", 3600)}
    assert "redis" in generated["compose"]["services"]
    assert generated["litellm"]["general_settings"]["master_key"] == \
        "os.environ/LITELLM_MASTER_KEY"
    gw = generated["compose"]["services"]["litellm"]
    assert gw["depends_on"] == {"redis": {"condition": "service_healthy"}}
    assert "./litellm/config.yaml:/app/config.yaml:ro" in gw["volumes"]


def test_load_balancing_weights(lb):
    deps = [d for d in lb["litellm"]["model_list"] if d["model_name"] == "chat"]
    assert [(d["model_info"]["provider"], d["litellm_params"]["model"],
             d["litellm_params"]["weight"]) for d in deps] == [
        ("ollama", "ollama_chat/llama3.1:latest", 0.7),
        ("llama_cpp", "openai/llama-gguf", 0.3)]
    others = [d for d in lb["litellm"]["model_list"] if d["model_name"] != "chat"]
    assert all("weight" not in d["litellm_params"] for d in others)
    rs = lb["litellm"]["router_settings"]
    assert rs["routing_strategy"] == "simple-shuffle"  # the strategy that honours weights
    assert rs["fallbacks"] == [{"chat": ["gpt-4o-mini"]}]
    assert rs["default_fallbacks"] == ["llama3.1:latest"]
    assert rs["model_group_alias"] == {"general": "llama3.1:latest"}
    ls = lb["litellm"]["litellm_settings"]
    assert ls["cache_params"]["namespace"] == "lbtest" and ls["cache_params"]["ttl"] == 120


def test_cloud_provider_key_is_an_env_reference(lb):
    (cloud,) = [d for d in lb["litellm"]["model_list"] if d["model_name"] == "gpt-4o-mini"]
    assert cloud["litellm_params"] == {"model": "openai/gpt-4o-mini",
                                       "api_base": "https://api.openai.com/v1",
                                       "api_key": "os.environ/OPENAI_API_KEY"}
    env = lb["compose"]["services"]["litellm"]["environment"]
    assert env["OPENAI_API_KEY"] == "${OPENAI_API_KEY:?set OPENAI_API_KEY in .env}"
    assert "openai" not in lb["compose"]["services"]  # a cloud provider runs no container
    for text in lb["texts"].values():
        for value in SECRETS.values():
            assert value not in text


def _python_probe_expectations(compose: dict) -> list[tuple[str, str, str]]:
    out = []
    for name, svc in compose["services"].items():
        test = svc["healthcheck"]["test"]
        if test[:3] == ["CMD", "python3", "-c"]:
            m = re.search(r"urlopen\('([^']+)'.*sys\.exit\(0 if '([^']+)'\.encode\(\) in b",
                          test[3])
            if m:
                out.append((name, urlparse(m.group(1)).path, m.group(2)))
    return out


def test_probe_expects_model_name_only_on_model_listing_endpoints():
    """/health and /api/version never name the model: expecting it there means never healthy."""
    compose = load_yaml(render_all(load_registry(CONFIGS["offline"]))[0].text)
    checks = _python_probe_expectations(compose)
    assert ("vllm-qwen", "/v1/models", "qwen-coder-vllm") in checks
    wrong = [(n, path, expect) for n, path, expect in checks
             if path not in ("/v1/models", "/api/tags")]
    assert wrong == []
