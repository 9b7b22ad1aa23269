"""The classes of issue #22 (tests/hostile_cases.py, also benchmarks/bench_hostile.py):
each hostile registry is refused (or warned about) at its key path with a file and a line,
no secret or terminal escape reaches any output or generated file, and nothing raises.
Then the legitimate neighbours of each class: still accepted without a word."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from stackctl.cli import cli
from stackctl.registry.value_checks import control_character, template_problem
from tests.hostile_cases import (
    CASES,
    RECEIVER,
    VQ,
    Case,
    M,
    P,
    S,
    both,
    build,
    judge,
    none,
    put,
)

LC = ("providers", "llama_cpp")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_registry_is_caught_where_it_is(tmp_path, case):
    verdict = judge(case, tmp_path / "stack")
    assert verdict.kinds == [], (verdict.kinds, verdict.problems)


def test_every_class_has_several_cases():
    kinds: dict[str, int] = {}
    for case in CASES:
        kinds[case.kind] = kinds.get(case.kind, 0) + 1
    assert len(kinds) >= 9 and min(kinds.values()) >= 3, kinds


def test_problem_line_shows_the_key(tmp_path):
    """The line a problem names is the one holding its key (found in the file's text)."""
    for case in [c for c in CASES if c.file in (P, M, S) and not c.targets][:20]:
        config = build(case, tmp_path / "stack")
        doc = _validate(config)
        problem = next(p for p in doc[case.severity + "s"] if p["path"].startswith(case.path))
        text = (config / case.file).read_text(encoding="utf-8").splitlines()
        last = problem["path"].split(".")[-1].split("[")[0].strip('"]')
        assert last.split("/")[0][:8] in text[problem["line"] - 1], (case.id, problem)


# -- the legitimate neighbours: no error, no warning ----------------------------------------

FINE = [
    Case("env-reads-own-variable", "ok", put(P, *VQ, "env", "HF_TOKEN", "${HF_TOKEN:-}"), P, ""),
    Case("env-nested-default", "ok", put(P, *VQ, "env", "STUB_NAME", "${A:-${B:-x}}"), P, ""),
    Case("command-dollar-escaped", "ok", put(P, *VQ, "command", ["--p", "$$HOME", "cost $5"]),
         P, ""),
    Case("command-script-newline", "ok",
         put(P, *VQ, "command", ["sh", "-c", "echo start\nexec server"]), P, ""),
    Case("description-dollar-newline", "ok",
         put(P, *LC, "description", "costs $0.50\nper million tokens"), P, ""),
    Case("pattern-anchor", "ok", put(M, "patterns", [{"pattern": "^smol.*$",
                                                       "provider": "llama_cpp"}]), M, ""),
    Case("mirror-of-upstream", "ok",
         put(S, "monitoring", "alertmanager", "image", "mirror.local:5000/prom/alertmanager:v0.29.0"),
         S, ""),
    Case("alertmanager-025-relayed", "ok", RECEIVER, S, ""),  # the local image: python3
    Case("alertmanager-029-url-file", "ok",
         both(RECEIVER, put(S, "monitoring", "alertmanager",
                            {"image": "prom/alertmanager:v0.29.0", "via": "wget"})), S, ""),
    Case("upstream-prometheus", "ok", put(S, "images", {"prometheus": "prom/prometheus:v3.7.3"}),
         S, ""),
    Case("local-manager-and-registry", "ok",
         put(S, "deploy", {"target": "swarm", "manager": "unix:///var/run/docker.sock",
                           "registry": "localhost:5000"}), S, ""),
    Case("loopback-tcp-manager", "ok",
         put(S, "deploy", {"target": "swarm", "manager": "tcp://127.0.0.1:2375"}), S, ""),
    Case("gateway-url-loopback", "ok",
         put(S, "deploy", {"target": "kubernetes", "gateway_url": "http://127.0.0.1:4000"}),
         S, ""),
    Case("own-namespace", "ok", put(S, "deploy", {"namespace": "llm-stack"}), S, ""),
    Case("own-secret-names", "ok",
         both(put(S, "gateway", "master_key_env", "MY_GATEWAY_KEY"),
              put(S, "cache", "password_env", "MY_CACHE_PASSWORD")), S, ""),
    Case("strong-dotenv", "ok", none, ".env", "",
         env="LITELLM_MASTER_KEY=sk-Zt4qW9pL2xV7bN3mK8rY1cH6\nREDIS_PASSWORD='u8#Lq2@xZ9!pR4vW'\n"),
    Case("provider-named-like-nothing-of-ours", "ok",
         both(put(P, "providers", "redis-llm", {"type": "openai", "base_url":
                                                  "https://api.openai.com/v1",
                                                  "env_var": "OPENAI_API_KEY",
                                                  "models": ["gpt-4o-mini"]}),
              put(M, "exact_matches", "gpt-4o-mini", {"provider": "redis-llm"})), P, ""),
]


@pytest.mark.parametrize("case", FINE, ids=[c.id for c in FINE])
def test_legitimate_neighbour_is_accepted_silently(tmp_path, case):
    doc = _validate(build(case, tmp_path / "stack"))
    # a pattern is only ever warned about as unenforced, whatever it holds
    warnings = [w for w in doc["warnings"] if "is not enforced" not in w["message"]]
    assert doc["ok"] and doc["errors"] == [] and warnings == [], doc


def _validate(config: Path) -> dict[str, Any]:
    from click.testing import CliRunner

    r = CliRunner().invoke(cli, ["validate", "-C", str(config), "--json"],
                           catch_exceptions=False)
    return json.loads(r.stdout)


# -- the pieces, as data --------------------------------------------------------------------

@pytest.mark.parametrize("value, wrong", [
    ("${HF_TOKEN}", None), ("${A:-x}", None), ("${A:?set A}", None), ("$$", None),
    ("a$b", None), ("$5", None), ("${A:-${B}}", None), ("$${literal", None),
    ("${", "not closed"), ("x${A", "not closed"), ("${}", "not a variable"),
    ("${1A}", "not a variable"), ("${A B}", "not a variable"), ("${A:-${}}", "not a variable"),
])
def test_compose_template_grammar(value, wrong):
    found = template_problem(value)
    assert (found is None) if wrong is None else (wrong in (found or "")), (value, found)


@pytest.mark.parametrize("text, allowed_newlines, char", [
    ("plain", False, None), ("tab\there", False, None), ("two\nlines", True, None),
    ("two\nlines", False, "U+000A"), ("\x1b[31m", True, "U+001B"), ("bell\a", True, "U+0007"),
    ("c1\x9b", True, "U+009B"), ("rtl\u202egnp.exe", True, "U+202E"), ("ünïcødé 名", False, None),
])
def test_control_characters(text, allowed_newlines, char):
    assert control_character(text, allowed_newlines) == char
