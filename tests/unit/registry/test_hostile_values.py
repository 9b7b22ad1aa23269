"""Values Compose or LiteLLM would reject or misread are caught by `validate` (issue #12).

Each case is a copy of a shipped registry with one value made hostile, applied with ruamel
round-trip (layout kept). The expected line is found by searching the edited file's text,
independently of stackctl. The generated LiteLLM config is read back with PyYAML, the YAML 1.1
reader LiteLLM itself uses. Fallback graphs are generated: large, dense, cyclic.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml as pyyaml

from stackctl.cli import cli
from stackctl.registry.load import load_registry
from stackctl.render.litellm import render_litellm
from stackctl.render.text import to_yaml
from tests.registry_edits import key, line_of, rename, set_in

# -- helpers --------------------------------------------------------------------------------


def validate_json(runner, cfg: Path) -> dict[str, Any]:
    r = runner.invoke(cli, ["validate", "-C", str(cfg), "--json"], catch_exceptions=False)
    assert "Traceback" not in r.output, r.output
    assert r.exit_code in (0, 1), r.output
    return json.loads(r.stdout)


# -- one hostile value, one located problem -------------------------------------------------

@dataclass(frozen=True)
class Case:
    id: str
    file: str
    edit: Callable[[Any], None]
    anchors: tuple[str, ...]
    path: str
    says: tuple[str, ...]  # fragments of message + hint
    severity: str = "error"


OLLAMA = ("providers", "ollama", "container")
CASES = [
    # Compose's service-name rule: the provider name is the service name
    Case("service-name-uppercase", "providers.yaml", rename("providers", "ollama", "Ollama"),
         (key("Ollama"),), "providers.Ollama",
         ("cannot be a Compose service name", "e.g. ollama")),
    Case("service-name-space", "providers.yaml", rename("providers", "vllm-qwen", "vllm qwen"),
         (key("vllm qwen"),), 'providers["vllm qwen"]', ("e.g. vllm-qwen",)),
    Case("profile-name", "providers.yaml", set_in(*OLLAMA, "profile", "gpu models"),
         (key("ollama"), key("profile")), "providers.ollama.container.profile",
         ("not a Compose profile name",)),
    Case("health-endpoint-relative", "providers.yaml",
         set_in(*OLLAMA, "health", "endpoint", "health"),
         (key("ollama"), key("health"), key("endpoint")),
         "providers.ollama.container.health.endpoint", ("should match pattern",)),
    # Docker's reference grammar
    Case("image-uppercase", "providers.yaml", set_in(*OLLAMA, "image", "ollama/Ollama:0.12.10"),
         (key("ollama"), key("image")), "providers.ollama.container.image",
         ("not a Docker image reference", "lowercase")),
    Case("image-bad-tag", "providers.yaml", set_in(*OLLAMA, "image", "ollama/ollama:-1"),
         (key("ollama"), key("image")), "providers.ollama.container.image",
         ("not a Docker image reference",)),
    Case("image-space-stack", "stack.yaml", set_in("gateway", "image", "litellm :v1"),
         (key("gateway"), key("image")), "gateway.image", ("not a Docker image reference",)),
    Case("image-override-double-slash", "stack.yaml",
         set_in("images", {"redis": "docker.io//redis:7"}),
         (key("images"), key("redis")), "images.redis", ("not a Docker image reference",)),
    # environment-variable names
    Case("env-key-not-a-name", "providers.yaml", set_in(*OLLAMA, "env", "OLLAMA-HOST", "x"),
         (key("ollama"), key("env"), key("OLLAMA-HOST")),
         "providers.ollama.container.env.OLLAMA-HOST",
         ("not an environment variable name", "letters, digits and '_'")),
    Case("master-key-env-not-a-name", "stack.yaml", set_in("gateway", "master_key_env", "1KEY"),
         (key("gateway"), key("master_key_env")), "gateway.master_key_env",
         ("must be the NAME of an environment variable",)),
    # paths with ':' or NUL, host paths
    Case("config-dir-colon", "stack.yaml", set_in("monitoring", "config_dir", "../mon:itor"),
         (key("monitoring"), key("config_dir")), "monitoring.config_dir",
         ("cannot contain ':'",)),
    Case("env-file-nul", "stack.yaml", set_in("env_file", "../.e\0nv"),
         (key("project"),), "env_file", ("NUL byte",)),
    Case("volume-colon", "providers.yaml", set_in(*OLLAMA, "volumes", {"models:rw": "/m"}),
         (key("ollama"), key("volumes"), key("models:rw")),
         "providers.ollama.container.volumes.models:rw", ("contains ':'", "source:target")),
    Case("volume-relative-target", "providers.yaml",
         set_in(*OLLAMA, "volumes", {"ollama-models": "root/.ollama"}),
         (key("ollama"), key("volumes"), key("ollama-models")),
         "providers.ollama.container.volumes.ollama-models", ("is not absolute",)),
    Case("volume-docker-socket", "providers.yaml",
         set_in(*OLLAMA, "volumes", {"/var/run/docker.sock": "/var/run/docker.sock"}),
         (key("ollama"), key("volumes"), key("/var/run/docker.sock")),
         "providers.ollama.container.volumes./var/run/docker.sock",
         ("the whole host", "root on the Docker engine")),
    Case("volume-root", "providers.yaml", set_in(*OLLAMA, "volumes", {"/": "/host"}),
         (key("ollama"), key("volumes"), key("/")),
         "providers.ollama.container.volumes./", ("the whole host",)),
    Case("volume-host-path", "providers.yaml",
         set_in(*OLLAMA, "volumes", {"./models": "/root/.ollama"}),
         (key("ollama"), key("volumes"), key("./models")),
         "providers.ollama.container.volumes../models", ("is a host path", "named volume"),
         "warning"),
    # NaN/Inf, negative and out-of-range numbers, durations
    Case("interval-nan", "providers.yaml", set_in(*OLLAMA, "health", "interval", float("nan")),
         (key("ollama"), key("health"), key("interval")),
         "providers.ollama.container.health.interval", ("finite number",)),
    Case("router-timeout-inf", "stack.yaml",
         set_in("gateway", "router", {"timeout": float("inf")}),
         (key("gateway"), key("timeout")), "gateway.router.timeout", ("finite number",)),
    Case("grace-huge", "providers.yaml", set_in(*OLLAMA, "stop_grace_period", 1e9),
         (key("ollama"), key("stop_grace_period")),
         "providers.ollama.container.stop_grace_period", ("less than or equal to 604800",)),
    Case("ttl-negative", "stack.yaml", set_in("cache", "ttl", -5),
         (key("cache"), key("ttl")), "cache.ttl", ("greater than 0",)),
    Case("weight-nan", "model-mappings.yaml",
         set_in("load_balancing", {"lb": {"providers": [
             {"provider": "ollama", "weight": float("nan")}]}}),
         (key("load_balancing"), key("weight")), "load_balancing.lb.providers[0].weight",
         ("finite number",)),
    Case("duration-overflow", "stack.yaml",
         set_in("monitoring", "scrape_interval", "99999999999h"),
         (key("monitoring"), key("scrape_interval")), "monitoring.scrape_interval",
         ("should match pattern",)),
    # bind address and output_dir
    Case("bind-hostname", "stack.yaml", set_in("bind_address", "localhost"),
         (key("bind_address"),), "bind_address", ("must be an IP address", "127.0.0.1")),
    Case("bind-everywhere", "stack.yaml", set_in("bind_address", "0.0.0.0"),
         (key("bind_address"),), "bind_address",
         ("beyond this machine", "use 127.0.0.1"), "warning"),
    Case("output-dir-outside", "stack.yaml", set_in("output_dir", "../../elsewhere"),
         (key("project"),), "output_dir", ("outside the project", "keep it inside"), "warning"),
    # patterns the `re` module refuses, or too large to read
    Case("pattern-overflow", "model-mappings.yaml",
         set_in("patterns", [{"pattern": "a{99999999999}", "provider": "ollama"}]),
         (key("patterns"), key("pattern")), "patterns[0].pattern",
         ("does not compile", "repetition number is too large")),
    Case("pattern-deep-nesting", "model-mappings.yaml",
         set_in("patterns", [{"pattern": "(" * 499 + ")" * 499, "provider": "ollama"}]),
         (key("patterns"), key("pattern")), "patterns[0].pattern", ("does not compile",)),
    Case("pattern-too-long", "model-mappings.yaml",
         set_in("patterns", [{"pattern": "a" * 5000, "provider": "ollama"}]),
         (key("patterns"), key("pattern")), "patterns[0].pattern",
         ("5000 characters long, more than 1000",)),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_value_is_located(runner, registry_dir, yaml_edit, case):
    cfg = registry_dir("shipped")
    path = cfg / case.file
    if not path.exists():
        path.write_text("project: stackctl\n", encoding="utf-8")
    yaml_edit(path, case.edit)
    doc = validate_json(runner, cfg)
    found = [p for p in doc[case.severity + "s"] if p["path"] == case.path]
    assert found, f"no {case.severity} at {case.path}: {doc['errors'] + doc['warnings']}"
    problem = found[0]
    text = problem["message"] + " " + (problem["hint"] or "")
    for fragment in case.says:
        assert fragment in text, text
    assert problem["file"].endswith(case.file)
    if case.anchors[0] != key("project"):  # keys absent from the file: located at its top
        assert problem["line"] == line_of(path, *case.anchors), problem
    if case.severity == "error":
        assert doc["ok"] is False


def test_mount_warnings_leave_named_volumes_alone(runner, registry_dir):
    """The shipped registries mount only named volumes and bind to 127.0.0.1: no warning."""
    for name in ("shipped", "offline"):
        doc = validate_json(runner, registry_dir(name))
        assert doc["ok"] is True and doc["warnings"] == [], doc


def test_ipv6_bind_address_is_accepted(runner, registry_dir, yaml_edit):
    cfg = registry_dir("shipped")
    yaml_edit(cfg / "stack.yaml", set_in("bind_address", "::1"))
    doc = validate_json(runner, cfg)
    assert doc["ok"] is True and doc["warnings"] == [], doc


# -- model names a YAML 1.1 reader would not read as strings -------------------------------

YAML11_NAMES = ["yes", "no", "on", "Off", "y", "1e3", "0x1F", "1_000", "12:30", "~", "null",
                "017", ".5", "-1", ".inf", "2024-01-02", "<<", "="]


def test_yaml11_model_names_stay_strings_for_litellm(registry_dir, yaml_edit):
    cfg = registry_dir("shipped")

    def edit(data: Any) -> None:
        for name in YAML11_NAMES:
            data["exact_matches"][name] = {"provider": "ollama", "backend_model": "llama3.1:latest"}
        data["exact_matches"]["yes"]["aliases"] = ["no-alias", "off"]
        data["exact_matches"].pop("off", None)
        data["fallback_chains"]["1e3"] = {"chain": ["12:30", "~", "0x1F"]}

    yaml_edit(cfg / "model-mappings.yaml", edit)
    reg = load_registry(cfg)
    text = to_yaml(render_litellm(reg), ["test"])
    config = pyyaml.safe_load(text)  # LiteLLM reads its config with PyYAML (YAML 1.1)
    names = [m["model_name"] for m in config["model_list"]]
    for name in YAML11_NAMES:
        assert name in names, (name, names)
    assert all(isinstance(n, str) for n in names)
    settings = config["router_settings"]
    assert {"1e3": ["12:30", "~", "0x1F"]} in settings["fallbacks"]
    assert settings["model_group_alias"]["off"] == "yes"
    # and the same text is one YAML 1.2 reader's strings too (Compose, ruamel)
    from ruamel.yaml import YAML
    assert [m["model_name"] for m in YAML(typ="safe").load(text)["model_list"]] == names


# -- fallback graphs: fast, and one report per loop ----------------------------------------

def _big_registry(cfg: Path, models: int, fanout: int, cyclic: bool, yaml_edit) -> list[str]:
    """`models` exact matches on ollama, each falling back to `fanout` others: only to later
    ones (a DAG), or to later ones wrapping around (every model in one big loop)."""
    names = [f"m{i:04d}" for i in range(models)]

    def edit(data: Any) -> None:
        for name in names:
            data["exact_matches"][name] = {"provider": "ollama",
                                           "backend_model": "llama3.1:latest"}
        for i, name in enumerate(names):
            targets = [names[(i + k) % models] for k in range(1, fanout + 1)]
            if not cyclic:
                targets = [t for t in targets if t > name]
            if targets:
                data["fallback_chains"][name] = {"chain": targets}

    yaml_edit(cfg / "model-mappings.yaml", edit)
    return names


def _timed_validate(runner, cfg: Path) -> tuple[dict[str, Any], float]:
    start = time.perf_counter()
    doc = validate_json(runner, cfg)
    return doc, time.perf_counter() - start


def test_large_dense_fallback_graph_validates_in_about_a_second(runner, registry_dir, yaml_edit):
    cfg = registry_dir("shipped")
    _big_registry(cfg, 300, 30, cyclic=False, yaml_edit=yaml_edit)
    doc, seconds = _timed_validate(runner, cfg)
    assert doc["ok"] is True, doc["errors"][:3]
    # ~0.5 s alone on the 2-core machine (most of it YAML parsing); headroom for a busy one
    assert seconds < 3, f"validate took {seconds:.2f} s"


def test_dense_cyclic_graph_reports_each_loop_once_and_fast(runner, registry_dir, yaml_edit):
    cfg = registry_dir("shipped")
    _big_registry(cfg, 300, 30, cyclic=True, yaml_edit=yaml_edit)
    doc, seconds = _timed_validate(runner, cfg)
    cycles = [p for p in doc["errors"] if p["message"].startswith("fallback cycle")]
    # 300 models, each reaching the next 30: one strongly connected loop, one report (the
    # number of elementary cycles and of paths through it is astronomically large)
    assert len(cycles) == 1, [p["message"][:80] for p in cycles]
    assert cycles[0]["path"] == "fallback_chains.m0000"
    assert seconds < 3, f"validate took {seconds:.2f} s"
    # the cycle shown is real: each step is in the previous model's chain
    steps = cycles[0]["message"].removeprefix("fallback cycle: ").split(" → ")
    assert steps[0] == steps[-1] == "m0000"
    chains = pyyaml.safe_load((cfg / "model-mappings.yaml").read_text())["fallback_chains"]
    for a, b in zip(steps, steps[1:], strict=False):
        assert b in chains[a]["chain"], (a, b)


def test_cycle_reached_by_many_paths_is_reported_once(runner, registry_dir, yaml_edit):
    """A fan-in of many paths into one loop, plus a second separate loop: two reports."""
    cfg = registry_dir("shipped")

    def edit(data: Any) -> None:
        em, fc = data["exact_matches"], data["fallback_chains"]
        for name in ("a", "b", "c", "x", "y", *[f"s{i}" for i in range(20)]):
            em[name] = {"provider": "ollama", "backend_model": "llama3.1:latest"}
        for i in range(20):  # s0..s19 each reach the a → b → c → a loop by two paths
            fc[f"s{i}"] = {"chain": ["a", "b"] + ([f"s{i + 1}"] if i < 19 else [])}
        fc["a"] = {"chain": ["b"]}
        fc["b"] = {"chain": ["c"]}
        fc["c"] = {"chain": ["a"]}
        em["x"]["fallback"] = "y"  # the exact match's own `fallback` form
        em["y"]["fallback"] = "x"

    yaml_edit(cfg / "model-mappings.yaml", edit)
    doc = validate_json(runner, cfg)
    cycles = sorted((p["path"], p["message"]) for p in doc["errors"]
                    if p["message"].startswith("fallback cycle"))
    assert cycles == [("exact_matches.x.fallback", "fallback cycle: x → y → x"),
                      ("fallback_chains.a", "fallback cycle: a → b → c → a")]
