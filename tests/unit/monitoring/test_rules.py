"""Checks of the static monitoring files (monitoring/**, grafana-dashboards/**).

The system stackctl replaces alerted on LiteLLM metrics that do not exist, so its
alerts could never fire. Here every metric and label name used by an alert rule or a
dashboard query must be in an allow-list of names each source is known to export (every
source says where its names were read), the rules' behaviour is pinned by `promtool test
rules` with a firing and a quiet case per alert, and every dashboard query parses.

For the integration test on a live Prometheus: `alert_expressions()`, `panel_queries()`
(Grafana variables replaced, ready for /api/v1/query) and `used_metric_names()`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[3]
MON = ROOT / "monitoring"
PROM_DIR = MON / "prometheus"
DASHBOARDS = ROOT / "grafana-dashboards"

# --------------------------------------------------------------------------------------
# Allow-list: series name -> label names, per source, each with where its names come from.
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
_DEPLOYMENT_REQ = _DEPLOYMENT | _CALLER | {"client_ip", "model_group", "requested_model", "user_agent"}
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

# prometheus_client families: name -> (type, labels); see _client_series for the suffixes.
LITELLM_FAMILIES: dict[str, tuple[str, set[str]]] = {
    "litellm_proxy_total_requests_metric": ("counter", _PROXY_REQ | {"status_code"}),
    "litellm_proxy_failed_requests_metric": (
        "counter",
        _PROXY_REQ | {"exception_class", "exception_status"},
    ),
    "litellm_request_total_latency_metric": ("histogram", _LATENCY),
    "litellm_llm_api_time_to_first_token_metric": ("histogram", _LATENCY),
    # Gauges in gunicorn's multiprocess mode ('all') get each worker's pid as a label.
    "litellm_deployment_state": ("gauge", _DEPLOYMENT | {"pid"}),
    "litellm_deployment_cooled_down": ("counter", _DEPLOYMENT | {"exception_status"}),
    "litellm_deployment_success_responses": ("counter", _DEPLOYMENT_REQ),
    "litellm_deployment_failure_responses": (
        "counter",
        _DEPLOYMENT_REQ | {"exception_class", "exception_status"},
    ),
    "litellm_deployment_successful_fallbacks": ("counter", _FALLBACK),
    "litellm_deployment_failed_fallbacks": ("counter", _FALLBACK),
    "litellm_cache_hits_metric": ("counter", _CACHE),
    # not litellm_cache_misses_metric: 1.106.2 increments it only when cache_hit is False,
    # and a miss logs None (checked on the live stack: the series never appears)
    "litellm_input_tokens_metric": ("counter", _TOKENS),
    "litellm_output_tokens_metric": ("counter", _TOKENS),
    "litellm_total_tokens_metric": ("counter", _TOKENS),
    "litellm_spend_metric": ("counter", _TOKENS | {"client_ip", "service_tier", "user_agent"}),
    "litellm_in_flight_requests": ("gauge", set()),
}
_VLLM = {"model_name", "engine"}
VLLM_FAMILIES: dict[str, tuple[str, set[str]]] = {
    "vllm:num_requests_running": ("gauge", _VLLM),
    "vllm:num_requests_waiting": ("gauge", _VLLM),
    "vllm:kv_cache_usage_perc": ("gauge", _VLLM),
    "vllm:time_to_first_token_seconds": ("histogram", _VLLM),
    "vllm:e2e_request_latency_seconds": ("histogram", _VLLM),
    "vllm:prompt_tokens": ("counter", _VLLM),
    "vllm:generation_tokens": ("counter", _VLLM),
    "vllm:request_success": ("counter", _VLLM | {"finished_reason"}),
}


def _client_series(families: dict[str, tuple[str, set[str]]]) -> dict[str, set[str]]:
    """Series names as prometheus_client exposes its families (counters `_total`,
    histograms `_bucket`/`_sum`/`_count`)."""
    out: dict[str, set[str]] = {}
    for family, (kind, labels) in families.items():
        if kind == "counter":
            out[f"{family}_total"] = labels
        elif kind == "histogram":
            out |= {f"{family}_bucket": labels | {"le"}, f"{family}_sum": labels, f"{family}_count": labels}
        else:
            out[family] = labels
    return out


TARGET = frozenset({"job", "instance"})
# stackctl's Prometheus config puts these on every target of the provider jobs.
PROVIDER_TARGET = TARGET | {"provider", "provider_type", "gpu_group"}


@dataclass(frozen=True)
class Source:
    cite: str  # where the names and labels were read
    series: dict[str, set[str]]  # series name -> its own labels
    target: frozenset[str] = TARGET  # labels Prometheus adds from the scrape target


def _pushed_by_switch() -> dict[str, set[str]]:
    from prometheus_client.parser import text_string_to_metric_families

    from stackctl.monitoring.client import switch_metrics, switch_started

    text = switch_started("g") + switch_metrics("g", ["a", "b"], "a", {
        "total": 1, "stop": 1, "start": 1, "ready": 1, "routable": 1}, True, False)
    out: dict[str, set[str]] = {}
    for fam in text_string_to_metric_families(text):
        for sample in fam.samples:
            out.setdefault(sample.name, set()).update(sample.labels)
    return out


def _rerouted_by_the_gateway() -> dict[str, set[str]]:
    """The routing callback's own counter, read from what it registers."""
    from prometheus_client import CollectorRegistry, Counter

    from stackctl.incontainer import routing_callback

    registry = CollectorRegistry()
    import unittest.mock as mock

    with mock.patch("prometheus_client.Counter",
                    lambda *a, **k: Counter(*a, registry=registry, **k)):
        routing_callback._counter()("a", "f", "diverted")
    return {s.name: set(s.labels) for fam in registry.collect() for s in fam.samples
            if s.name.endswith("_total")}


