"""`stackctl generate` and the pure renderers behind it.

Golden files: tests/golden/<registry>/{compose,litellm,prometheus,alertmanager}.yaml|yml hold the
renderer output for
the shipped registry (config/) and the offline example (examples/offline/config/). After an
intended change to a renderer or a registry, regenerate them and review the diff:

    UPDATE_GOLDEN=1 python -m pytest tests/unit/render/test_generate.py -q
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
from tests.fake_secrets import SECRETS  # set while generating (fixture secret_env)
from tests.paths import CONFIGS, GOLDEN, REPO

OUTPUT = {"shipped": Path("compose"), "offline": Path("examples/offline/compose")}
# generated file → its golden; None: no golden (the callbacks are their source modules
# with a header, which a test below checks line for line)
GOLDEN_NAMES = {"compose.yaml": "compose.yaml", "litellm/config.yaml": "litellm.yaml",
                "litellm/stackctl_trace.py": None, "litellm/stackctl_routing.py": None,
                "prometheus/prometheus.yml": "prometheus.yml",
                "alertmanager/alertmanager.yml": "alertmanager.yml"}

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
      command: ["--model", "/models/m.gguf", "--port", "8080", "--metrics"]
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
    # a registry without GPU groups has no routing callback
    texts = {n: (out / n).read_text(encoding="utf-8") for n in GOLDEN_NAMES
             if (out / n).exists()}
    assert set(GOLDEN_NAMES) - set(texts) == {"litellm/stackctl_routing.py"}
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
        if golden_name is None:
            continue
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
    for name, golden in GOLDEN_NAMES.items():
        if golden is not None:
            text = (generated["out"] / name).read_text()
            assert text == (GOLDEN / generated["name"] / golden).read_text(), name
            assert str(generated["cfg"].parent) not in text, name


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
    for name in GOLDEN_NAMES:
        assert f"wrote {rel}/{name}" in r.output
    first = _snapshot(out)
    assert len(first) == len(GOLDEN_NAMES), list(first)  # no stray temporary files

    r = generate(runner, "-C", str(cfg))
    assert r.exit_code == 0, r.output
    assert r.output.splitlines() == [f"unchanged {rel}/{name}" for name in GOLDEN_NAMES]
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
    # only the gateway's config: a config change reaches the gateway without a new container
    assert "1 generated file(s) are stale" in r.output and "compose.yaml" not in r.output


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
    if generated["name"] == "offline":  # no Grafana there (it has no local image)
        assert "grafana" not in generated["compose"]["services"]
        assert "grafana_admin_password" not in generated["compose"]["secrets"]
        return
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
                                  "password": "os.environ/REDIS_PASSWORD",
                                  "namespace": cache_cfg.get("namespace", "stackctl"),
                                  "ttl": cache_cfg.get("ttl", 3600)}
    assert "redis" in generated["compose"]["services"]
    assert generated["litellm"]["general_settings"]["master_key"] == \
        "os.environ/LITELLM_MASTER_KEY"
    gw = generated["compose"]["services"]["litellm"]
    assert gw["depends_on"] == {"redis": {"condition": "service_healthy"}}
    assert "./litellm:/app/litellm:ro" in gw["volumes"]  # the folder: atomic replaces show


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


# -- the cache's password ---------------------------------------------------------------------
# Redis requires AUTH. The password reaches Redis, its healthcheck and the gateway only through
# the containers' environment (`${REDIS_PASSWORD:?}`): never a generated file, never argv.

def _unescaped(script: str) -> str:
    """What the shell runs: Compose turns `$$` into `$`."""
    return script.replace("$$", "$")


def test_redis_requires_the_password_from_the_environment(generated):
    services = generated["compose"]["services"]
    required = "${REDIS_PASSWORD:?set REDIS_PASSWORD in .env}"
    redis = services["redis"]
    assert redis["environment"] == {"REDIS_PASSWORD": required}
    assert services["litellm"]["environment"]["REDIS_PASSWORD"] == required
    assert redis["user"] == "redis"  # the official image drops root only for `redis-server`
    sh, flag, script = redis["command"]
    assert (sh, flag) == ("sh", "-c")
    assert "requirepass $$REDIS_PASSWORD\n" in script  # the config read on stdin
    assert "exec redis-server - " in script and "<<EOF\n" in script
    # the password is never an argument: not to redis-server, not to redis-cli
    for text in (generated["compose_text"], generated["litellm_text"]):
        assert "--requirepass" not in text and "redis-cli -a" not in text
        assert "sk-should-not-appear-redis" not in text
    assert generated["litellm"]["litellm_settings"]["cache_params"]["password"] == \
        "os.environ/REDIS_PASSWORD"


def test_redis_healthcheck_wants_pong(generated):
    test = generated["compose"]["services"]["redis"]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "sh", "-c"]
    assert test[3] == 'test "$$(REDISCLI_AUTH="$$REDIS_PASSWORD" redis-cli ping)" = PONG'


def _fake_tools(folder: Path) -> Path:
    """redis-server / redis-cli stand-ins recording argv (and stdin) like the real ones get."""
    folder.mkdir()
    (folder / "redis-server").write_text(
        '#!/bin/sh\nprintf "%s\\n" "$@" > "$LOG.argv"\ncat > "$LOG.stdin"\n')
    (folder / "redis-cli").write_text(
        '#!/bin/sh\nprintf "%s\\n" "$@" >> "$LOG.argv"\n'
        'if [ -n "$FAKE_REPLY" ]; then echo "$FAKE_REPLY"\n'
        'elif [ "$REDISCLI_AUTH" = "$SERVER_PASSWORD" ]; then echo PONG\n'
        'else echo "NOAUTH Authentication required."; fi\n')
    for tool in folder.iterdir():
        tool.chmod(0o755)
    return folder


def _run_sh(script: str, tools: Path, log: Path, **env: str):
    import subprocess

    base = {"PATH": f"{tools}:/usr/bin:/bin", "LOG": str(log)}
    return subprocess.run(["sh", "-c", _unescaped(script)], env={**base, **env},
                          capture_output=True, text=True, timeout=10)


def test_redis_start_passes_the_password_on_stdin_only(generated, tmp_path):
    script = generated["compose"]["services"]["redis"]["command"][2]
    tools, log = _fake_tools(tmp_path / "bin"), tmp_path / "server"
    password = "sk-Kq3_x-9#%!&*()=+"
    p = _run_sh(script, tools, log, REDIS_PASSWORD=password)
    assert p.returncode == 0, p.stderr
    argv = Path(f"{log}.argv").read_text().splitlines()
    assert argv == ["-", "--save", "", "--appendonly", "no", "--protected-mode", "no"]
    assert Path(f"{log}.stdin").read_text() == f"requirepass {password}\n"


@pytest.mark.parametrize("password", ["", "two words", 'a"quote', "it's", "back\\slash",
                                      "tab\there", "new\nline"])
def test_redis_start_refuses_a_password_redis_would_misparse(generated, tmp_path, password):
    """Redis would fail on such a config line and print it, password included, in its log."""
    script = generated["compose"]["services"]["redis"]["command"][2]
    tools, log = _fake_tools(tmp_path / "bin"), tmp_path / "server"
    p = _run_sh(script, tools, log, REDIS_PASSWORD=password)
    assert p.returncode == 1
    assert p.stderr.strip() == \
        "REDIS_PASSWORD must be set, without blanks, quotes or backslashes"
    assert not Path(f"{log}.argv").exists()  # Redis never started


@pytest.mark.parametrize("env, healthy", [
    ({"REDIS_PASSWORD": "sk-right"}, True),
    ({"REDIS_PASSWORD": "sk-wrong"}, False),  # NOAUTH: redis-cli still exits 0
    ({"REDIS_PASSWORD": "sk-right", "FAKE_REPLY": "LOADING Redis is loading the dataset"}, False),
])
def test_redis_healthcheck_fails_on_error_replies(generated, tmp_path, env, healthy):
    script = generated["compose"]["services"]["redis"]["healthcheck"]["test"][3]
    tools, log = _fake_tools(tmp_path / "bin"), tmp_path / "cli"
    p = _run_sh(script, tools, log, SERVER_PASSWORD="sk-right", **env)
    assert (p.returncode == 0) == healthy, (p.stdout, p.stderr)
    assert Path(f"{log}.argv").read_text().splitlines() == ["ping"]  # no -a PASSWORD


def test_cache_password_env_names_the_variable_everywhere(runner, registry_dir, yaml_edit,
                                                          secret_env, monkeypatch):
    monkeypatch.setenv("CACHE_SECRET", "sk-should-not-appear-cache")
    cfg = registry_dir("offline")
    yaml_edit(cfg / "stack.yaml", lambda d: d["cache"].__setitem__("password_env", "CACHE_SECRET"))
    assert generate(runner, "-C", str(cfg)).exit_code == 0
    out = cfg.parent / "compose"
    compose_text = (out / "compose.yaml").read_text()
    litellm_text = (out / "litellm" / "config.yaml").read_text()
    services = load_yaml(compose_text)["services"]
    required = "${CACHE_SECRET:?set CACHE_SECRET in .env}"
    assert services["redis"]["environment"] == {"CACHE_SECRET": required}
    assert services["litellm"]["environment"]["CACHE_SECRET"] == required
    # the exporter's own variable is named REDIS_PASSWORD; its value comes from CACHE_SECRET
    assert services["redis-exporter"]["environment"]["REDIS_PASSWORD"] == required
    assert "${REDIS_PASSWORD" not in compose_text and "REDIS_PASSWORD" not in litellm_text
    assert "requirepass $$CACHE_SECRET\n" in services["redis"]["command"][2]
    assert "REDISCLI_AUTH=\"$$CACHE_SECRET\"" in services["redis"]["healthcheck"]["test"][3]
    assert load_yaml(litellm_text)["litellm_settings"]["cache_params"]["password"] == \
        "os.environ/CACHE_SECRET"
    assert "sk-should-not-appear-cache" not in compose_text + litellm_text


def test_no_cache_no_cache_password(runner, registry_dir, yaml_edit, secret_env):
    cfg = registry_dir("offline")
    yaml_edit(cfg / "stack.yaml", lambda d: d["cache"].__setitem__("enabled", False))
    assert generate(runner, "-C", str(cfg)).exit_code == 0
    out = cfg.parent / "compose"
    compose_text = (out / "compose.yaml").read_text()
    assert "REDIS_PASSWORD" not in compose_text
    assert "redis" not in load_yaml(compose_text)["services"]
    assert "cache_params" not in load_yaml((out / "litellm" / "config.yaml").read_text())[
        "litellm_settings"]


@pytest.mark.parametrize("enabled", [True, False])
def test_up_creates_the_cache_password_in_env_file(registry_dir, yaml_edit, monkeypatch, enabled):
    from stackctl.cli.common import prepare_files
    from stackctl.store.envfile import read_env

    for name in ("LITELLM_MASTER_KEY", "GRAFANA_ADMIN_PASSWORD", "REDIS_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    cfg = registry_dir("offline")
    yaml_edit(cfg / "stack.yaml", lambda d: d["cache"].__setitem__("enabled", enabled))
    reg = load_registry(cfg)
    said: list[str] = []
    result = prepare_files(reg, said.append)
    env = read_env(reg.env_file)
    assert ("REDIS_PASSWORD" in result["secrets_created"]) == enabled
    assert ("REDIS_PASSWORD" in env) == enabled
    if enabled:
        assert re.fullmatch(r"sk-[A-Za-z0-9_-]{32}", env["REDIS_PASSWORD"])
        assert env["REDIS_PASSWORD"] not in "\n".join(said)  # named, never shown
        assert env["REDIS_PASSWORD"] != env["LITELLM_MASTER_KEY"]


# -- the host-side probe sends the same password ----------------------------------------------

class _FakeRedis:
    """redis.Redis stand-in: a server requiring `server_password`."""

    server_password = "sk-right"
    seen: list[str | None] = []

    def __init__(self, host: str, port: int, password: str | None = None, **_: Any):
        assert host == "127.0.0.1"
        self.password = password

    def ping(self) -> bool:
        import redis

        type(self).seen.append(self.password)
        if self.password is None:
            raise redis.AuthenticationError("Authentication required.")
        if self.password != self.server_password:
            raise redis.AuthenticationError("invalid username-password pair")
        return True

    def close(self) -> None:
        pass


@pytest.mark.parametrize("password, up", [("sk-right", True), ("sk-wrong", False),
                                          (None, True)])  # NOAUTH: up, if nothing to send
def test_redis_ping_is_authenticated(monkeypatch, password, up):
    import redis

    from stackctl.health.probes import redis_ping

    monkeypatch.setattr(redis, "Redis", _FakeRedis)
    assert redis_ping(6379, password) is up


def test_host_checks_read_the_password_from_env_file(registry_dir, monkeypatch):
    import redis

    from stackctl.health.probes import checks

    monkeypatch.delenv("REDIS_PASSWORD", raising=False)
    monkeypatch.setattr(redis, "Redis", _FakeRedis)
    _FakeRedis.seen = []
    reg = load_registry(registry_dir("offline"))
    reg.env_file.write_text("REDIS_PASSWORD=sk-right\n")
    assert checks(reg)["redis"]() is True
    reg.env_file.write_text("REDIS_PASSWORD=sk-wrong\n")
    assert checks(reg)["redis"]() is False  # a refused password is not "up"
    assert _FakeRedis.seen == ["sk-right", "sk-wrong"]


# -- the gateway's request-log callback (issue 10) -------------------------------------------

def test_request_log_callback_is_generated_beside_the_config(generated):
    """`litellm_settings.callbacks` names stackctl_trace.callback (and, with GPU groups, the
    routing callback); the proxy imports them from the config's own folder (/app/litellm,
    mounted whole), where `generate` writes them."""
    from stackctl.render.callbacks import module_text

    assert generated["litellm"]["litellm_settings"]["callbacks"] == \
        ["prometheus", "stackctl_trace.callback", "stackctl_routing.callback"]
    for module, source in (("stackctl_trace", "trace_callback"),
                           ("stackctl_routing", "routing_callback")):
        text = (generated["out"] / "litellm" / f"{module}.py").read_text(encoding="utf-8")
        original = (REPO / "stackctl" / "incontainer" / f"{source}.py").read_text(encoding="utf-8")
        assert text.endswith(original) and text.startswith("# GENERATED by stackctl")
        assert text == module_text(f"{source}.py")
    gw = generated["compose"]["services"]["litellm"]
    assert "./litellm:/app/litellm:ro" in gw["volumes"]
    assert gw["command"][:2] == ["--config", "/app/litellm/config.yaml"]




def test_held_streams_get_keep_alives_only_where_requests_can_be_held(registry_dir, yaml_edit):
    """A stream held for a member being loaded is opened after 3 s and gets `: ping`
    comments (LiteLLM's own keep-alive); without a hold or on-demand group, nothing new."""
    from stackctl.render.litellm import render_litellm

    cfg = registry_dir("offline")
    held = render_litellm(load_registry(cfg))["litellm_settings"]
    assert held["sse_keepalive_ping_interval_seconds"] == 3  # the example holds 10 s

    def no_hold(data):  # type: ignore[no-untyped-def]
        data["gpu_groups"]["gpu0"]["hold"] = 0
    yaml_edit(cfg / "stack.yaml", no_hold)
    assert "sse_keepalive_ping_interval_seconds" not in render_litellm(
        load_registry(cfg))["litellm_settings"]

    def on_demand(data):  # type: ignore[no-untyped-def]
        data["gpu_groups"]["gpu0"]["on_demand"] = True
    yaml_edit(cfg / "stack.yaml", on_demand)
    assert render_litellm(load_registry(cfg))["litellm_settings"][
        "sse_keepalive_ping_interval_seconds"] == 3
