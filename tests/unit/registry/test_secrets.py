"""Secrets: secret-shaped values are refused wherever they are in the registry, no message
repeats one, a provider cannot read the stack's own secrets, and .env values never reach a
generated file.

The detector is tested as data (true positives and, as important, names that must not be
taken for secrets); the CLI tests edit a copy of the shipped registry and read what
`validate` and `generate` print.
"""

from __future__ import annotations

import json
import random
import re
import string
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from stackctl.cli import cli
from stackctl.registry.load import shown_as
from stackctl.registry.problems import Problem
from stackctl.registry.secrets import describe, in_arguments, redact, references

# One of each shape; none of them may ever be printed.
OPENAI = "sk-proj-Q7vL2mX9pR4tZ8kW3nB6yH1c"
HF = "hf_Xq3LmN8pR2tZ7vB4kW9yH1cJ5dF0gSaE"
JWT = ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJzdGFja2N0bCIsImlhdCI6MTcwMDAwMDAwMH0."
       "Yq8wVn3Lk2PzR7tXm4Bc9Hd1Jf6Gs0Ka")
RANDOM = "aZ3kP9qL2xW7vB4nM8tR1yC6"
PASSWORD = "correct-Horse-7-battery"  # in a URL: secret by place, not by shape
PLANTED = [OPENAI, HF, JWT, RANDOM]

TRUE_POSITIVES = [
    OPENAI, HF, JWT, RANDOM,
    "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUv",
    "ghp_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
    "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
    "glpat-AbCdEfGhIjKlMnOpQrSt",
    "xoxb-1234567890-abcdefghij",
    "AKIAIOSFODNN7EXAMPLE",
    "AIzaSyA-abcdefghijklmnopqrstuvwxyz12345",
    "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "-----BEGIN RSA PRIVATE KEY-----",
    f"http://admin:{PASSWORD}@127.0.0.1:8001",
    "https://api.example.com/v1?api_key=abc123",
    "https://api.example.com/v1?model=x&accessToken=abc123",
    "https://hooks.slack.com/services/T000/B000/XXXX",
    f"${{FOO:?{OPENAI}}}",
    f"${{FOO:-{HF}}}",
    f"Authorization: Bearer {RANDOM}",
    # issue #22: shapes the detector missed
    "NRAK-7Q2XK9M4B1ZC8WD5R3T6Y0UPLVH", "NRII-AB3DEF7HI9KL1MN5PQ8RS2TU4VW",
    "NRJS-0123456789ABCDEF01234567890",
    "sk_live_4eC39HqLyjWDarjtT1zdp7dc", "rk_test_51H8xYzAbCdEfGhIjKlMn",
    "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",
    "npm_" + "aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3xY5", "gsk_" + "q8X3k2M9v7B1n4C6z0L5j8H2g7F3d9S1a4P6w0E2",
    "r8_" + "q8X3k2M9v7B1n4C6z0L5j8H2g7F3d9S1",
    "q8x3k2m9v7b1n4c6z0l5j8h2g7f3d9s1a4p6w0e2", "Q8X3K2M9V7B1N4C6Z0L5J8H2G7F3D9S1A4P6W0E2",
]

# What registries are full of: model, image and file names, URLs, references, prose.
NOT_SECRETS = [
    "Qwen/Qwen2.5-Coder-7B-Instruct-AWQ", "solidrust/dolphin-2.8-mistral-7b-v02-AWQ",
    "Meta-Llama-3-8B-Instruct-Q4_K_M", "Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf",
    "Qwen2.5-Coder-32B-Instruct-Q4_K_M.gguf", "unsloth/Qwen3-30B-A3B-Instruct-2507-GGUF",
    "bartowski/Meta-Llama-3.1-70B-Instruct-GGUF", "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B",
    "mistralai/Mixtral-8x7B-Instruct-v0.1", "NousResearch/Hermes-3-Llama-3.1-8B-GGUF",
    "mythomax-l2-13b-q5_k_m", "claude-3-5-sonnet-20241022", "gpt-4o-mini-2024-07-18",
    "ghcr.io/ggml-org/llama.cpp:server-cuda-b6990", "ghcr.io/berriai/litellm:v1.79.1-stable",
    "redis@sha256:" + "a3f1c9" * 10 + "abcd", "/root/.cache/huggingface",
    "/models/Llama-3.2-3B-Instruct-Q8_0.gguf", "http://127.0.0.1:11434",
    "https://api.openai.com/v1/models?model=gpt-4o", "http://user@127.0.0.1:8001",
    "http://admin:${PROXY_PASSWORD}@127.0.0.1:8001", "${HF_TOKEN:-}",
    "${HF_TOKEN:?set HF_TOKEN in .env}", "hf_transfer", "sk-learn", "task-abcdefghijklmnopqrstuvwxyz",
    "--gpu-memory-utilization", "--max-num-batched-tokens", "12345678901234567890123456789012",
    "General-purpose chat on the native llama.cpp server, 8192 tokens of context",
    # long lowercase names with digits: words, versions, separators
    "deepseek-coder-v2-lite-instruct-q4-k-m-gguf-2024", "qwen2.5-coder-32b-instruct-awq-int4",
    "llama3.1-8b-instruct-q4_k_m-20240723-finetune", "inferencestub1", "pushgateway-data",
    "deepseekcoderv2liteinstruct2024q4km",
    "abcdefghijklmnopqrstuvwxyzabcdefghij0123", "version20240101release20240202build3",
]


