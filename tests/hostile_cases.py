"""Hostile registries by class (issue #22): one change each to the offline example, and
what a careful operator expects `validate`/`generate` to do with it.

Shared by the unit tests (tests/unit/registry/test_hostile_classes.py) and the report
(benchmarks/bench_hostile.py): one list of cases, one verdict. A case is "accepted
dangerous" when the expected error (or warning) is not reported at its key path, with a
file and a line; "leaked" when a planted secret, or a terminal escape, reaches any output
or generated file.
"""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from ruamel.yaml import YAML

from stackctl.cli import cli
from tests.paths import REPO

OFFLINE = Path("examples/offline/config")
FILES = ("providers.yaml", "model-mappings.yaml", "stack.yaml")
P, M, S, ENV = "providers.yaml", "model-mappings.yaml", "stack.yaml", ".env"
SECRET = "sk-live-" + "Zq7" * 12  # planted: must never be echoed
ESC = "\x1b"

Edit = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class Case:
    id: str
    kind: str  # the class of the issue it belongs to
    edit: Edit
    file: str  # where the problem must be reported
    path: str  # key path it must be reported at (a prefix)
    severity: str = "error"
    env: str | None = None  # the .env text beside the config folder
    folder: str = "config"  # name of the -C folder
    targets: tuple[str, ...] = ()  # generate --target …
    secret: str | None = None  # must appear in no output and no generated file


def put(file: str, *keys_value: Any) -> Edit:
    *keys, value = keys_value

    def edit(files: dict[str, Any]) -> None:
        node = files[file]
        for k in keys[:-1]:
            node = node.setdefault(k, {})
        node[keys[-1]] = value
    return edit


def rename(file: str, *keys_old_new: str) -> Edit:
    *keys, old, new = keys_old_new

    def edit(files: dict[str, Any]) -> None:
        node = files[file]
        for k in keys:
            node = node[k]
        node[new] = node.pop(old)
    return edit


def both(*edits: Edit) -> Edit:
    def edit(files: dict[str, Any]) -> None:
        for e in edits:
            e(files)
    return edit


def none(files: dict[str, Any]) -> None:
    """No change to the registry (the case is in .env or in the folder's name)."""


LC = ("providers", "llama_cpp")
LCC = LC + ("container",)
VQ = ("providers", "vllm-qwen", "container")
RECEIVER = put(S, "monitoring", "alerts", "receivers",
               [{"name": "ops", "webhook_url_env": "ALERT_WEBHOOK_URL"}])
NEW_RELIC = "NRAK-" + "7Q2XK9M4B1ZC8WD5R3T6Y0UPLVH"
LOWER40 = "q8x3k2m9v7b1n4c6z0l5j8h2g7f3d9s1a4p6w0e2"
STRIPE = "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc"


def _rename_provider(new: str) -> Edit:
    """llama_cpp renamed, and its model's mapping with it."""
    return both(rename(P, "providers", "llama_cpp", new),
                put(M, "exact_matches", "smollm2", "provider", new))


