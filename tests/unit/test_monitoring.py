"""Checks of the static monitoring files (monitoring/**, grafana-dashboards/**).

The system stackctl replaces alerted on LiteLLM metrics that do not exist, so its
alerts could never fire. Here every metric and label name used by an alert rule or a
dashboard query must be in an allow-list of names seen on a real LiteLLM proxy, the
rules' behaviour is pinned by `promtool test rules`, and the configs go through
promtool when it is installed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[2]
MON = ROOT / "monitoring"
PROM_DIR = MON / "prometheus"
DASHBOARDS = ROOT / "grafana-dashboards"
SECRET_PATH = "/run/secrets/litellm_master_key"

# --------------------------------------------------------------------------------------
# Allow-list: metric families -> (type, labels).
#
# LiteLLM: every family and label set below was seen on /metrics/ of a real LiteLLM
# 1.106.2 proxy started with `litellm_settings.callbacks: ["prometheus"]` and
# prometheus_client 0.26 (deployments: a mock_response one, two pointing at a closed
# port, local cache, fallbacks), after chat, streaming, failing, fallback, failed-
# fallback and cache-hit requests; the families are also registered in
# litellm/integrations/prometheus.py (litellm_in_flight_requests in
# litellm/proxy/middleware/in_flight_requests_middleware.py), which
# test_allow_list_matches_installed_litellm re-checks against whatever LiteLLM is
# installed. Counters are exposed with a `_total` suffix, histograms as
# `_bucket`/`_sum`/`_count`.
#
# Prometheus: `up` is synthesised per scrape target; the other two families were read
# from the /metrics of Prometheus 2.42 (Debian bookworm) and exist unchanged in 3.x.
# Every scraped series also carries the target labels `job` and `instance`.
# --------------------------------------------------------------------------------------
_CALLER = {"api_key_alias", "hashed_api_key", "team", "team_alias"}
_PROXY_REQ = _CALLER | {
    "api_provider",
    "client_ip",
    "end_user",
    "model_id",
    "org_alias",
    "org_id",
    "requested_model",
    "route",
    "user",
    "user_agent",
    "user_email",
}
_LATENCY = _CALLER | {
    "api_provider",
    "end_user",
    "model",
    "model_group",
    "model_id",
    "org_alias",
    "org_id",
    "requested_model",
    "service_tier",
    "user",
}
_DEPLOYMENT = {"api_base", "api_provider", "litellm_model_name", "model_id"}
_FALLBACK = _CALLER | {
    "exception_class",
    "exception_status",
    "fallback_model",
    "model_id",
    "requested_model",
}
_CACHE = _CALLER | {"api_provider", "end_user", "model", "model_id", "user"}
_TOKENS = _CALLER | {
    "api_provider",
    "end_user",
    "model",
    "model_id",
    "org_alias",
    "org_id",
    "requested_model",
    "user",
    "user_email",
}

LITELLM_FAMILIES: dict[str, tuple[str, set[str]]] = {
    "litellm_proxy_total_requests_metric": ("counter", _PROXY_REQ | {"status_code"}),
    "litellm_proxy_failed_requests_metric": (
        "counter",
        _PROXY_REQ | {"exception_class", "exception_status"},
    ),
    "litellm_request_total_latency_metric": ("histogram", _LATENCY),
    "litellm_llm_api_time_to_first_token_metric": ("histogram", _LATENCY),
    "litellm_deployment_state": ("gauge", _DEPLOYMENT),
    "litellm_deployment_cooled_down": ("counter", _DEPLOYMENT | {"exception_status"}),
    "litellm_deployment_failure_responses": (
        "counter",
        _DEPLOYMENT
        | _CALLER
        | {
            "client_ip",
            "exception_class",
            "exception_status",
            "model_group",
            "requested_model",
            "user_agent",
        },
    ),
    "litellm_deployment_successful_fallbacks": ("counter", _FALLBACK),
    "litellm_deployment_failed_fallbacks": ("counter", _FALLBACK),
    "litellm_cache_hits_metric": ("counter", _CACHE),
    "litellm_cache_misses_metric": ("counter", _CACHE),
    "litellm_input_tokens_metric": ("counter", _TOKENS),
    "litellm_output_tokens_metric": ("counter", _TOKENS),
    "litellm_total_tokens_metric": ("counter", _TOKENS),
    "litellm_in_flight_requests": ("gauge", set()),
}
PROMETHEUS_FAMILIES: dict[str, tuple[str, set[str]]] = {
    "up": ("gauge", set()),
    "prometheus_rule_evaluation_failures_total": ("counter", {"rule_group"}),
    "prometheus_config_last_reload_successful": ("gauge", set()),
}
TARGET_LABELS = {"job", "instance"}


def _exposed() -> dict[str, set[str]]:
    """Series name -> label names, as they appear in Prometheus."""
    out: dict[str, set[str]] = {}
    for family, (kind, labels) in LITELLM_FAMILIES.items():
        if kind == "counter":
            out[f"{family}_total"] = labels
        elif kind == "histogram":
            out[f"{family}_bucket"] = labels | {"le"}
            out[f"{family}_sum"] = labels
            out[f"{family}_count"] = labels
        else:
            out[family] = labels
    for name, (_kind, labels) in PROMETHEUS_FAMILIES.items():
        out[name] = labels
    return {name: labels | TARGET_LABELS for name, labels in out.items()}


KNOWN = _exposed()

# --------------------------------------------------------------------------------------
# A small PromQL scanner: enough to list the metric names and label names an expression
# uses (it does not evaluate anything; promtool checks the syntax).
# --------------------------------------------------------------------------------------
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GRAFANA_VAR = re.compile(r"\$\{[^}]*\}|\$\w+")
_SELECTOR = re.compile(r"([A-Za-z_:][\w:]*)?\s*\{([^{}]*)\}")
_MATCHER_LABEL = re.compile(r"([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)\)")
_IDENT = re.compile(r"[A-Za-z_:][\w:]*")
_NON_METRIC_WORDS = {
    "and",
    "or",
    "unless",
    "offset",
    "bool",
    "inf",
    "nan",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
}


class Usage:
    def __init__(self) -> None:
        self.metrics: set[str] = set()
        self.selector_labels: list[tuple[str | None, set[str]]] = []
        self.grouping: list[tuple[str, set[str], set[str]]] = []  # (clause, labels, scope)


def _balanced(text: str, open_at: int) -> int:
    """Index just past the parenthesis group that opens at text[open_at]."""
    depth = 0
    for i in range(open_at, len(text)):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            return i + 1
    raise ValueError(f"unbalanced parentheses in {text!r}")


def _metric_names(text: str) -> set[str]:
    text = _SELECTOR.sub(lambda m: f" {m.group(1) or ''} ", text)
    text = _GROUPING.sub(" ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b\d[\w.]*", " ", text)  # numbers and durations
    names = set()
    for m in _IDENT.finditer(text):
        rest = text[m.end() :].lstrip()
        if rest.startswith("(") or m.group(0) in _NON_METRIC_WORDS:
            continue  # function or aggregation call, or a keyword
        names.add(m.group(0))
    return names


def scan(expr: str) -> Usage:
    text = _GRAFANA_VAR.sub("1m", _STRING.sub('""', expr))
    u = Usage()
    for m in _SELECTOR.finditer(text):
        u.selector_labels.append((m.group(1), set(_MATCHER_LABEL.findall(m.group(2)))))
    u.metrics = _metric_names(text)
    for m in _GROUPING.finditer(text):
        clause, labels = m.group(1), {x.strip() for x in m.group(2).split(",") if x.strip()}
        scope = text
        if clause in ("by", "without"):
            after = text[m.end() :].lstrip()
            if after.startswith("("):  # sum by (x) (body)
                start = text.index("(", m.end())
                scope = text[start : _balanced(text, start)]
            else:  # sum (body) by (x): the group just before the clause
                before = text[: m.start()].rstrip()
                depth, i = 0, len(before) - 1
                while i >= 0:
                    depth += {")": 1, "(": -1}.get(before[i], 0)
                    if depth == 0:
                        break
                    i -= 1
                scope = before[i:]
        u.grouping.append((clause, labels, _metric_names(scope)))
    return u


def problems(expr: str) -> list[str]:
    """Unknown metric names and label names that the metrics used do not carry."""
    u = scan(expr)
    out = [f"unknown metric {name!r}" for name in sorted(u.metrics - KNOWN.keys())]
    for name, labels in u.selector_labels:
        if "__name__" in labels:
            out.append("selects by __name__ (metric name not checkable)")
        if name is None:
            out.append("selector without a metric name")
        elif name in KNOWN:
            out += [f"{name} has no label {lb!r}" for lb in sorted(labels - KNOWN[name])]
    for clause, labels, scope in u.grouping:
        carried = set().union(*(KNOWN.get(n, set()) for n in scope)) if scope else set()
        out += [
            f"{clause} ({lb}): no metric in scope {sorted(scope)} has it"
            for lb in sorted(labels - carried)
        ]
    return out


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------
def load_yaml(path: Path):
    return YAML(typ="safe").load(path.read_text())


def alert_rules() -> list[dict]:
    doc = load_yaml(PROM_DIR / "alerts.yml")
    return [rule for group in doc["groups"] for rule in group["rules"]]


def dashboards() -> list[Path]:
    return sorted(DASHBOARDS.glob("*.json"))


def all_panels(panels: list[dict]) -> list[dict]:
    out = []
    for p in panels:
        out.append(p)
        out += all_panels(p.get("panels", []))  # collapsed rows keep their panels inside
    return out


def dashboard_targets(ds_type: str) -> list[tuple[str, str]]:
    found = []
    for path in dashboards():
        for p in all_panels(json.loads(path.read_text())["panels"]):
            for t in p.get("targets", []):
                ds = t.get("datasource") or p.get("datasource") or {}
                if ds.get("type") == ds_type and t.get("expr"):
                    found.append((f"{path.name}: {p['title']} [{t['refId']}]", t["expr"]))
    return found


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        msg = f"{name} is not on PATH (Debian: apt-get install prometheus)"
        if os.environ.get("STACKCTL_REQUIRE_TOOLS") == "1":
            pytest.fail(msg + " and STACKCTL_REQUIRE_TOOLS=1")
        pytest.skip(msg)
    return path


def run(cmd: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


# --------------------------------------------------------------------------------------
# (a) only real metric and label names
# --------------------------------------------------------------------------------------
def test_scanner_flags_invented_metrics_and_labels():
    # The names the replaced system alerted on: LiteLLM never exported them.
    assert problems('sum(rate(litellm_requests_total{status=~"5.."}[5m]))') == [
        "unknown metric 'litellm_requests_total'"
    ]
    assert problems(
        "histogram_quantile(0.95, rate(litellm_request_duration_seconds_bucket[5m]))"
    ) == ["unknown metric 'litellm_request_duration_seconds_bucket'"]
    # A typo in a real name, a label the metric does not carry, a grouping label.
    assert problems("litellm_deployment_state_total") == [
        "unknown metric 'litellm_deployment_state_total'"
    ]
    assert problems('litellm_deployment_state{model_group="x"}') == [
        "litellm_deployment_state has no label 'model_group'"
    ]
    grouped = "sum by (model_group) (rate(litellm_proxy_total_requests_metric_total[5m]))"
    assert problems(grouped) == [
        "by (model_group): no metric in scope ['litellm_proxy_total_requests_metric_total'] has it"
    ]
    assert problems('{__name__="litellm_deployment_state"}') != []


def test_scanner_accepts_valid_expressions():
    for expr in [
        (
            "sum by (le, model_group) (rate(litellm_request_total_latency_metric_bucket"
            "[$__rate_interval]))"
        ),
        (
            "max by (model_id) (litellm_deployment_state) == 2 and on (model_id) "
            "(litellm_deployment_cooled_down_total unless litellm_deployment_cooled_down_total "
            "offset 15m)"
        ),
        (
            'sum(rate(litellm_proxy_failed_requests_metric_total{route!~"/metrics.*"}[5m])) '
            "by (requested_model) > 0.1"
        ),
        'up{job="litellm"} == 0',
    ]:
        assert problems(expr) == [], expr
    assert scan("rate(litellm_cache_hits_metric_total[5m]) / 2e3").metrics == {
        "litellm_cache_hits_metric_total"
    }


def test_alert_rules_use_only_verified_metrics_and_labels():
    bad = {r["alert"]: problems(r["expr"]) for r in alert_rules()}
    assert {k: v for k, v in bad.items() if v} == {}
    used = set().union(*(scan(r["expr"]).metrics for r in alert_rules()))
    # The alerts the stack relies on are really there.
    for name in [
        "up",
        "litellm_proxy_failed_requests_metric_total",
        "litellm_request_total_latency_metric_bucket",
        "litellm_deployment_state",
        "litellm_deployment_successful_fallbacks_total",
    ]:
        assert name in used


def test_dashboard_queries_use_only_verified_metrics_and_labels():
    targets = dashboard_targets("prometheus")
    assert targets, "no Prometheus queries found in grafana-dashboards/"
    bad = {where: problems(expr) for where, expr in targets}
    assert {k: v for k, v in bad.items() if v} == {}


def test_allow_list_matches_installed_litellm():
    """The LiteLLM half of the allow-list must be registered by the installed LiteLLM."""
    spec = importlib.util.find_spec("litellm")  # locates without importing (slow, networked)
    if spec is None or not spec.submodule_search_locations:
        if os.environ.get("STACKCTL_REQUIRE_TOOLS") == "1":
            pytest.fail("litellm is not installed and STACKCTL_REQUIRE_TOOLS=1")
        pytest.skip("litellm is not installed")
    pkg = Path(next(iter(spec.submodule_search_locations)))
    source = (pkg / "integrations" / "prometheus.py").read_text()
    middleware = pkg / "proxy" / "middleware" / "in_flight_requests_middleware.py"
    if middleware.exists():
        source += middleware.read_text()
    missing = [f for f in LITELLM_FAMILIES if f'"{f}"' not in source]
    assert missing == [], f"not registered by the LiteLLM in {pkg}: {missing}"


# --------------------------------------------------------------------------------------
# Alert rule hygiene and the Prometheus configuration
# --------------------------------------------------------------------------------------
def test_alert_rules_are_complete():
    rules = alert_rules()
    names = [r["alert"] for r in rules]
    assert len(names) == len(set(names))
    for r in rules:
        assert r.get("for"), r["alert"]
        assert r["labels"]["severity"] in {"critical", "warning", "info"}, r["alert"]
        assert r["annotations"].get("summary") and r["annotations"].get("description"), r["alert"]
    expected = {
        "LiteLLMGatewayDown",
        "LiteLLMHighErrorRatio",
        "LiteLLMHighLatencyP95",
        "LiteLLMDeploymentOutage",
        "LiteLLMFallbacksUsed",
    }
    assert expected <= set(names)


def test_prometheus_config_scrapes_litellm_with_key_from_secret():
    cfg = load_yaml(PROM_DIR / "prometheus.yml")
    assert cfg["rule_files"] == ["/etc/prometheus/alerts.yml"]
    jobs = {j["job_name"]: j for j in cfg["scrape_configs"]}
    assert set(jobs) >= {"prometheus", "litellm"}
    litellm = jobs["litellm"]
    assert litellm["metrics_path"] == "/metrics/"
    assert litellm["static_configs"] == [{"targets": ["litellm:4000"]}]
    assert litellm["authorization"] == {"type": "Bearer", "credentials_file": SECRET_PATH}
    text = (PROM_DIR / "prometheus.yml").read_text()
    # No inline secret of any kind.
    assert not re.search(r"^\s*(credentials|bearer_token|password)\s*:", text, re.MULTILINE)
    assert "sk-" not in text


def test_promtool_accepts_config_and_rules(tmp_path):
    promtool = require_tool("promtool")
    cfg = load_yaml(PROM_DIR / "prometheus.yml")
    # promtool opens credentials_file: point it at a dummy key; rules by absolute path.
    key = tmp_path / "litellm_master_key"
    key.write_text("sk-dummy-for-promtool\n")
    for job in cfg["scrape_configs"]:
        if "authorization" in job:
            assert job["authorization"]["credentials_file"] == SECRET_PATH
            job["authorization"]["credentials_file"] = str(key)
    cfg["rule_files"] = [str(PROM_DIR / "alerts.yml")]
    copy = tmp_path / "prometheus.yml"
    copy.write_text(json.dumps(cfg))  # JSON is YAML
    r = run([promtool, "check", "config", str(copy)])
    assert r.returncode == 0, r.stdout + r.stderr
    r = run([promtool, "check", "rules", str(PROM_DIR / "alerts.yml")])
    assert r.returncode == 0, r.stdout + r.stderr


def test_alert_rules_behave_as_specified():
    """monitoring/prometheus/alerts.test.yml: fire, stay quiet and resolve as intended."""
    promtool = require_tool("promtool")
    r = run([promtool, "test", "rules", "alerts.test.yml"], cwd=PROM_DIR)
    assert r.returncode == 0, r.stdout + r.stderr
    tests = load_yaml(PROM_DIR / "alerts.test.yml")["tests"]
    covered = {t["alertname"] for case in tests for t in case["alert_rule_test"]}
    assert covered == {r["alert"] for r in alert_rules()}
    for case in tests:  # the test inputs use real names too
        for series in case["input_series"]:
            assert problems(series["series"]) == [], series["series"]


# --------------------------------------------------------------------------------------
# (c) Grafana: dashboards and provisioning
# --------------------------------------------------------------------------------------
def provisioned_datasources() -> dict[str, dict]:
    doc = load_yaml(MON / "grafana" / "provisioning" / "datasources" / "datasources.yaml")
    return {ds["uid"]: ds for ds in doc["datasources"]}


def test_datasources_are_provisioned_by_uid():
    ds = provisioned_datasources()
    assert ds["prometheus"]["type"] == "prometheus"
    assert ds["prometheus"]["url"] == "http://prometheus:9090"
    assert ds["loki"]["type"] == "loki"
    assert ds["loki"]["url"] == "http://loki:3100"


def test_dashboard_provider_reads_the_mounted_directory():
    doc = load_yaml(MON / "grafana" / "provisioning" / "dashboards" / "dashboards.yaml")
    (provider,) = doc["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"


def test_dashboards_parse_and_use_provisioned_datasources():
    paths = dashboards()
    assert [p.name for p in paths] == ["stackctl-overview.json"]
    uids = provisioned_datasources()
    for path in paths:
        dash = json.loads(path.read_text())
        assert dash["uid"] and dash["title"]
        panels = all_panels(dash["panels"])
        ids = [p["id"] for p in panels]
        assert len(ids) == len(set(ids)), f"{path.name}: duplicate panel ids"
        for p in panels:
            if p["type"] == "row":
                continue
            where = f"{path.name}: {p['title']}"
            ds = p.get("datasource")
            assert isinstance(ds, dict) and ds.get("uid") in uids, where
            assert ds["type"] == uids[ds["uid"]]["type"], where
            assert p.get("targets"), where
            for t in p["targets"]:
                tds = t.get("datasource", ds)
                assert tds.get("uid") in uids and tds["type"] == uids[tds["uid"]]["type"], where


def alloy_labels() -> set[str]:
    text = (MON / "alloy" / "config.alloy").read_text()
    return set(re.findall(r'target_label\s*=\s*"(\w+)"', text))


def test_dashboard_log_queries_use_labels_alloy_sets():
    targets = dashboard_targets("loki")
    assert any('service="litellm"' in expr for _, expr in targets)
    labels = alloy_labels()
    for where, expr in targets:
        selector = re.match(r"\s*\{([^}]*)\}", expr)
        assert selector, where
        used = set(_MATCHER_LABEL.findall(_STRING.sub('""', selector.group(1))))
        assert used <= labels, f"{where}: {used - labels} is not set by Alloy"


# --------------------------------------------------------------------------------------
# Loki and Alloy (no binaries here: structural checks of what each needs)
# --------------------------------------------------------------------------------------
def test_loki_is_single_binary_tsdb_v13_on_filesystem_with_retention():
    cfg = load_yaml(MON / "loki" / "loki.yaml")
    assert cfg["auth_enabled"] is False
    assert cfg["common"]["path_prefix"] == "/loki"
    assert cfg["common"]["replication_factor"] == 1
    assert cfg["common"]["ring"]["kvstore"]["store"] == "inmemory"
    (schema,) = cfg["schema_config"]["configs"]
    assert (schema["store"], schema["object_store"], schema["schema"]) == (
        "tsdb",
        "filesystem",
        "v13",
    )
    assert schema["index"]["period"] == "24h"  # required by tsdb
    for d in cfg["common"]["storage"]["filesystem"].values():
        assert d.startswith("/loki/")
    assert cfg["compactor"]["working_directory"].startswith("/loki/")
    # Loki 3 refuses retention without a delete-request store, and removed shared_store.
    assert cfg["compactor"]["retention_enabled"] is True
    assert cfg["compactor"]["delete_request_store"] == "filesystem"
    assert "shared_store" not in (MON / "loki" / "loki.yaml").read_text()
    assert re.fullmatch(r"\d+h", cfg["limits_config"]["retention_period"])


def test_alloy_ships_compose_project_containers_to_loki():
    text = (MON / "alloy" / "config.alloy").read_text()
    code = re.sub(r"(^|\s)//[^\n]*", r"\1", text)  # comments, not URLs
    assert code.count("{") == code.count("}")
    assert re.search(r'discovery\.docker\s+"\w+"\s*\{[^}]*unix:///var/run/docker\.sock', code)
    assert re.search(r'loki\.source\.docker\s+"\w+"\s*\{[^}]*unix:///var/run/docker\.sock', code)
    # The project filter must act on targets: loki.source.docker's relabel_rules
    # cannot drop a container.
    keep = re.search(
        r"rule\s*\{[^}]*__meta_docker_container_label_com_docker_compose_project"
        r'[^}]*action\s*=\s*"keep"',
        code,
    )
    assert keep
    assert re.search(r"targets\s*=\s*discovery\.relabel\.\w+\.output", code)
    assert re.search(
        r'__meta_docker_container_label_com_docker_compose_service"\]\s*'
        r'target_label\s*=\s*"service"',
        code,
    )
    assert 'url = "http://loki:3100/loki/api/v1/push"' in code
    assert {"service", "project", "container"} <= alloy_labels()