# -- the detector, as data ------------------------------------------------------------------

@pytest.mark.parametrize("value", TRUE_POSITIVES)
def test_secret_shapes_are_found(value):
    assert describe(value) is not None


@pytest.mark.parametrize("value", NOT_SECRETS)
def test_names_paths_and_urls_are_not_secrets(value):
    assert describe(value) is None


def test_random_tokens_are_found():
    """Keys without a vendor prefix: ~98 % of random base62 tokens of 24-40 characters."""
    rng = random.Random(12)
    alphabet = string.ascii_letters + string.digits
    tokens = ["".join(rng.choice(alphabet) for _ in range(rng.randint(24, 40)))
              for _ in range(500)]
    found = sum(describe(t) is not None for t in tokens)
    assert found >= 480, f"only {found}/500 random tokens found"


def test_base36_tokens_are_found():
    """Lowercase (or uppercase) letters and digits, 32-48 of them: ~95 % found, where only
    the hex ones were before (issue #22)."""
    rng = random.Random(22)
    alphabet = string.ascii_lowercase + string.digits
    tokens = ["".join(rng.choice(alphabet) for _ in range(rng.randint(32, 48)))
              for _ in range(500)]
    found = sum(describe(t) is not None for t in tokens)
    assert found >= 475, f"only {found}/500 base-36 tokens found"
    assert all(describe(t.upper()) is not None for t in tokens if describe(t) is not None)


def test_what_a_finding_says():
    assert describe(OPENAI) == f"an OpenAI-style key, {len(OPENAI)} characters"
    assert describe(f"http://u:{PASSWORD}@host") == \
        f"a password in a URL, {len(PASSWORD)} characters"


def test_arguments_carrying_a_secret():
    args = ["--api-key", "token-abc123", f"--hf-token={HF}", "--max-tokens", "4096",
            "--api-key", "${VLLM_API_KEY}", "--ssl-keyfile", "/certs/key.pem",
            "--tokenizer", "gpt2", "--password=hunter2", "--model", RANDOM]
    assert [i for i, _ in in_arguments(args)] == [1, 2, 11, 13]


def test_redact_hides_values_keeps_the_rest():
    text = redact(f"base_url 'http://admin:{PASSWORD}@10.0.0.1:x' has an invalid port")
    assert PASSWORD not in text
    assert "10.0.0.1" in text and "a password in a URL" in text
    dup = redact(f'found duplicate key "FOO" with value "hunter2" (original value: "{OPENAI}")')
    assert dup == 'found duplicate key "FOO"'


def test_a_problem_never_carries_a_secret():
    """The safety net: whoever builds a Problem, its text is redacted."""
    p = Problem(severity="error", file="f", path=f"exact_matches.{OPENAI}",
                message=f"unknown model {OPENAI!r}", hint=f"did you mean {HF}")
    assert all(s not in p.render() for s in (OPENAI, HF))
    assert "exact_matches." in p.path


def test_values_in_type_errors_show_type_and_length():
    assert shown_as(OPENAI) == f"a string of {len(OPENAI)} characters"
    assert shown_as("x") == "a string of 1 character"
    assert shown_as({"a": 1, "b": 2}) == "a mapping of 2 keys"
    assert shown_as([1]) == "a list of 1 item"
    assert (shown_as(None), shown_as(True), shown_as(-5)) == ("null", "true", "-5")


def test_references():
    # $$E is a literal $E for the container's shell: not read from .env
    assert references("--key=${A} $B ${C:-x} ${D:?m} $$E $$${F}") == ["A", "B", "C", "D", "F"]


# -- the CLI --------------------------------------------------------------------------------

def run(runner, *args: str):
    return runner.invoke(cli, list(args), catch_exceptions=False)


