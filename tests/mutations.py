"""Hostile edits of a valid registry, and what stackctl must do with them.

Shared by the property-based tests (tests/unit/registry/test_properties.py, driven by
hypothesis) and the report (benchmarks/bench_hostile.py, thousands of seeded runs): one
mutation engine, one verdict.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from ruamel.yaml import YAML

from stackctl.cli import cli
from tests.paths import CONFIGS

REGISTRIES = CONFIGS
FILES = ("providers.yaml", "model-mappings.yaml", "stack.yaml")
SECRET = "sk-live-" + "Zq7" * 12  # planted: must never be echoed
HOSTILE: list[Any] = [
    None, True, False, 0, -1, 2**70, 10**30, 1.5, float("nan"), float("inf"), "", " ", "x" * 5000,
    "a:b", "../../etc/passwd", "/", "/var/run/docker.sock", "${LITELLM_MASTER_KEY}",
    "${UNSET:?" + SECRET + "}", "http://user:" + SECRET + "@host", SECRET, "[", "*", "(a+)+$",
    "yes", "0x1F", "12:30", "NaN", "-5s", "0.0.0.0", "ünï\u0000cødé", [], {}, [1, [2, [3]]],
    {"<<": {"a": 1}}, {"k": SECRET},
]
KEYS: list[Any] = ["unknown", "", "int", "list[str]", "a.b", "x y", None, True, 3, SECRET]


def _paths(node: Any, here: tuple = ()) -> list[tuple]:
    out = [here]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, here + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, here + (i,))
    return out


def _parent(tree: Any, path: tuple) -> Any:
    for k in path[:-1]:
        tree = tree[k]
    return tree


def mutate(files: dict[str, Any], rnd: random.Random, edits: int = 1) -> list[str]:
    """Apply `edits` random hostile edits to the parsed files in place; describe them."""
    done = []
    for _ in range(edits):
        name = rnd.choice([n for n in FILES if n in files])
        paths = [p for p in _paths(files[name]) if p]
        if not paths:
            files[name] = rnd.choice(HOSTILE)
            done.append(f"{name}: whole file replaced")
            continue
        path = rnd.choice(paths)
        parent, key = _parent(files[name], path), path[-1]
        kind = rnd.choice(["value", "value", "value", "delete", "add", "rename"])
        if kind == "value":
            parent[key] = rnd.choice(HOSTILE)
        elif kind == "delete":
            del parent[key]
        elif kind == "add" and isinstance(parent, dict):
            parent[rnd.choice(KEYS)] = rnd.choice(HOSTILE)
        elif kind == "rename" and isinstance(parent, dict):
            parent[rnd.choice(KEYS)] = parent.pop(key)
        else:
            parent[key] = rnd.choice(HOSTILE)
            kind = "value"
        done.append(f"{name}: {kind} at {'.'.join(map(str, path))}")
    return done


def load(registry: str) -> dict[str, Any]:
    yaml = YAML(typ="safe")
    return {n: yaml.load((REGISTRIES[registry] / n).read_text()) for n in FILES
            if (REGISTRIES[registry] / n).exists()}


def write(files: dict[str, Any], config: Path) -> None:
    yaml = YAML(typ="safe")
    yaml.allow_unicode = True
    config.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        with (config / name).open("w", encoding="utf-8") as fh:
            yaml.dump(data, fh)


@dataclass
class Verdict:
    exit_codes: tuple[int, ...]
    crash: str | None = None  # an exception that escaped: a traceback for the user
    unlocated: list[str] = field(default_factory=list)  # errors without file and line/path
    leaked: bool = False  # the planted secret in some output
    changed_by_failure: bool = False  # a failing generate changed an output file
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return (self.crash is None and not self.unlocated and not self.leaked
                and not self.changed_by_failure and set(self.exit_codes) <= {0, 1})


def _snapshot(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()} if folder.exists() else {}


def judge(files: dict[str, Any], root: Path, registry: str) -> Verdict:
    """validate --json, then generate, on the mutated files under `root`."""
    shutil.rmtree(root, ignore_errors=True)
    config = root / "config"
    write(files, config)
    shutil.copytree(REGISTRIES[registry].parent / "compose", root / "compose")  # the old set
    runner = CliRunner()
    t = time.monotonic()
    v = runner.invoke(cli, ["validate", "-C", str(config), "--json"])
    before = _snapshot(root / "compose")
    g = runner.invoke(cli, ["generate", "-C", str(config)])
    verdict = Verdict(exit_codes=(v.exit_code, g.exit_code), seconds=time.monotonic() - t)
    for r in (v, g):
        if r.exception is not None and not isinstance(r.exception, SystemExit):
            verdict.crash = f"{type(r.exception).__name__}: {str(r.exception)[:200]}"
    outputs = v.output + g.output + "".join(p.read_text(errors="replace")
                                            for p in (root / "compose").rglob("*") if p.is_file())
    verdict.leaked = SECRET in outputs
    if g.exit_code != 0:
        verdict.changed_by_failure = _snapshot(root / "compose") != before
    try:
        doc = json.loads(v.stdout)
    except ValueError:
        doc = {}
    for e in doc.get("errors", []):
        if not e.get("file") or not (e.get("line") or e.get("path")):
            verdict.unlocated.append(e.get("message", "?"))
    return verdict