CASES: list[Case] = [
    # -- secrets reach registry-chosen code --------------------------------------------------
    Case("env-var-master-key", "secret-reach", put(P, *LC, "env_var", "LITELLM_MASTER_KEY"),
         P, "providers.llama_cpp.env_var"),
    Case("env-var-grafana-password", "secret-reach",
         put(P, *LC, "env_var", "GRAFANA_ADMIN_PASSWORD"), P, "providers.llama_cpp.env_var"),
    Case("env-var-webhook", "secret-reach",
         both(RECEIVER, put(P, *LC, "env_var", "ALERT_WEBHOOK_URL")),
         P, "providers.llama_cpp.env_var"),
    Case("health-endpoint-reads-key", "secret-reach",
         put(P, *LCC, "health", "endpoint", "/health?k=${LITELLM_MASTER_KEY}"),
         P, "providers.llama_cpp.container.health.endpoint"),
    Case("health-expect-reads-shell", "secret-reach",
         put(P, *LCC, "health", "expect", "${HOME}"),
         P, "providers.llama_cpp.container.health.expect"),
    Case("served-model-name-reads-key", "secret-reach",
         put(P, *LC, "models", [{"name": "${LITELLM_MASTER_KEY}"}]),
         P, "providers.llama_cpp.models[0].name"),
    Case("volume-target-reads-key", "secret-reach",
         put(P, *VQ, "volumes", {"gpu0-sim": "/gpu/${REDIS_PASSWORD}"}),
         P, "providers.vllm-qwen.container.volumes.gpu0-sim"),
    Case("group-name-reads-shell", "secret-reach",
         both(put(P, *VQ, "gpu", "exclusive_group", "g$USER"),
              put(P, "providers", "vllm-dolphin", "container", "gpu", "exclusive_group",
                  "g$USER"), put(S, "gpu_groups", {})),
         P, "providers.vllm-qwen.container.gpu.exclusive_group"),
    Case("dashboards-dir-reads-shell", "secret-reach",
         put(S, "monitoring", "dashboards_dir", "${HOME}/dash"), S, "monitoring.dashboards_dir"),
    Case("model-name-os-environ", "secret-reach",
         rename(M, "exact_matches", "smollm2", "os.environ/LITELLM_MASTER_KEY"),
         M, "exact_matches.os.environ/LITELLM_MASTER_KEY"),
    Case("backend-model-os-environ", "secret-reach",
         put(M, "exact_matches", "smollm2", "backend_model", "os.environ/REDIS_PASSWORD"),
         M, "exact_matches.smollm2.backend_model"),
    Case("cache-namespace-os-environ", "secret-reach",
         put(S, "cache", "namespace", "os.environ/LITELLM_MASTER_KEY"), S, "cache.namespace"),
    Case("grafana-env-is-master-key", "secret-reach",
         put(S, "monitoring", "grafana_password_env", "LITELLM_MASTER_KEY"),
         S, "monitoring.grafana_password_env"),
    Case("webhook-env-is-grafana", "secret-reach",
         put(S, "monitoring", "alerts", "receivers",
             [{"name": "ops", "webhook_url_env": "GRAFANA_ADMIN_PASSWORD"}]),
         S, "monitoring.alerts.receivers[0].webhook_url_env"),
    # -- weak or predictable master key -------------------------------------------------------
    Case("master-key-env-home", "weak-key", put(S, "gateway", "master_key_env", "HOME"),
         S, "gateway.master_key_env"),
    Case("master-key-env-generated", "weak-key",
         put(S, "gateway", "master_key_env", "PROMETHEUS_MULTIPROC_DIR"),
         S, "gateway.master_key_env"),
    Case("cache-password-env-path", "weak-key", put(S, "cache", "password_env", "PATH"),
         S, "cache.password_env"),
    Case("grafana-env-user", "weak-key", put(S, "monitoring", "grafana_password_env", "USER"),
         S, "monitoring.grafana_password_env"),
    Case("provider-env-var-pwd", "weak-key", put(P, *LC, "env_var", "PWD"),
         P, "providers.llama_cpp.env_var"),
    Case("dotenv-example-key", "weak-key", none, ENV, "LITELLM_MASTER_KEY",
         env="LITELLM_MASTER_KEY=sk-1234\n"),
    Case("dotenv-changeme", "weak-key", none, ENV, "LITELLM_MASTER_KEY",
         env="# mine\nLITELLM_MASTER_KEY=changeme\n"),
    Case("dotenv-short-password", "weak-key", none, ENV, "REDIS_PASSWORD",
         env="REDIS_PASSWORD=password\n"),
    # -- privileged slots ---------------------------------------------------------------------
    Case("override-gateway-image", "privileged",
         put(S, "images", {"litellm": "evil/gateway:1.0"}), S, "images.litellm", "warning"),
    Case("override-prometheus-image", "privileged",
         put(S, "images", {"prometheus": "evil/prom:1.0"}), S, "images.prometheus", "warning"),
    Case("alertmanager-image", "privileged",
         put(S, "monitoring", "alertmanager", "image", "evil/am:1.0"),
         S, "monitoring.alertmanager.image", "warning"),
    # Alertmanager < 0.26 shows webhook URLs on its status API: its relay needs python3
    Case("alertmanager-025-no-python", "privileged",
         both(RECEIVER, put(S, "monitoring", "alertmanager",
                            {"image": "prom/alertmanager:v0.25.0", "via": "wget"})),
         S, "monitoring.alertmanager.image"),
    Case("alertmanager-025-override-no-python", "privileged",
         both(RECEIVER, put(S, "monitoring", "alertmanager", "via", "wget"),
              put(S, "images", {"alertmanager": "quay.io/prometheus/alertmanager:v0.24.0"})),
         S, "images.alertmanager"),
    Case("gateway-image-fork", "privileged", put(S, "gateway", "image", "evil/litellm-fork:1"),
         S, "gateway.image", "warning"),
    Case("dashboards-dir-root", "privileged", put(S, "monitoring", "dashboards_dir", "/"),
         S, "monitoring.dashboards_dir"),
    Case("config-dir-etc", "privileged", put(S, "monitoring", "config_dir", "/etc"),
         S, "monitoring.config_dir"),
    Case("dashboards-dir-holds-env", "privileged", put(S, "monitoring", "dashboards_dir", ".."),
         S, "monitoring.dashboards_dir"),
    Case("config-dir-climbs-to-root", "privileged",
         put(S, "monitoring", "config_dir", "../" * 40), S, "monitoring.config_dir"),
    Case("env-file-outside", "privileged", put(S, "env_file", "/tmp/elsewhere/.env"),
         S, "env_file", "warning"),
    Case("volume-etc", "privileged", put(P, *VQ, "volumes", {"/etc": "/gpu"}),
         P, "providers.vllm-qwen.container.volumes./etc"),
    Case("volume-holds-env", "privileged", put(P, *VQ, "volumes", {"../": "/gpu"}),
         P, "providers.vllm-qwen.container.volumes"),
    # -- reserved names -----------------------------------------------------------------------
    Case("provider-named-redis", "reserved", _rename_provider("redis"), P, "providers.redis"),
    Case("provider-named-litellm", "reserved", _rename_provider("litellm"),
         P, "providers.litellm"),
    Case("provider-named-prometheus", "reserved", _rename_provider("prometheus"),
         P, "providers.prometheus"),
    Case("provider-named-alloy", "reserved", _rename_provider("alloy"), P, "providers.alloy"),
    Case("volume-named-prometheus-data", "reserved",
         put(P, *VQ, "volumes", {"prometheus-data": "/gpu"}),
         P, "providers.vllm-qwen.container.volumes.prometheus-data"),
    Case("webhook-env-secret-name", "reserved",
         put(S, "monitoring", "alerts", "receivers",
             [{"name": "ops", "webhook_url_env": "litellm_master_key"}]),
         S, "monitoring.alerts.receivers[0].webhook_url_env"),
    # -- generated text escapes ---------------------------------------------------------------
    Case("folder-name-newline", "escapes", none, "generated", "",
         folder="cfg\nservices:\n  evil:\n    image: evil/x:1\n#"),
    Case("model-name-escape", "escapes",
         rename(M, "exact_matches", "smollm2", f"smol{ESC}[2J{ESC}]0;pwned\a"),
         M, "exact_matches"),
    Case("description-escape", "escapes",
         put(P, *LC, "description", f"ok{ESC}[31mred"), P, "providers.llama_cpp.description"),
    Case("model-name-newline", "escapes",
         put(M, "exact_matches", "smollm2", "backend_model", "smollm2\nerror: forged"),
         M, "exact_matches.smollm2.backend_model"),
    Case("alias-escape", "escapes",
         put(M, "exact_matches", "smollm2", "aliases", [f"a{ESC}[8m"]),
         M, "exact_matches.smollm2.aliases[0]"),
    # -- deploy targets -----------------------------------------------------------------------
    Case("swarm-manager-remote", "deploy",
         put(S, "deploy", {"target": "swarm", "manager": "tcp://203.0.113.5:2375"}),
         S, "deploy.manager", "warning"),
    Case("swarm-manager-ssh", "deploy",
         put(S, "deploy", {"target": "swarm", "manager": "ssh://ops@swarm.example.net"}),
         S, "deploy.manager", "warning"),
    Case("registry-remote", "deploy",
         put(S, "deploy", {"target": "swarm", "registry": "registry.example.com:5000"}),
         S, "deploy.registry", "warning"),
    Case("gateway-url-remote", "deploy",
         put(S, "deploy", {"target": "kubernetes", "gateway_url": "https://gw.example.com"}),
         S, "deploy.gateway_url", "warning"),
    Case("namespace-kube-system", "deploy",
         put(S, "deploy", {"target": "kubernetes", "namespace": "kube-system"}),
         S, "deploy.namespace"),
    Case("namespace-kube-public", "deploy", put(S, "deploy", {"namespace": "kube-public"}),
         S, "deploy.namespace"),
    # -- tracebacks (generate --target kubernetes) --------------------------------------------
    Case("k8s-name-starts-with-digit", "traceback", _rename_provider("1llm"),
         P, "providers.1llm", targets=("kubernetes",)),
    Case("k8s-name-too-long", "traceback", _rename_provider("l" * 70),
         P, "providers." + "l" * 70, targets=("kubernetes",)),
    Case("k8s-names-collide", "traceback", _rename_provider("vllm_qwen"),
         P, "providers.vllm_qwen", targets=("kubernetes",)),
    Case("k8s-volume-name-digit", "traceback", put(P, *VQ, "volumes", {"9models": "/gpu"}),
         P, "providers.vllm-qwen.container.volumes.9models", targets=("kubernetes",)),
    Case("k8s-volume-dot", "traceback",
         both(put(P, *VQ, "volumes", {"./": "/gpu"}), put(S, "deploy", {"target": "kubernetes"})),
         P, "providers.vllm-qwen.container.volumes", "warning", targets=("kubernetes",)),
    # -- detector misses ----------------------------------------------------------------------
    Case("new-relic-key", "detector", put(P, *LC, "description", f"key {NEW_RELIC}"),
         P, "providers.llama_cpp.description", secret=NEW_RELIC),
    Case("lowercase-40", "detector", put(P, *VQ, "env", "STUB_NAME", LOWER40),
         P, "providers.vllm-qwen.container.env.STUB_NAME", secret=LOWER40),
    Case("stripe-key", "detector", put(P, *VQ, "command", ["--x", STRIPE]),
         P, "providers.vllm-qwen.container.command", secret=STRIPE),
    Case("dotenv-bad-template", "detector", none, ENV, "LITELLM_MASTER_KEY",
         env=f"LITELLM_MASTER_KEY=${{{SECRET}\n", secret=SECRET),
    Case("dotenv-bad-key", "detector", none, ENV, "", env=f"A=1\n'{SECRET}'=1\n",
         secret=SECRET),
    Case("dotenv-key-value-form", "detector", none, ENV, "", env=f"{SECRET}: 1\n",
         secret=SECRET),
    # -- left from #12: `$` in command and env as Compose reads it ----------------------------
    Case("env-unclosed-brace", "interpolation", put(P, *VQ, "env", "STUB_NAME", "x${STUB"),
         P, "providers.vllm-qwen.container.env.STUB_NAME"),
    Case("env-bad-name", "interpolation", put(P, *VQ, "env", "STUB_NAME", "${1X}"),
         P, "providers.vllm-qwen.container.env.STUB_NAME"),
    Case("command-bad-brace", "interpolation", put(P, *VQ, "command", ["--a", "${}"]),
         P, "providers.vllm-qwen.container.command[1]"),
]