def everything(r) -> str:
    return r.output + (r.stderr or "")


def errors(runner, cfg: Path) -> list[dict[str, Any]]:
    r = run(runner, "validate", "-C", str(cfg), "--json")
    assert r.exit_code == 1, r.output
    return json.loads(r.stdout)["errors"]


def line_of(path: Path, pattern: str) -> int:
    lines = path.read_text(encoding="utf-8").splitlines()
    return next(i for i, line in enumerate(lines, 1) if re.search(pattern, line))


@pytest.mark.parametrize("name", ["shipped", "offline"])
def test_shipped_registries_are_clean(runner, registry_dir, name):
    r = run(runner, "validate", "-C", str(registry_dir(name)), "--strict")
    assert r.exit_code == 0, r.output


def _vllm_command(cfg: Path) -> list[str]:
    """The shipped vllm-qwen command (12 arguments): what the appended ones are indexed by."""
    from ruamel.yaml import YAML

    data = YAML(typ="safe").load((cfg / "providers.yaml").read_text(encoding="utf-8"))
    return data["providers"]["vllm-qwen"]["container"]["command"]


def _env(provider: str, key: str, value: str) -> Callable[[Any], None]:
    def edit(d: Any) -> None:
        d["providers"][provider]["container"].setdefault("env", {})[key] = value
    return edit


def _command(provider: str, *args: str) -> Callable[[Any], None]:
    def edit(d: Any) -> None:
        d["providers"][provider]["container"]["command"].extend(args)
    return edit


# (edit of providers.yaml, key path, regex of the reported line, what the message says)
REFUSED = {
    "env value whatever its name": (
        _env("ollama", "FOO", OPENAI), "providers.ollama.container.env.FOO", r"^\s+FOO:",
        "an OpenAI-style key"),
    "command argument": (
        _command("vllm-qwen", "--hf-token", HF), "providers.vllm-qwen.container.command[13]",
        r"--hf-token", "a Hugging Face token"),
    "value of a secret flag": (
        _command("vllm-qwen", "--api-key=token-abc123"),
        "providers.vllm-qwen.container.command[12]", r"--api-key", "a value of --api-key"),
    "credentials in a URL": (
        lambda d: d["providers"]["ollama"].__setitem__(
            "base_url", f"http://admin:{PASSWORD}@127.0.0.1:11434"),
        "providers.ollama.base_url", r"base_url: http://admin", "a password in a URL"),
    "key in a URL query": (
        lambda d: d["providers"]["ollama"].__setitem__(
            "base_url", "http://127.0.0.1:11434?api_key=abc123def"),
        "providers.ollama.base_url", r"base_url: .*api_key", "a key in a URL"),
    "message of ${VAR:?…}": (
        _env("vllm-qwen", "HF_TOKEN", f"${{HF_TOKEN:?{JWT}}}"),
        "providers.vllm-qwen.container.env.HF_TOKEN", r"HF_TOKEN: .*\?", "a JWT"),
}


@pytest.mark.parametrize("case", REFUSED)
def test_secret_is_refused_by_key_path_and_line(runner, registry_dir, yaml_edit, case):
    edit, path, line_pattern, kind = REFUSED[case]
    cfg = registry_dir("shipped")
    assert len(_vllm_command(cfg)) == 12
    yaml_edit(cfg / "providers.yaml", edit)
    found = [e for e in errors(runner, cfg) if e["path"] == path]
    assert len(found) == 1, errors(runner, cfg)
    assert kind in found[0]["message"]
    assert found[0]["line"] == line_of(cfg / "providers.yaml", line_pattern)
    text = everything(run(runner, "validate", "-C", str(cfg)))
    assert path in text and "error" in text
    for secret in (OPENAI, HF, JWT, PASSWORD, "token-abc123", "abc123def"):
        assert secret not in text


BORROWED = {
    "master key": ("LITELLM_MASTER_KEY", "the gateway's master key"),
    "cache password": ("REDIS_PASSWORD:-", "the cache's password"),
    "grafana password": ("GRAFANA_ADMIN_PASSWORD:?set it", "Grafana's admin password"),
    "alert webhook": ("ALERT_WEBHOOK_URL", "webhook URL of alert receiver 'ops'"),
}


