"""`stackctl validate`: clean registries pass, every broken registry fails with file:line:path.

Each broken registry is a copy of the shipped one (or the offline example) with one small
edit, applied with ruamel round-trip so the rest of the file keeps its layout. The expected
line number is found independently of stackctl: by searching the edited file's text for the
offending key (`anchors`: regexes matched in order, each after the line the previous matched).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from stackctl.cli import cli
from tests.cli_checks import assert_no_traceback, validate
from tests.paths import FIXTURES, REPO
from tests.registry_edits import both, item, key, line_of, rename, set_in

PROBLEM_KEYS = {"file", "line", "column", "path", "message", "hint"}


# -- helpers --------------------------------------------------------------------------------

def lb_group(*members: tuple[str, float]) -> Callable[[Any], None]:
    def edit(data: Any) -> None:
        data["load_balancing"] = {"lb-chat": {"providers": [
            {"provider": p, "weight": w} for p, w in members]}}

    return edit


# -- clean registries -----------------------------------------------------------------------

@pytest.mark.parametrize("name", ["shipped", "offline"])
def test_registry_validates_clean(runner, registry_dir, name):
    cfg = registry_dir(name)
    r = validate(runner, "-C", str(cfg), "--strict")
    assert r.exit_code == 0, r.output
    assert ": ok: 0 error(s), 0 warning(s)" in r.output
    assert_no_traceback(r.output)


def test_repo_registries_validate_in_place(runner):
    """The committed files themselves (not copies), from the repo root as a user runs it."""
    for cfg in ("config", "examples/offline/config"):
        r = validate(runner, "-C", str(REPO / cfg))
        assert r.exit_code == 0, r.output


def test_default_config_dir_and_env_var(runner, registry_dir, monkeypatch):
    registry_dir("shipped")  # cwd = tmp, ./config exists
    r = validate(runner)
    assert r.exit_code == 0, r.output
    assert r.output.strip().startswith("config: ok")
    offline = registry_dir("offline")
    monkeypatch.setenv("STACKCTL_CONFIG_DIR", str(offline))
    r = validate(runner)
    assert r.exit_code == 0, r.output
    assert "examples/offline/config: ok" in r.output


# -- --json and --strict --------------------------------------------------------------------

def test_json_report_clean(runner, registry_dir):
    registry_dir("shipped")
    r = validate(runner, "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert list(doc) == ["ok", "errors", "warnings", "summary"]
    assert doc["ok"] is True and doc["errors"] == [] and doc["warnings"] == []
    assert doc["summary"] == {"providers": 7, "models": 6, "notes": []}  # restart mode only


def test_json_report_schema_with_problems(runner, registry_dir, yaml_edit):
    cfg = registry_dir("shipped")
    yaml_edit(cfg / "model-mappings.yaml", both(
        set_in("exact_matches", "llama3.1:latest", "provider", "olama"),
        set_in("capabilities", "chat", "routing_strategy", "usage_based")))
    r = validate(runner, "--json")
    assert r.exit_code == 1, r.output
    doc = json.loads(r.stdout)
    assert list(doc) == ["ok", "errors", "warnings", "summary"]
    assert doc["ok"] is False
    assert doc["errors"] and doc["warnings"]
    for problem in doc["errors"] + doc["warnings"]:
        assert set(problem) == PROBLEM_KEYS, problem
        assert isinstance(problem["file"], str) and isinstance(problem["message"], str)
        assert isinstance(problem["line"], int) and isinstance(problem["column"], int)
        assert isinstance(problem["path"], str)
        assert problem["hint"] is None or isinstance(problem["hint"], str)
    err = doc["errors"][0]
    assert err["file"] == "config/model-mappings.yaml"
    assert err["path"] == "exact_matches.llama3.1:latest.provider"
    assert err["line"] == line_of(cfg / "model-mappings.yaml", key("llama3.1:latest"),
                                  key("provider"))
    assert err["column"] == 5
    assert "did you mean 'ollama'" in err["hint"]
    assert set(doc["summary"]) == {"providers", "models", "notes"}


def test_json_report_when_registry_cannot_load(runner, registry_dir):
    cfg = registry_dir("shipped")
    (cfg / "providers.yaml").unlink()
    r = validate(runner, "--json")
    assert r.exit_code == 1, r.output
    doc = json.loads(r.stdout)
    assert doc["ok"] is False and doc["summary"] == {}
    assert [set(p) for p in doc["errors"]] == [PROBLEM_KEYS]
    assert doc["errors"][0]["file"] == "config/providers.yaml"


def test_strict_turns_warnings_into_failure(runner, registry_dir, yaml_edit):
    cfg = registry_dir("shipped")
    yaml_edit(cfg / "model-mappings.yaml",
              set_in("capabilities", "code", "routing_strategy", "complexity_based"))
    r = validate(runner)
    assert r.exit_code == 0, r.output
    assert "0 error(s), 1 warning(s)" in r.output
    assert "capabilities.code.routing_strategy" in r.output
    r = validate(runner, "--strict")
    assert r.exit_code == 1, r.output
    assert "failed: 0 error(s), 1 warning(s)" in r.output
    r = validate(runner, "--strict", "--json")
    assert r.exit_code == 1, r.output
    assert json.loads(r.stdout)["ok"] is False


# -- broken registries ----------------------------------------------------------------------

@dataclass
class Broken:
    id: str
    file: str
    edit: Callable[[Any], Any] | None  # ruamel edit of `file`
    anchors: tuple[str, ...]           # locate the offending line in the edited file
    path: str                          # key path in the message
    expect: tuple[str, ...]            # message and hint substrings
    registry: str = "shipped"
    text_edit: Callable[[str], str] | None = None
    forbid: tuple[str, ...] = field(default_factory=tuple)  # must not appear in the output
    at: str | None = None  # file the problem is reported in, when not the edited one


BROKEN = [
    Broken("unknown-provider-did-you-mean", "model-mappings.yaml",
           set_in("exact_matches", "llama3.1:latest", "provider", "olama"),
           (key("llama3.1:latest"), key("provider")),
           "exact_matches.llama3.1:latest.provider",
           ("unknown provider 'olama'", "did you mean 'ollama'?")),
    Broken("typo-provider-key", "providers.yaml",
           rename("providers", "llama_cpp_native", "base_url", "base_ur"),
           (key("llama_cpp_native"), key("base_ur")),
           "providers.llama_cpp_native.base_ur",
           ("unknown key 'base_ur'", "did you mean 'base_url'?")),
    Broken("bad-type-literal", "providers.yaml",
           set_in("providers", "ollama", "type", "olama"),
           (key("ollama"), key("type")), "providers.ollama.type",
           ("'olama' is not allowed", "did you mean 'ollama'?")),
    Broken("disabled-target", "providers.yaml",
           set_in("providers", "vllm-dolphin", "status", "disabled"),
           (key("exact_matches"), key("dolphin-uncensored-vllm"), key("provider")),
           "exact_matches.dolphin-uncensored-vllm.provider",
           ("provider 'vllm-dolphin' is disabled",
            "set providers.vllm-dolphin.status: active in providers.yaml"),
           at="model-mappings.yaml"),
    Broken("backend-model-not-served", "model-mappings.yaml",
           set_in("exact_matches", "qwen-coder-vllm", "backend_model", "qwen-coder-vlm"),
           (key("qwen-coder-vllm"), key("backend_model")),
           "exact_matches.qwen-coder-vllm.backend_model",
           ("provider 'vllm-qwen' does not serve 'qwen-coder-vlm'",
            "did you mean 'qwen-coder-vllm'?")),
    Broken("fallback-cycle", "model-mappings.yaml",
           set_in("fallback_chains", "llama-cpp-native", {"chain": ["llama3.1:latest"]}),
           (key("fallback_chains"), key("llama-cpp-native")),
           "fallback_chains.llama-cpp-native",
           ("fallback cycle: llama-cpp-native → llama3.1:latest → llama-cpp-native",
            "a chain must end at a model with no further fallback")),
    Broken("fallback-self-reference", "model-mappings.yaml",
           set_in("fallback_chains", "llama3.1:latest", "chain", ["llama3.1:latest"]),
           (key("fallback_chains"), key("llama3.1:latest"), item("llama3.1:latest")),
           "fallback_chains.llama3.1:latest.chain[0]",
           ("'llama3.1:latest' falls back to itself",)),
    Broken("fallback-duplicate", "model-mappings.yaml",
           set_in("fallback_chains", "llama3.1:latest", "chain",
                  ["llama-cpp-native", "qwen2.5-coder:7b", "llama-cpp-native"]),
           (key("fallback_chains"), key("llama3.1:latest"), key("chain")),
           "fallback_chains.llama3.1:latest.chain",
           ("'llama-cpp-native' appears 2 times",)),
    Broken("fallback-unknown-model", "model-mappings.yaml",
           set_in("fallback_chains", "llama3.1:latest", "chain", ["llama-cpp-natve"]),
           (key("fallback_chains"), key("llama3.1:latest"), item("llama-cpp-natve")),
           "fallback_chains.llama3.1:latest.chain[0]",
           ("unknown model 'llama-cpp-natve'", "did you mean 'llama-cpp-native'?")),
    Broken("provider-used-as-model", "model-mappings.yaml",
           set_in("fallback_chains", "qwen-coder-vllm", "chain", ["qwen2.5-coder:7b", "ollama"]),
           (key("fallback_chains"), key("qwen-coder-vllm"), item("ollama")),
           "fallback_chains.qwen-coder-vllm.chain[1]",
           ("'ollama' is a provider, not a model",
            "did you mean one of its models: llama3.1:latest, qwen2.5-coder:7b")),
    Broken("lb-weights-do-not-sum-to-1", "model-mappings.yaml",
           lb_group(("ollama", 0.7), ("llama_cpp_native", 0.5)),
           (key("load_balancing"), key("lb-chat"), key("providers")),
           "load_balancing.lb-chat.providers",
           ("weights sum to 1.2, not 1", "scale them so they add up to 1")),
    Broken("lb-negative-weight", "model-mappings.yaml",
           lb_group(("ollama", 1.2), ("llama_cpp_native", -0.2)),
           (key("load_balancing"), key("lb-chat"), key("providers"), key("weight") + r"\s*-0\.2"),
           "load_balancing.lb-chat.providers[1].weight",
           ("weight must be positive, got -0.2",), forbid=("weights sum to",)),
    Broken("pattern-does-not-compile", "model-mappings.yaml",
           set_in("patterns", [{"pattern": "^qwen(", "provider": "ollama"}]),
           (key("patterns"), key("pattern") + r".*\^qwen\("),
           "patterns[0].pattern",
           ("pattern does not compile: missing ), unterminated subpattern",)),
    Broken("duplicate-host-port-providers", "providers.yaml",
           set_in("providers", "vllm-dolphin", "base_url", "http://127.0.0.1:8001"),
           (key("vllm-dolphin"), key("base_url")),
           "providers.vllm-dolphin.base_url",
           ("host port 8001 is already used by provider 'vllm-qwen'",
            "give each service its own host port")),
    Broken("duplicate-host-port-stack", "stack.yaml",
           set_in("cache", "host_port", 4000),
           (key("cache"), key("host_port")), "cache.host_port",
           ("host port 4000 is already used by the gateway",
            "give each service its own host port")),
    Broken("gpu-group-members-share-profile", "providers.yaml",
           set_in("providers", "vllm-dolphin", "container", "profile", "vllm-qwen"),
           (key("vllm-dolphin"), key("container"), key("profile")),
           "providers.vllm-dolphin.container.profile",
           ("profile 'vllm-qwen' would start vllm-qwen and vllm-dolphin together",
            "exclusive GPU group 'gpu0'", "give each member its own profile")),
    Broken("default-profiles-start-two-gpu-members", "stack.yaml",
           set_in("default_profiles", ["ollama", "vllm-qwen", "vllm-dolphin"]),
           (key("default_profiles"),), "default_profiles",
           ("default profiles start vllm-qwen and vllm-dolphin together",
            "exclusive GPU group 'gpu0'", "keep one; `stackctl switch` moves between them")),
    Broken("default-profiles-offline", "stack.yaml",
           set_in("default_profiles", ["llamacpp", "vllm-dolphin", "vllm-qwen"]),
           (key("default_profiles"),), "default_profiles",
           ("default profiles start vllm-qwen and vllm-dolphin together",),
           registry="offline"),
    Broken("unknown-default-profile", "stack.yaml",
           set_in("default_profiles", ["ollama", "llama-cpp"]),
           (key("default_profiles"), item("llama-cpp")), "default_profiles[1]",
           ("unknown profile 'llama-cpp'", "did you mean 'llamacpp'")),
    Broken("inline-secret-in-container-env", "providers.yaml",
           set_in("providers", "vllm-qwen", "container", "env", "OPENAI_API_KEY", "sk-123"),
           (key("vllm-qwen"), key("container"), key("env"), key("OPENAI_API_KEY")),
           "providers.vllm-qwen.container.env.OPENAI_API_KEY",
           ("secret 'OPENAI_API_KEY' is written inline",
            "write OPENAI_API_KEY: ${OPENAI_API_KEY} and put the value in .env"),
           forbid=("sk-123",)),
    Broken("image-latest", "providers.yaml",
           set_in("providers", "ollama", "container", "image", "ollama/ollama:latest"),
           (key("ollama"), key("container"), key("image")),
           "providers.ollama.container.image",
           ("image 'ollama/ollama:latest' is not pinned", "ollama/ollama:1.2.3 (not :latest)")),
    Broken("image-untagged", "providers.yaml",
           set_in("providers", "vllm-qwen", "container", "image", "vllm/vllm-openai"),
           (key("vllm-qwen"), key("container"), key("image")),
           "providers.vllm-qwen.container.image",
           ("image 'vllm/vllm-openai' is not pinned",)),
    Broken("image-untagged-registry-port", "providers.yaml",
           set_in("providers", "llama_cpp", "container", "image", "localhost:5000/llama-server"),
           (key("llama_cpp"), key("container"), key("image")),
           "providers.llama_cpp.container.image",
           ("image 'localhost:5000/llama-server' is not pinned",), registry="offline"),
    Broken("env-var-holds-a-key", "providers.yaml",
           both(set_in("providers", "openai", "status", "active"),
                set_in("providers", "openai", "env_var", "sk-proj-123")),
           (key("openai"), key("env_var")), "providers.openai.env_var",
           ("env_var must be the NAME of an environment variable", "e.g. env_var: OPENAI_API_KEY")),
    Broken("local-provider-without-container", "providers.yaml",
           lambda d: d["providers"]["ollama"].pop("container"),
           (key("providers"), key("ollama")), "providers.ollama",
           ("local provider 'ollama' has no container section", "or set status: disabled")),
    Broken("invalid-yaml-syntax", "providers.yaml", None,
           (key("vllm-qwen"), r"status: active: nope"), "",
           ("invalid YAML: mapping values are not allowed here",),
           text_edit=lambda t: t.replace(
               "    status: active\n    description: vLLM, AWQ-quantized Qwen",
               "    status: active: nope\n    description: vLLM, AWQ-quantized Qwen", 1)),
]


@pytest.mark.parametrize("case", BROKEN, ids=[c.id for c in BROKEN])
def test_broken_registry(runner, registry_dir, yaml_edit, case: Broken):
    cfg = registry_dir(case.registry)
    target = cfg / case.file
    if case.edit is not None:
        yaml_edit(target, case.edit)
    if case.text_edit is not None:
        before = target.read_text(encoding="utf-8")
        after = case.text_edit(before)
        assert after != before, "text edit did not apply"
        target.write_text(after, encoding="utf-8")
    reported = cfg / (case.at or case.file)
    line = line_of(reported, *case.anchors)
    r = validate(runner, "-C", str(cfg))
    assert r.exit_code == 1, r.output
    assert_no_traceback(r.output)
    rel = reported.relative_to(Path.cwd()).as_posix()
    lines = [ln for ln in r.output.splitlines() if ln.startswith(f"{rel}:{line}:")]
    assert lines, f"no problem reported at {rel}:{line}:\n{r.output}"
    matching = [ln for ln in lines if (not case.path or f" {case.path}: " in ln)
                and all(s in ln for s in case.expect)]
    assert matching, f"expected {case.path!r} and {case.expect} on {rel}:{line}:\n{r.output}"
    assert ": error:" in matching[0]
    for text in case.forbid:
        assert text not in r.output, r.output


def test_inline_secret_reference_is_fine(runner, registry_dir, yaml_edit):
    cfg = registry_dir("shipped")
    yaml_edit(cfg / "providers.yaml", set_in(
        "providers", "vllm-qwen", "container", "env", "OPENAI_API_KEY", "${OPENAI_API_KEY}"))
    r = validate(runner, "--strict")
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize("image", ["vllm/vllm-openai:v0.11.0", "localhost:5000/llama:1",
                                   "ollama/ollama@sha256:" + "a" * 64])
def test_pinned_images_are_fine(runner, registry_dir, yaml_edit, image):
    cfg = registry_dir("shipped")
    yaml_edit(cfg / "providers.yaml", set_in("providers", "ollama", "container", "image", image))
    r = validate(runner)
    assert r.exit_code == 0, r.output


def test_missing_providers_file(runner, registry_dir):
    cfg = registry_dir("shipped")
    (cfg / "providers.yaml").unlink()
    r = validate(runner, "-C", "config")
    assert r.exit_code == 1, r.output
    assert "config/providers.yaml: error: file not found (it lists the inference " \
           "providers: copy examples/offline/config/providers.yaml, or point " \
           "-C/--config-dir at the folder holding yours)" in r.output
    assert_no_traceback(r.output)


def test_missing_config_dir(runner, registry_dir):
    registry_dir("shipped")
    r = validate(runner, "-C", "nowhere")
    assert r.exit_code == 1, r.output
    assert "nowhere: error: no such folder (point -C/--config-dir" in r.output
    assert_no_traceback(r.output)


@pytest.mark.parametrize("text, expect", [
    ("", "required key 'providers' is missing"),
    ("- a\n- b\n", "expected a mapping at the top level"),
    ("providers:\n  a: 1\n  a: 2\n", "invalid YAML"),
])
def test_degenerate_providers_file(runner, registry_dir, text, expect):
    cfg = registry_dir("shipped")
    (cfg / "providers.yaml").write_text(text, encoding="utf-8")
    r = validate(runner)
    assert r.exit_code == 1, r.output
    assert "config/providers.yaml:" in r.output and expect in r.output
    assert_no_traceback(r.output)


def test_console_script_reports_without_traceback(registry_dir, yaml_edit):
    """The real entry point (`stackctl`, via main()), not only the click group."""
    cfg = registry_dir("shipped")
    yaml_edit(cfg / "providers.yaml", set_in("providers", "ollama", "type", "olama"))
    p = subprocess.run([sys.executable, "-c", "from stackctl.cli import main; main()",
                        "validate", "-C", str(cfg)],
                       check=False, capture_output=True, text=True, timeout=60)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "'olama' is not allowed" in p.stderr
    assert_no_traceback(p.stdout + p.stderr)


# -- regressions: bugs found while writing these tests -------------------------------------

@pytest.mark.parametrize("url", ["http://127.0.0.1:PORT", "http://127.0.0.1:99999"])
def test_bad_port_in_base_url_is_reported_not_crashed(runner, registry_dir, yaml_edit, url):
    cfg = registry_dir("shipped")
    yaml_edit(cfg / "providers.yaml", set_in("providers", "vllm-dolphin", "base_url", url))
    line = line_of(cfg / "providers.yaml", key("vllm-dolphin"), key("base_url"))
    r = runner.invoke(cli, ["validate"])  # catching: the crash is the bug under test
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert r.exit_code == 1, r.output
    assert f"config/providers.yaml:{line}:" in r.output
    assert "providers.vllm-dolphin.base_url" in r.output


def test_duplicate_container_host_port_points_at_host_port(runner, registry_dir, yaml_edit):
    cfg = registry_dir("shipped")
    yaml_edit(cfg / "providers.yaml",
              set_in("providers", "vllm-dolphin", "container", "host_port", 8001))
    line = line_of(cfg / "providers.yaml", key("vllm-dolphin"), key("container"), key("host_port"))
    r = validate(runner)
    assert r.exit_code == 1, r.output
    assert (f"config/providers.yaml:{line}:7: error: providers.vllm-dolphin.container.host_port: "
            "host port 8001 is already used by provider 'vllm-qwen'") in r.output


def test_inline_secret_as_env_default_is_an_error(runner, registry_dir, yaml_edit):
    cfg = registry_dir("shipped")
    yaml_edit(cfg / "providers.yaml", set_in(
        "providers", "vllm-qwen", "container", "env", "OPENAI_API_KEY",
        "${OPENAI_API_KEY:-sk-123}"))
    r = validate(runner)
    assert r.exit_code == 1, r.output
    assert "secret 'OPENAI_API_KEY' is written inline" in r.output


@pytest.mark.parametrize("edit, path", [
    (set_in("gateway", "image", "ghcr.io/berriai/litellm:latest"), "gateway.image"),
    (set_in("cache", "image", "redis"), "cache.image"),
    (set_in("images", {"ollama": "ollama/ollama:latest"}), "images.ollama"),
], ids=["gateway-latest", "cache-untagged", "override-latest"])
def test_stack_images_must_be_pinned(runner, registry_dir, yaml_edit, edit, path):
    cfg = registry_dir("shipped")
    yaml_edit(cfg / "stack.yaml", edit)
    r = validate(runner)
    assert r.exit_code == 1, r.output
    assert f" {path}: " in r.output and "not pinned" in r.output


def test_image_override_for_unknown_service(runner, registry_dir, yaml_edit):
    cfg = registry_dir("shipped")
    yaml_edit(cfg / "stack.yaml", set_in("images", {"olama": "ollama/ollama:0.12.11"}))
    r = validate(runner)
    assert r.exit_code == 1, r.output
    assert "images.olama" in r.output and "did you mean 'ollama'" in r.output


def test_alias_declared_by_two_models(runner, registry_dir, yaml_edit):
    cfg = registry_dir("shipped")
    yaml_edit(cfg / "model-mappings.yaml", both(
        set_in("exact_matches", "llama3.1:latest", "aliases", ["general"]),
        set_in("exact_matches", "qwen2.5-coder:7b", "aliases", ["general"])))
    r = validate(runner)
    assert r.exit_code == 1, r.output
    assert "alias 'general'" in r.output


def test_unknown_provider_is_not_called_disabled(runner, registry_dir, yaml_edit):
    cfg = registry_dir("shipped")
    yaml_edit(cfg / "model-mappings.yaml",
              set_in("exact_matches", "llama3.1:latest", "provider", "olama"))
    r = validate(runner)
    assert r.exit_code == 1, r.output
    assert "unknown provider 'olama'" in r.output
    assert "disabled" not in r.output


# -- a registry in the format of the system stackctl replaces -------------------------------

# tests/fixtures/legacy: providers.yaml and model-mappings.yaml as written before stackctl (no
# container sections, no stack.yaml, the old descriptive keys), with the mistakes such
# registries had. Each expected finding: path → (file, message text, anchors for its line).
LEGACY = FIXTURES / "legacy"
NOT_A_MODEL, DISABLED, NO_CONTAINER = ("is a provider, not a model", "is disabled",
                                       "has no container section")
PROVIDERS_YAML, MAPPINGS_YAML = "providers.yaml", "model-mappings.yaml"
PATTERN = r"^\s*- pattern:"


def _pattern(i: int, *then: str) -> tuple[str, ...]:
    return (key("patterns"), *([PATTERN] * (i + 1)), *then)


LEGACY_ERRORS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    **{f"providers.{name}": (PROVIDERS_YAML, f"local provider {name!r} {NO_CONTAINER}",
                             (key("providers"), key(name)))
       for name in ("ollama_gpu", "llamacpp_bindings", "llamacpp_server", "vllm-main")},
    "exact_matches.phi3:mini.fallback": (
        MAPPINGS_YAML, f"'llamacpp_bindings' {NOT_A_MODEL}",
        (key("exact_matches"), key("phi3:mini"), key("fallback"))),
    "exact_matches.mistral-vllm.fallback": (
        MAPPINGS_YAML, f"'ollama_gpu' {NOT_A_MODEL}",
        (key("exact_matches"), key("mistral-vllm"), key("fallback"))),
    "exact_matches.gpt-oss:20b-cloud.fallback": (
        MAPPINGS_YAML, f"'ollama_gpu' {NOT_A_MODEL}",
        (key("exact_matches"), key("gpt-oss:20b-cloud"), key("fallback"))),
    "patterns[0].fallback": (MAPPINGS_YAML, f"'ollama_gpu' {NOT_A_MODEL}",
                             _pattern(0, key("fallback"))),
    "patterns[1].provider": (MAPPINGS_YAML, f"provider 'vllm-alt' {DISABLED}",
                             _pattern(1, r"provider: vllm-alt")),
    "patterns[3].provider": (MAPPINGS_YAML, f"provider 'vllm-alt' {DISABLED}",
                             _pattern(3, r"provider: vllm-alt")),
    "patterns[4].fallback": (MAPPINGS_YAML, f"'llamacpp_server' {NOT_A_MODEL}",
                             _pattern(4, key("fallback"))),
    "capabilities.long_context.preferred_models[1]": (
        MAPPINGS_YAML, f"'llamacpp_bindings' {NOT_A_MODEL}",
        (key("capabilities"), key("long_context"), key("preferred_models"),
         item("llamacpp_bindings"))),
}
UNENFORCEABLE = "cannot be enforced by the gateway"
LEGACY_WARNINGS: dict[str, tuple[str, tuple[str, ...]]] = {
    **{f"patterns[{i}]": ("pattern routing is not enforced", _pattern(i)) for i in range(5)},
    "capabilities.code.routing_strategy": (
        "'complexity_based' " + UNENFORCEABLE,
        (key("capabilities"), key("code"), key("routing_strategy"))),
    "capabilities.long_context.routing_strategy": (
        "'most_capacity' " + UNENFORCEABLE,
        (key("capabilities"), key("long_context"), key("routing_strategy"))),
    "capabilities.low_latency.routing_strategy": (
        "'fastest_response' " + UNENFORCEABLE,
        (key("capabilities"), key("low_latency"), key("routing_strategy"))),
    "load_balancing.bulk-code.providers[0].condition": (
        "'queue_depth > 4' " + UNENFORCEABLE,
        (key("load_balancing"), key("bulk-code"), key("condition"))),
    "load_balancing.bulk-code.strategy": (
        "'adaptive_weighted' " + UNENFORCEABLE,
        (key("load_balancing"), key("bulk-code"), key("strategy"))),
    "routing_rules": ("routing_rules " + UNENFORCEABLE, (key("routing_rules"),)),
    "special_cases": ("special_cases " + UNENFORCEABLE, (key("special_cases"),)),
}


@pytest.fixture
def legacy(tmp_path, monkeypatch) -> Path:
    cfg = tmp_path / "config"
    cfg.mkdir()
    for name in (PROVIDERS_YAML, MAPPINGS_YAML):
        shutil.copy(LEGACY / name, cfg / name)
    for folder in ("monitoring", "grafana-dashboards"):  # as in a project
        shutil.copytree(LEGACY.parents[2] / folder, tmp_path / folder)
    monkeypatch.chdir(tmp_path)
    return cfg


def test_a_missing_monitoring_folder_is_a_warning_naming_what_would_be_missing(
        runner, registry_dir):
    config = registry_dir("offline")
    shutil.rmtree(config.parents[2] / "monitoring")
    r = validate(runner, "-C", str(config), "--json")
    doc = json.loads(r.stdout)
    assert r.exit_code == 0 and doc["errors"] == []
    [w] = doc["warnings"]
    assert (w["file"], w["path"]) == ("examples/offline/config/stack.yaml",
                                      "monitoring.config_dir")
    assert "would run without prometheus/alerts.yml" in w["message"]


def test_legacy_fixture_is_in_the_old_format():
    assert sorted(p.name for p in LEGACY.iterdir()) == [MAPPINGS_YAML, PROVIDERS_YAML]
    assert "container:" not in (LEGACY / PROVIDERS_YAML).read_text()


def test_legacy_registry_reports_its_defects(runner, legacy):
    text = validate(runner, "-C", "config")
    assert text.exit_code == 1, text.output
    assert_no_traceback(text.output)
    assert "config: failed: 12 error(s), 12 warning(s)" in text.output
    r = validate(runner, "-C", "config", "--json")
    assert r.exit_code == 1, r.output
    doc = json.loads(r.stdout)
    errors, warnings = doc["errors"], doc["warnings"]

    # exactly the expected errors, each at its file:line, the same in the text report;
    # the descriptive keys of the old format (features, docs, rate_limits, tier …) raise none
    assert sorted(e["path"] for e in errors) == sorted(LEGACY_ERRORS), \
        "\n".join(f"{e['path']}: {e['message']}" for e in errors)
    for e in errors:
        file, message, anchors = LEGACY_ERRORS[e["path"]]
        assert e["file"] == f"config/{file}", e
        assert message in e["message"], e
        assert e["line"] == line_of(legacy / file, *anchors), e
        assert f"{e['file']}:{e['line']}:{e['column']}: error: {e['path']}: {e['message']}" \
            in text.output
    kinds = Counter(next(k for k in (NOT_A_MODEL, DISABLED, NO_CONTAINER) if k in e["message"])
                    for e in errors)
    assert kinds == {NOT_A_MODEL: 6, DISABLED: 2, NO_CONTAINER: 4}

    # the hint names the models the provider serves
    by_path = {e["path"]: e for e in errors}
    assert by_path["exact_matches.mistral-vllm.fallback"]["hint"] == \
        "did you mean one of its models: mistral:7b-instruct, phi3:mini, gemma2:9b"
    assert "tinyllama-q4" in by_path["capabilities.long_context.preferred_models[1]"]["hint"]

    # remote, disabled and template providers need no container; a provider is a valid
    # capability fallback; an enforceable strategy (`direct`) is not warned about
    assert not [p for p in errors + warnings if p["path"].startswith(
        ("providers.remote_ollama", "providers.vllm-alt", "providers.together",
         "providers.byo_openai", "capabilities.low_latency.fallback", "capabilities.chat"))]

    # routing the gateway cannot enforce: warnings, not errors
    assert sorted(w["path"] for w in warnings) == sorted(LEGACY_WARNINGS)
    for w in warnings:
        message, anchors = LEGACY_WARNINGS[w["path"]]
        assert w["file"] == f"config/{MAPPINGS_YAML}", w
        assert message in w["message"] and "enforce" in w["message"], w
        assert w["line"] == line_of(legacy / MAPPINGS_YAML, *anchors), w
    assert doc["summary"]["providers"] == 8


# -- the cache's password: cache.password_env ------------------------------------------------
# Like the gateway's master key, stack.yaml names the variable (in .env) that holds it.

CACHE_PASSWORD_BROKEN = [
    Broken("cache-password-env-holds-a-password", "stack.yaml",
           set_in("cache", "password_env", "hunter2 with spaces!"),
           (key("cache"), key("password_env")), "cache.password_env",
           ("password_env must be the NAME of an environment variable, not a secret",
            "e.g. password_env: REDIS_PASSWORD, and put the value in .env"),
           forbid=("hunter2",)),
    Broken("cache-password-env-offline", "stack.yaml",
           set_in("cache", "password_env", "${REDIS_PASSWORD}"),
           (key("cache"), key("password_env")), "cache.password_env",
           ("must be the NAME of an environment variable",), registry="offline"),
    Broken("cache-password-is-the-master-key", "stack.yaml",
           set_in("cache", "password_env", "LITELLM_MASTER_KEY"),
           (key("cache"), key("password_env")), "cache.password_env",
           ("cache.password_env 'LITELLM_MASTER_KEY' is also gateway.master_key_env",
            "give the cache its own variable")),
    Broken("cache-password-is-an-api-key", "providers.yaml",
           both(set_in("providers", "openai", "status", "active"),
                set_in("providers", "openai", "env_var", "REDIS_PASSWORD")),
           (key("openai"), key("env_var")), "providers.openai.env_var",
           ("env_var 'REDIS_PASSWORD' is also the cache's password",
            "the gateway would send it to", "give the provider's key a variable of its own")),
    Broken("master-key-env-holds-a-key", "stack.yaml",
           set_in("gateway", "master_key_env", "sk-1234"),
           (key("gateway"), key("master_key_env")), "gateway.master_key_env",
           ("master_key_env must be the NAME of an environment variable",
            "e.g. master_key_env: LITELLM_MASTER_KEY"), forbid=("sk-1234",)),
]


@pytest.mark.parametrize("case", CACHE_PASSWORD_BROKEN, ids=[c.id for c in CACHE_PASSWORD_BROKEN])
def test_broken_cache_password_env(runner, registry_dir, yaml_edit, case: Broken):
    test_broken_registry(runner, registry_dir, yaml_edit, case)


@pytest.mark.parametrize("edit", [
    set_in("cache", "password_env", "STACK_CACHE_PASSWORD"),
    # a disabled cache has no password: its name is not checked
    both(set_in("cache", "enabled", False), set_in("cache", "password_env", "not a name")),
    both(set_in("cache", "enabled", False), set_in("cache", "password_env", "LITELLM_MASTER_KEY")),
], ids=["own-name", "disabled-bad-name", "disabled-shared-name"])
def test_cache_password_env_is_fine(runner, registry_dir, yaml_edit, edit):
    cfg = registry_dir("shipped")
    yaml_edit(cfg / "stack.yaml", edit)
    r = validate(runner, "--strict")
    assert r.exit_code == 0, r.output


def test_cache_password_env_defaults_to_redis_password():
    from stackctl.registry.models import StackFile

    assert StackFile().cache.password_env == "REDIS_PASSWORD"


# -- monitoring: receivers, optional services, what Prometheus can see -------------------------

RECEIVER = {"name": "ops", "webhook_url_env": "ALERT_WEBHOOK_URL"}


def receivers(*entries: dict) -> Callable[[Any], None]:
    return set_in("monitoring", "alerts", {"receivers": [dict(e) for e in entries]})


MONITORING_BROKEN = [
    Broken("webhook-url-written-inline", "stack.yaml",
           receivers(dict(RECEIVER, webhook_url_env="https://hooks.slack.com/services/T0/B0/x")),
           (key("monitoring"), key("webhook_url_env")),
           "monitoring.alerts.receivers[0].webhook_url_env",
           ("webhook_url_env must be the NAME of an environment variable",
            "e.g. webhook_url_env: ALERT_WEBHOOK_URL"), forbid=("hooks.slack.com",)),
    Broken("webhook-url-is-the-master-key", "stack.yaml",
           receivers(dict(RECEIVER, webhook_url_env="LITELLM_MASTER_KEY")),
           (key("monitoring"), key("webhook_url_env")),
           "monitoring.alerts.receivers[0].webhook_url_env",
           ("webhook_url_env 'LITELLM_MASTER_KEY' is also gateway.master_key_env",
            "give the webhook its own variable")),
    Broken("receiver-named-twice", "stack.yaml", receivers(RECEIVER, RECEIVER),
           (key("monitoring"), key("receivers")), "monitoring.alerts.receivers",
           ("receiver name 'ops' is used twice",)),
    Broken("receiver-named-null", "stack.yaml", receivers(dict(RECEIVER, name="null")),
           (key("monitoring"), key("receivers")), "monitoring.alerts.receivers",
           ("receiver name 'null' is reserved",)),
    Broken("scrape-interval-without-unit", "stack.yaml",
           set_in("monitoring", "scrape_interval", "15"),
           (key("monitoring"), key("scrape_interval")), "monitoring.scrape_interval",
           ("should match pattern",)),
    Broken("alloy-without-loki", "stack.yaml", set_in("monitoring", "loki", {"enabled": False}),
           (key("monitoring"),), "monitoring.alloy.enabled",
           ("alloy ships logs to loki, which is disabled",)),
    Broken("pushgateway-on-prometheus-port", "stack.yaml",
           set_in("monitoring", "pushgateway", {"host_port": 9090}),
           (key("monitoring"), key("pushgateway"), key("host_port")),
           "monitoring.pushgateway.host_port", ("host port 9090 is already used by prometheus",)),
]


@pytest.mark.parametrize("case", MONITORING_BROKEN, ids=[c.id for c in MONITORING_BROKEN])
def test_broken_monitoring(runner, registry_dir, yaml_edit, case: Broken):
    test_broken_registry(runner, registry_dir, yaml_edit, case)


@pytest.mark.parametrize("edit", [
    receivers(RECEIVER, {"name": "chat", "webhook_url_env": "DISCORD_WEBHOOK_URL",
                         "send_resolved": False}),
    set_in("monitoring", "grafana", {"enabled": False}),  # keeps its default image
    both(set_in("monitoring", "loki", {"enabled": False}),
         set_in("monitoring", "alloy", {"enabled": False})),
    # a disabled service's port is free for another
    both(set_in("monitoring", "grafana", {"enabled": False}),
         set_in("monitoring", "pushgateway", {"host_port": 3000})),
    set_in("monitoring", "scrape_interval", "1m"),
], ids=["two-receivers", "no-grafana", "no-loki-no-alloy", "port-of-disabled", "interval-1m"])
def test_monitoring_is_fine(runner, registry_dir, yaml_edit, edit):
    cfg = registry_dir("shipped")
    yaml_edit(cfg / "stack.yaml", edit)
    r = validate(runner, "--strict")
    assert r.exit_code == 0, r.output


def _warnings(runner, cfg: Path) -> list[dict]:
    r = validate(runner, "-C", str(cfg), "--json")
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)["warnings"]


def test_llama_cpp_without_metrics_is_a_warning(runner, registry_dir, yaml_edit):
    cfg = registry_dir("offline")
    yaml_edit(cfg / "providers.yaml",
              lambda d: d["providers"]["llama_cpp"]["container"]["command"].remove("--metrics"))
    (w,) = _warnings(runner, cfg)
    assert w["path"] == "providers.llama_cpp.container.command"
    assert w["line"] == line_of(cfg / "providers.yaml", key("llama_cpp"), key("command"))
    assert "without --metrics" in w["message"] and "--metrics" in w["hint"]


def test_llama_cpp_metrics_from_its_environment_variable(runner, registry_dir, yaml_edit):
    cfg = registry_dir("offline")

    def edit(d: Any) -> None:
        c = d["providers"]["llama_cpp"]["container"]
        c["command"].remove("--metrics")
        c["env"] = {"LLAMA_ARG_ENDPOINT_METRICS": "1"}

    yaml_edit(cfg / "providers.yaml", edit)
    assert _warnings(runner, cfg) == []


def test_unwatched_provider_is_a_warning(runner, registry_dir, yaml_edit):
    cfg = registry_dir("offline")
    yaml_edit(cfg / "stack.yaml", set_in("monitoring", "blackbox_exporter", {"enabled": False}))
    (w,) = _warnings(runner, cfg)
    assert w["path"] == "providers.ollama"
    assert "no metrics endpoint" in w["message"] and "blackbox" in w["hint"]


def test_a_stack_setting_is_reported_in_stack_yaml_never_in_providers_yaml(registry_dir):
    from stackctl.registry.checks import check
    from stackctl.registry.load import load_registry

    cfg = registry_dir("offline")
    stack = cfg / "stack.yaml"
    stack.write_text(stack.read_text() + "bind_address: 0.0.0.0\n")
    (warning,) = [p for p in check(load_registry(cfg)) if p.path == "bind_address"]
    assert (warning.file, warning.line) == ("examples/offline/config/stack.yaml",
                                            line_of(stack, "^bind_address:"))
    # no stack.yaml: its defaults apply, and the default monitoring.config_dir
    # (../monitoring) is not beside this copy; still stack.yaml's setting, at no line
    stack.unlink()
    (warning,) = [p for p in check(load_registry(cfg)) if p.path == "monitoring.config_dir"]
    assert warning.render().startswith("examples/offline/config/stack.yaml: warning: "
                                       "monitoring.config_dir: ")
    assert warning.hint.endswith("stack.yaml is absent: this is its default")