# -- running a case -------------------------------------------------------------------------

def load_offline() -> dict[str, Any]:
    yaml = YAML(typ="safe")
    return {n: yaml.load((REPO / OFFLINE / n).read_text()) for n in FILES}


def build(case: Case, root: Path, base: dict[str, Any] | None = None) -> Path:
    """The offline example under `root` (same layout as in the repo), the case applied;
    returns the config folder."""
    shutil.rmtree(root, ignore_errors=True)
    files = copy.deepcopy(base or load_offline())
    case.edit(files)
    config = root / OFFLINE.parent / case.folder
    config.mkdir(parents=True)
    yaml = YAML(typ="safe")
    yaml.allow_unicode = True
    for name, data in files.items():
        with (config / name).open("w", encoding="utf-8") as fh:
            yaml.dump(data, fh)
    for folder in ("monitoring", "grafana-dashboards"):
        shutil.copytree(REPO / folder, root / folder)
    if case.env is not None:
        (config.parent / ".env").write_text(case.env, encoding="utf-8")
    return config


@dataclass
class Verdict:
    found: bool = False  # the expected problem, located
    unlocated: list[str] = field(default_factory=list)
    leaked: bool = False
    crash: str | None = None
    problems: list[dict] = field(default_factory=list)

    @property
    def kinds(self) -> list[str]:
        return ((["accepted dangerous"] if not self.found else [])
                + (["unlocated refusal"] if self.unlocated else [])
                + (["secret or escape leaked"] if self.leaked else [])
                + ([f"traceback {self.crash}"] if self.crash else []))