@pytest.mark.parametrize("case", BORROWED)
@pytest.mark.parametrize("where", ["env", "command"])
def test_provider_cannot_read_the_stacks_secrets(runner, registry_dir, yaml_edit, case, where):
    ref, owner = BORROWED[case]
    cfg = registry_dir("shipped")
    yaml_edit(cfg / "stack.yaml", lambda d: d["monitoring"]["alerts"].__setitem__(
        "receivers", [{"name": "ops", "webhook_url_env": "ALERT_WEBHOOK_URL"}]))
    edit = _env("ollama", "FOO", f"${{{ref}}}") if where == "env" else \
        _command("vllm-qwen", f"--key=${{{ref}}}")
    yaml_edit(cfg / "providers.yaml", edit)
    path = "providers.ollama.container.env.FOO" if where == "env" else \
        "providers.vllm-qwen.container.command[12]"
    found = [e for e in errors(runner, cfg) if e["path"] == path]
    assert len(found) == 1 and owner in found[0]["message"], found


def test_renamed_master_key_is_still_protected(runner, registry_dir, yaml_edit):
    cfg = registry_dir("shipped")
    yaml_edit(cfg / "stack.yaml", lambda d: d["gateway"].__setitem__("master_key_env", "GW_KEY"))
    yaml_edit(cfg / "providers.yaml", _env("ollama", "FOO", "${GW_KEY}"))
    assert [e["path"] for e in errors(runner, cfg)] == ["providers.ollama.container.env.FOO"]


# -- no output repeats a planted secret -----------------------------------------------------

def _set(*keys: Any) -> Callable[[Any, str], None]:
    """Set the value at `keys` (the last key may be a callable of the secret: the key)."""
    def edit(d: Any, secret: str) -> None:
        for k in keys[:-1]:
            d = d[k]
        last = keys[-1]
        if callable(last):
            d[last(secret)] = "x"
        else:
            d[last] = secret
    return edit


def _as_key(secret: str) -> str:
    return secret


P, M, S = "providers.yaml", "model-mappings.yaml", "stack.yaml"
OLLAMA = ("providers", "ollama")
PLACES: dict[str, tuple[str, Callable[[Any, str], None]]] = {
    "provider type (enum)": (P, _set(*OLLAMA, "type")),
    "provider status (enum)": (P, _set(*OLLAMA, "status")),
    "port (wrong type)": (P, _set(*OLLAMA, "container", "port")),
    "unknown key": (P, _set(*OLLAMA, _as_key)),
    "provider name": (P, lambda d, s: d["providers"].__setitem__(
        s, {"type": "openai", "base_url": "https://api.openai.com/v1", "status": "disabled"})),
    "env value": (P, _set(*OLLAMA, "container", "env", "FOO")),
    "env name": (P, _set(*OLLAMA, "container", "env", _as_key)),
    "command": (P, lambda d, s: d["providers"]["ollama"]["container"].__setitem__(
        "command", ["serve", s])),
    "base_url": (P, _set(*OLLAMA, "base_url")),
    "description": (P, _set(*OLLAMA, "description")),
    "env_var": (P, _set(*OLLAMA, "env_var")),
    "image": (P, _set(*OLLAMA, "container", "image")),
    "volume": (P, _set(*OLLAMA, "container", "volumes", _as_key)),
    "health expect": (P, _set(*OLLAMA, "container", "health", "expect")),
    "health via (enum)": (P, _set(*OLLAMA, "container", "health", "via")),
    "gpu count (wrong type)": (P, _set(*OLLAMA, "container", "gpu", "count")),
    "model name in provider": (P, lambda d, s: d["providers"]["ollama"]["models"].append(
        {"name": s})),
    "fallback": (M, _set("exact_matches", "llama3.1:latest", "fallback")),
    "model name": (M, lambda d, s: d["exact_matches"].__setitem__(s, {"provider": "ollama"})),
    "alias": (M, _set("exact_matches", "llama3.1:latest", "aliases")),
    "pattern": (M, lambda d, s: d.__setitem__("patterns", [{"pattern": s, "provider": "x"}])),
    "routing strategy": (M, _set("capabilities", "code", "routing_strategy")),
    "chain item": (M, lambda d, s: d["fallback_chains"]["llama3.1:latest"]["chain"].append(s)),
    "project": (S, _set("project")),
    "bind address": (S, _set("bind_address")),
    "master_key_env": (S, _set("gateway", "master_key_env")),
    "gateway port (wrong type)": (S, _set("gateway", "host_port")),
    "cache namespace": (S, _set("cache", "namespace")),
    "default profile": (S, lambda d, s: d["default_profiles"].append(s)),
    "image override": (S, lambda d, s: d.__setitem__("images", {s: "redis:7.4.1"})),
    "scrape interval": (S, _set("monitoring", "scrape_interval")),
    "webhook env": (S, lambda d, s: d["monitoring"]["alerts"].__setitem__(
        "receivers", [{"name": "ops", "webhook_url_env": s}])),
}


