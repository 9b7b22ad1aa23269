"""Checks of the static monitoring files (monitoring/**, grafana-dashboards/**).

The system stackctl replaces alerted on LiteLLM metrics that do not exist, so its
alerts could never fire. Here every metric and label name used by an alert rule or a
dashboard query must be in an allow-list of names each source is known to export (every
source says where its names were read), the rules' behaviour is pinned by `promtool test
rules` with a firing and a quiet case per alert, and every dashboard query parses.

The allow-list, the PromQL scanner and the rules and dashboards as data live in
tests/monitoring_queries.py, which the integration test on a live Prometheus uses too.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.monitoring_queries import (
    _MATCHER_LABEL,
    _STRING,
    KNOWN,
    LITELLM_FAMILIES,
    MON,
    PROM_DIR,
    SOURCES,
    alert_expressions,
    alert_rules,
    all_panels,
    dashboard_queries,
    dashboards,
    grafana_variables,
    load_yaml,
    panel_queries,
    problems,
    scan,
    substitute,
    used_metric_names,
)
from tests.tools import require_tool


def run(cmd: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


# --------------------------------------------------------------------------------------
# Only real metric and label names
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
    # vLLM's older name, and target labels only provider targets carry.
    assert problems("vllm:gpu_cache_usage_perc > 0.9") == ["unknown metric 'vllm:gpu_cache_usage_perc'"]
    assert problems('redis_up{provider="x"}') == ["redis_up has no label 'provider'"]


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
        'max by (gpu_group) (up{job="provider", gpu_group!=""} or probe_success) == 0',
        "histogram_quantile(0.95, sum by (le, provider) (rate(vllm:time_to_first_token_seconds_bucket[5m])))",
    ]:
        assert problems(expr) == [], expr
    assert scan("rate(litellm_cache_hits_metric_total[5m]) / 2e3").metrics == {
        "litellm_cache_hits_metric_total"
    }


def test_every_allow_list_source_cites_where_its_names_come_from():
    seen: dict[str, str] = {}
    for key, src in SOURCES.items():
        assert len(src.cite) > 40 and src.series, key
        for name in src.series:
            assert name not in seen, f"{name} is in both {seen[name]} and {key}"
            seen[name] = key


def test_alert_rules_use_only_verified_metrics_and_labels():
    bad = {name: problems(expr) for name, expr in alert_expressions()}
    assert {k: v for k, v in bad.items() if v} == {}


def test_dashboard_queries_use_only_verified_metrics_and_labels():
    queries = dashboard_queries("prometheus")
    assert queries, "no Prometheus queries found in grafana-dashboards/"
    bad = {where: problems(expr) for where, _, expr in queries}
    assert {k: v for k, v in bad.items() if v} == {}


def test_every_allow_listed_name_is_used():
    """An entry nothing uses is a name nobody re-checks: keep the list to what is used."""

    def family(name: str) -> str:
        return re.sub(r"_(bucket|sum|count)$", "", name)

    used = {family(n) for n in used_metric_names()}
    assert {n for n in KNOWN if family(n) not in used} == set()


def test_gateway_keeps_every_metric_the_rules_and_dashboards_use():
    """The generated config keeps only GATEWAY_METRICS: a rule or panel on any other
    litellm_* metric would see no data."""
    import re

    from stackctl.render.litellm import GATEWAY_METRICS

    used = {re.sub(r"_(total|bucket|sum|count)$", "", m) for m in used_metric_names()
            if m.startswith("litellm_")}
    assert used - set(GATEWAY_METRICS) == set()
    from stackctl.cache.metrics import HITS, REQUESTS

    # no dead weight: beyond the rules and dashboards, only what `cache stats` reads
    assert set(GATEWAY_METRICS) - used <= {"litellm_llm_api_latency_metric", HITS, REQUESTS}
    assert {HITS, REQUESTS} <= set(GATEWAY_METRICS)


def test_allow_list_matches_installed_litellm():
    """The LiteLLM families must be registered by the installed LiteLLM."""
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
# Alert rules
# --------------------------------------------------------------------------------------
# name -> scope. Alertmanager inhibits scope "model" while the gateway is down; the
# integration tests wait for ProviderDown and GPUGroupNoHealthyMember to fire.
EXPECTED_ALERTS = {
    "LiteLLMGatewayDown": "gateway",
    "LiteLLMHighErrorRatio": "model",
    "LiteLLMHighLatencyP95": "model",
    "LiteLLMSlowTimeToFirstToken": "model",
    "LiteLLMDeploymentOutage": "model",
    "LiteLLMDeploymentFailing": "model",
    "LiteLLMFallbacksFrequent": "model",
    "LiteLLMFallbacksFailed": "model",
    "ProviderDown": "provider",
    "GPUGroupNoHealthyMember": "gpu_group",
    "StackctlSwitchRolledBack": "gpu_group",
    "StackctlSwitchThrash": "gpu_group",
    "VLLMRequestsWaiting": "provider",
    "VLLMKVCacheNearFull": "provider",
    "RedisDown": "redis",
    "CacheHitRatioLow": "redis",
    "ScrapeTargetDown": "monitoring",
    "PrometheusRuleEvaluationFailures": "monitoring",
    "PrometheusConfigReloadFailed": "monitoring",
    "AlertmanagerNotificationsFailing": "monitoring",
}


def test_alert_rules_are_complete():
    rules = alert_rules()
    names = [r["alert"] for r in rules]
    assert len(names) == len(set(names))
    assert {r["alert"]: r["labels"]["scope"] for r in rules} == EXPECTED_ALERTS
    for r in rules:
        assert r["labels"]["severity"] in {"critical", "warning", "info"}, r["alert"]
        notes = r["annotations"]
        for key in ("summary", "description", "runbook"):
            assert notes.get(key), f"{r['alert']}: no {key}"
        assert "\n" not in notes["runbook"] and "`stackctl " in notes["runbook"], r["alert"]


def test_provider_alerts_fire_within_30s():
    """The provider-kill integration test waits for these for real."""
    fors = {r["alert"]: r.get("for") for r in alert_rules()}
    assert fors["ProviderDown"] == fors["GPUGroupNoHealthyMember"] == "30s"


def test_promtool_accepts_the_rules():
    promtool = require_tool("promtool")
    r = run([promtool, "check", "rules", str(PROM_DIR / "alerts.yml")])
    assert r.returncode == 0, r.stdout + r.stderr


def test_alert_rules_behave_as_specified():
    """monitoring/prometheus/alerts.test.yml: every alert fires in one case and stays quiet
    in another (a stopped-on-purpose member, too little traffic, an old event ...)."""
    promtool = require_tool("promtool")
    r = run([promtool, "test", "rules", "alerts.test.yml"], cwd=PROM_DIR)
    assert r.returncode == 0, r.stdout + r.stderr
    cases = [c for test in load_yaml(PROM_DIR / "alerts.test.yml")["tests"] for c in test["alert_rule_test"]]
    fires = {c["alertname"] for c in cases if c.get("exp_alerts")}
    quiet = {c["alertname"] for c in cases if not c.get("exp_alerts")}
    assert fires == quiet == set(EXPECTED_ALERTS)
    for test in load_yaml(PROM_DIR / "alerts.test.yml")["tests"]:  # the inputs use real names too
        for series in test["input_series"]:
            assert problems(series["series"]) == [], series["series"]


# --------------------------------------------------------------------------------------
# Grafana: dashboards and provisioning
# --------------------------------------------------------------------------------------
EXPECTED_DASHBOARDS = {
    "stackctl-overview",
    "stackctl-tokens",
    "stackctl-performance",
    "stackctl-provider-health",
    "stackctl-system",
    "stackctl-gpu-groups",
}
# Dashboards whose per-model panels filter on $model (label requested_model or model_group).
PER_MODEL = {"stackctl-overview", "stackctl-tokens", "stackctl-performance", "stackctl-provider-health"}


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


def test_dashboards_have_stable_uids_and_use_provisioned_datasources():
    uids = provisioned_datasources()

    def provisioned(ds: object, where: str) -> None:
        assert isinstance(ds, dict) and ds.get("uid") in uids, where
        assert ds["type"] == uids[ds["uid"]]["type"], where

    dashes = dashboards()
    assert {d["uid"] for d in dashes.values()} == EXPECTED_DASHBOARDS
    for path, dash in dashes.items():
        assert path.stem == dash["uid"] and dash["title"]
        panels = all_panels(dash["panels"])
        ids = [p["id"] for p in panels]
        assert len(ids) == len(set(ids)), f"{path.name}: duplicate panel ids"
        for p in panels:
            if p["type"] == "row":
                continue
            where = f"{path.name}: {p['title']}"
            provisioned(p.get("datasource"), where)
            assert p.get("targets"), where
            for t in p["targets"]:
                provisioned(t.get("datasource", p["datasource"]), where)
                assert t.get("expr"), f"{where} [{t.get('refId')}] has no query"
        for item in dash["annotations"]["list"] + dash["templating"]["list"]:
            provisioned(item.get("datasource"), f"{path.name}: {item['name']}")


_LABEL_VALUES = re.compile(r"label_values\((.+),\s*(\w+)\)")


def test_dashboard_variables_are_defined_and_real():
    for path, dash in dashboards().items():
        variables = grafana_variables(dash)
        for name, v in variables.items():
            m = _LABEL_VALUES.fullmatch(v["query"])
            assert m and v["definition"] == v["query"], f"{path.name}: ${name}"
            selector, label = m.groups()
            assert problems(selector) == [], f"{path.name}: ${name}"
            assert all(label in KNOWN[n] for n in scan(selector).metrics), f"{path.name}: ${name}"
            assert v["includeAll"] and v["allValue"] in {".*", ".+"}, f"{path.name}: ${name}"
        for where, _, expr in dashboard_queries("prometheus"):
            if where.startswith(path.name):
                substitute(expr, dash)  # raises on an undefined variable


def test_per_model_panels_use_the_model_variable():
    """Per-model panels are one panel filtered by $model, not a copy per model."""
    for path, dash in dashboards().items():
        if dash["uid"] not in PER_MODEL:
            continue
        assert "model" in grafana_variables(dash), path.name
        for where, _, expr in dashboard_queries("prometheus"):
            if where.startswith(path.name) and re.search(r"\b(requested_model|model_group)\b", expr):
                assert re.search(r'(requested_model|model_group)=~"\$model"', expr), where


def test_prometheus_parses_every_dashboard_query(tmp_path):
    """Each query (variables replaced) as a recording rule: `promtool check rules` parses it."""
    promtool = require_tool("promtool")
    rules = [{"record": f"dashboard:query_{i}", "expr": e} for i, (_, e) in enumerate(panel_queries())]
    path = tmp_path / "queries.yml"
    path.write_text(json.dumps({"groups": [{"name": "dashboards", "rules": rules}]}))  # JSON is YAML
    r = run([promtool, "check", "rules", str(path)])
    assert r.returncode == 0, r.stdout + r.stderr
    assert all("$" not in e for _, e in panel_queries())


def alloy_labels() -> set[str]:
    text = (MON / "alloy" / "config.alloy").read_text()
    return set(re.findall(r'target_label\s*=\s*"(\w+)"', text))


def test_dashboard_log_queries_use_labels_alloy_sets():
    queries = dashboard_queries("loki")
    assert any('service="litellm"' in expr for _, _, expr in queries)
    labels = alloy_labels()
    for where, _, expr in queries:
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