SOURCES: dict[str, Source] = {
    "litellm": Source(
        "Seen on /metrics/ of a real LiteLLM 1.106.2 proxy (callbacks: [prometheus], "
        "prometheus_client 0.26) after chat, streaming, failing, fallback, failed-fallback "
        "and cache-hit requests; registered in litellm/integrations/prometheus.py with the "
        "labels of litellm/types/integrations/prometheus.py (success_responses and spend "
        "from there), re-checked by test_allow_list_matches_installed_litellm; pid: "
        "prometheus_client/multiprocess.py (gauges in 'all' mode).",
        _client_series(LITELLM_FAMILIES),
    ),
    "vllm": Source(
        "vllm-project/vllm vllm/v1/metrics/loggers.py, PrometheusStatLogger (read at commit "
        "005a810b): labels model_name and engine, finished_reason on request_success; the "
        "inference stub exports them in vllm mode (tests/contract/test_inference_stub.py).",
        _client_series(VLLM_FAMILIES),
        PROVIDER_TARGET,
    ),
    "llama.cpp": Source(
        "llama.cpp tools/server/server-task.cpp, server_task_result_metrics::to_metrics(), "
        "as vendored by llama-cpp-python 0.3.36 (the llama-server stackctl builds): "
        "/metrics with --metrics, unlabelled.",
        {
            name: set()
            for name in (
                "llamacpp:prompt_tokens_total",
                "llamacpp:tokens_predicted_total",
                "llamacpp:requests_processing",
                "llamacpp:requests_deferred",
                "llamacpp:prompt_tokens_seconds",
                "llamacpp:predicted_tokens_seconds",
            )
        },
        PROVIDER_TARGET,
    ),
    "redis_exporter": Source(
        "/metrics of Debian bookworm's prometheus-redis-exporter 1.45.0 against Redis 7.",
        {
            "redis_up": set(),
            "redis_memory_used_bytes": set(),
            "redis_memory_max_bytes": set(),
            "redis_keyspace_hits_total": set(),
            "redis_keyspace_misses_total": set(),
            "redis_evicted_keys_total": set(),
            "redis_db_keys": {"db"},
            "redis_exporter_last_scrape_error": {"err"},
        },
    ),
    "blackbox probe": Source(
        "/probe?module=http_2xx of Debian bookworm's prometheus-blackbox-exporter 0.23.0, "
        "for a healthy and an unreachable target.",
        {"probe_success": set(), "probe_duration_seconds": set(), "probe_http_status_code": set()},
        PROVIDER_TARGET,
    ),
    "blackbox exporter": Source(
        "/metrics of Debian bookworm's prometheus-blackbox-exporter 0.23.0.",
        {"blackbox_exporter_config_last_reload_successful": set()},
    ),
    "stackctl routing callback": Source(
        "Registered by the gateway's routing callback (stackctl/incontainer/routing_callback.py "
        "_counter) in the gateway's multiprocess registry: read from what it registers.",
        _rerouted_by_the_gateway(),
    ),
    "stackctl switch": Source(
        "Pushed by `stackctl switch` to the Pushgateway (job stackctl_switch, grouping key "
        "gpu_group), scraped with honor_labels: read from what stackctl.monitoring.client "
        "renders, so a renamed series fails here.",
        _pushed_by_switch(),
    ),
    "alertmanager": Source(
        "/metrics of Debian bookworm's prometheus-alertmanager 0.25.0 with a webhook receiver.",
        {
            "alertmanager_notifications_total": {"integration"},
            "alertmanager_notifications_failed_total": {"integration"},
            "alertmanager_config_last_reload_successful": set(),
        },
    ),
    "prometheus": Source(
        "Prometheus 2.42 (Debian bookworm): up and scrape_duration_seconds are synthesised "
        "per target, ALERTS per pending or firing alert (with the alert's labels); the "
        "others were read from its /metrics (unchanged in 3.x).",
        {
            "up": set(),
            "scrape_duration_seconds": set(),
            "ALERTS": {"alertname", "alertstate", "severity", "scope"},
            "prometheus_rule_evaluation_failures_total": {"rule_group"},
            "prometheus_config_last_reload_successful": set(),
            "prometheus_tsdb_head_series": set(),
        },
        PROVIDER_TARGET,
    ),
    "go process collector": Source(
        "client_golang's process collector, seen on /metrics of Debian bookworm's "
        "prometheus, alertmanager, pushgateway, blackbox and redis exporters.",
        {"process_resident_memory_bytes": set(), "process_cpu_seconds_total": set()},
    ),
}