def judge(case: Case, root: Path, base: dict[str, Any] | None = None) -> Verdict:
    config = build(case, root, base)
    runner = CliRunner()
    v = runner.invoke(cli, ["validate", "-C", str(config), "--json"])
    args = ["generate", "-C", str(config)] + [a for t in case.targets for a in ("--target", t)]
    g = runner.invoke(cli, args)
    out = Verdict()
    for r in (v, g):
        if r.exception is not None and not isinstance(r.exception, SystemExit):
            out.crash = type(r.exception).__name__
    try:
        doc = json.loads(v.stdout)
    except ValueError:
        doc = {"errors": [], "warnings": []}
    out.problems = doc.get("errors", []) + doc.get("warnings", [])
    for e in doc.get("errors", []):
        if not e.get("file") or not e.get("line"):
            out.unlocated.append(e.get("message", "?"))
    texts = [v.output, g.output] + [p.read_text(errors="replace")
                                    for p in (config.parent / "compose").rglob("*")
                                    if p.is_file()]
    out.leaked = any(ESC in t or (case.secret and case.secret in t) for t in texts)
    if case.file == "generated":  # the header stays a comment: the document starts after it
        compose = config.parent / "compose" / "compose.yaml"
        lines = compose.read_text().splitlines() if compose.exists() else []
        head = [line for line in lines if not line.startswith("#")][:1]
        out.found = g.exit_code == 0 and head == ["name: stackctl-offline"] and \
            "evil" not in YAML(typ="safe").load(compose.read_text())["services"]
        return out
    wanted = doc.get(case.severity + "s", [])
    located = [p for p in wanted if p["file"].endswith(case.file) and p.get("line")
               and p["path"].startswith(case.path)]
    if case.targets and case.severity == "error":  # generate for the target refuses, located
        located += [line for line in g.output.splitlines()
                    if f"{case.file}:" in line and f"error: {case.path}" in line] \
            if g.exit_code == 1 else []
    out.found = bool(located)
    return out