def _duplicate_key(cfg: Path, secret: str) -> None:
    path = cfg / "providers.yaml"
    text = path.read_text(encoding="utf-8")
    line = '        OLLAMA_KEEP_ALIVE: "30m"\n'
    assert line in text
    path.write_text(text.replace(line, line + f'        OLLAMA_KEEP_ALIVE: "{secret}"\n'),
                    encoding="utf-8")


def _leaks(text: str, secret: str) -> bool:
    # a middle slice too: a message must not quote part of it either
    return secret in text or secret[6:18] in text


@pytest.mark.parametrize("place", [*PLACES, "duplicate key"])
def test_planted_secret_is_refused_and_never_printed(runner, registry_dir, yaml_edit, place):
    secret = PLANTED[(list(PLACES) + ["duplicate key"]).index(place) % len(PLANTED)]
    cfg = registry_dir("shipped")
    if place == "duplicate key":
        _duplicate_key(cfg, secret)
    else:
        file, edit = PLACES[place]
        yaml_edit(cfg / file, lambda d: edit(d, secret))
    assert secret in (cfg / (PLACES[place][0] if place in PLACES else P)).read_text()
    for args in (["validate"], ["validate", "--json"], ["validate", "--strict"],
                 ["generate"], ["generate", "--json"], ["generate", "--check"]):
        r = run(runner, *args, "-C", str(cfg))
        text = everything(r)
        assert r.exit_code == 1, (args, text)
        assert "Traceback" not in text
        assert not _leaks(text, secret), (args, text)
        assert "error" in text
    out = cfg.parent / "compose"
    assert not out.exists() or not any(
        _leaks(f.read_text(errors="replace"), secret) for f in out.rglob("*") if f.is_file())


# -- .env values never reach a generated file -----------------------------------------------

@pytest.mark.parametrize("name", ["shipped", "offline"])
def test_env_secrets_never_reach_generated_files(runner, registry_dir, monkeypatch, name):
    cfg = registry_dir(name)
    values = {"REDIS_PASSWORD": "Rp7-" + RANDOM, "LITELLM_MASTER_KEY": "sk-" + RANDOM + "mk",
              "GRAFANA_ADMIN_PASSWORD": "Gf9-" + RANDOM, "HF_TOKEN": HF}
    env_file = cfg.parent / ".env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in values.items()), encoding="utf-8")
    for k, v in values.items():  # the host's environment too: compose reads both
        monkeypatch.setenv(k, v)
    r = run(runner, "generate", "-C", str(cfg))
    assert r.exit_code == 0, r.output
    generated = {f: f.read_text(encoding="utf-8") for f in (cfg.parent / "compose").rglob("*")
                 if f.is_file()}
    compose = next(t for f, t in generated.items() if f.name == "compose.yaml")
    # Redis does require the password, and reads it from .env by reference
    assert "requirepass $$REDIS_PASSWORD" in compose
    assert "${REDIS_PASSWORD:?" in compose
    for f, text in generated.items():
        for k, v in values.items():
            assert v not in text, f"{k}'s value is in {f}"
    assert not any(v in everything(r) for v in values.values())


def test_type_and_enum_errors_show_length_not_value(runner, registry_dir, yaml_edit):
    """Not secret-shaped, still not repeated: a string in the wrong place may be a
    password. A near miss of a choice is a typo and is shown (test_validate: 'olama')."""
    cfg = registry_dir("shipped")

    def edit(d: Any) -> None:
        d["providers"]["ollama"]["container"]["port"] = "hunter2"
        d["providers"]["ollama"]["type"] = "Tr0ub4dor"

    yaml_edit(cfg / "providers.yaml", edit)
    found = {e["path"]: e["message"] for e in errors(runner, cfg)}
    assert "(got a string of 7 characters)" in found["providers.ollama.container.port"]
    assert found["providers.ollama.type"].startswith("a string of 9 characters is not allowed")
    text = everything(run(runner, "validate", "-C", str(cfg)))
    assert "hunter2" not in text and "Tr0ub4dor" not in text


def test_a_secret_under_a_secret_name_is_reported_once(runner, registry_dir, yaml_edit):
    cfg = registry_dir("shipped")
    yaml_edit(cfg / "providers.yaml", _env("vllm-qwen", "HF_TOKEN", HF))
    found = errors(runner, cfg)
    assert [e["path"] for e in found] == ["providers.vllm-qwen.container.env.HF_TOKEN"]
    assert HF not in json.dumps(found)