def _known() -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for src in SOURCES.values():
        for name, labels in src.series.items():
            out[name] = labels | src.target
    return out


KNOWN = _known()

# --------------------------------------------------------------------------------------
# A small PromQL scanner: enough to list the metric names and label names an expression
# uses (it does not evaluate anything; promtool checks the syntax).
# --------------------------------------------------------------------------------------
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GRAFANA_VAR = re.compile(r"\$\{(\w+)[^}]*\}|\$(\w+)")
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
# The rules and dashboards as data (also imported by the integration tests)
# --------------------------------------------------------------------------------------
# Grafana's built-in variables, as a live evaluation should see them.
GRAFANA_BUILTINS = {"__rate_interval": "1m", "__interval": "1m", "__range": "1h", "__range_s": "3600"}


def load_yaml(path: Path):
    return YAML(typ="safe").load(path.read_text())


def alert_rules() -> list[dict]:
    doc = load_yaml(PROM_DIR / "alerts.yml")
    return [rule for group in doc["groups"] for rule in group["rules"]]


def alert_expressions() -> list[tuple[str, str]]:
    """(alert name, PromQL expression) of every alert rule."""
    return [(r["alert"], r["expr"]) for r in alert_rules()]


def dashboards() -> dict[Path, dict]:
    return {p: json.loads(p.read_text()) for p in sorted(DASHBOARDS.glob("*.json"))}


def all_panels(panels: list[dict]) -> list[dict]:
    out = []
    for p in panels:
        out.append(p)
        out += all_panels(p.get("panels", []))  # collapsed rows keep their panels inside
    return out


def dashboard_queries(ds_type: str) -> list[tuple[str, dict, str]]:
    """(where, dashboard, raw expression) of every panel target and annotation query
    on a datasource of ds_type, Grafana variables left in."""
    found = []
    for path, dash in dashboards().items():
        for p in all_panels(dash["panels"]):
            for t in p.get("targets", []):
                ds = t.get("datasource") or p.get("datasource") or {}
                if ds.get("type") == ds_type and t.get("expr"):
                    found.append((f"{path.name}: {p['title']} [{t['refId']}]", dash, t["expr"]))
        for a in dash.get("annotations", {}).get("list", []):
            if a.get("datasource", {}).get("type") == ds_type and a.get("expr"):
                found.append((f"{path.name}: annotation {a['name']}", dash, a["expr"]))
    return found


def grafana_variables(dash: dict) -> dict[str, dict]:
    return {v["name"]: v for v in dash.get("templating", {}).get("list", [])}


def substitute(expr: str, dash: dict) -> str:
    """expr as Grafana sends it with every variable at "All" (its allValue)."""
    variables = grafana_variables(dash)

    def value(m: re.Match) -> str:
        name = m.group(1) or m.group(2)
        if name in GRAFANA_BUILTINS:
            return GRAFANA_BUILTINS[name]
        if name in variables:
            return variables[name]["allValue"]
        raise KeyError(f"{dash['uid']}: undefined variable ${name} in {expr!r}")

    return _GRAFANA_VAR.sub(value, expr)


def panel_queries() -> list[tuple[str, str]]:
    """(where, PromQL) of every Prometheus query of the dashboards (panels and
    annotations), variables replaced: ready for /api/v1/query."""
    return [(where, substitute(expr, dash)) for where, dash, expr in dashboard_queries("prometheus")]


def used_metric_names() -> set[str]:
    """Every series name the alert rules and the dashboards select."""
    exprs = [e for _, e in alert_expressions()] + [e for _, e in panel_queries()]
    return set().union(*(scan(e).metrics for e in exprs))


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
    from stackctl.cache.redis_cache import HITS, REQUESTS

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
