"""The names the monitoring may use, and the alert rules and dashboard queries as data.

Every metric and label name an alert rule or a dashboard query uses must be in the
allow-list below (`SOURCES`: the names each source is known to export, and where they were
read); a small PromQL scanner (`scan`, `problems`) lists the names an expression uses.
tests/unit/monitoring/test_rules.py checks the static files with them; the integration test
on a live Prometheus uses `alert_expressions()`, `panel_queries()` (Grafana variables
replaced, ready for /api/v1/query) and `used_metric_names()`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from ruamel.yaml import YAML

from tests.paths import REPO

MON = REPO / "monitoring"
PROM_DIR = MON / "prometheus"
DASHBOARDS = REPO / "grafana-dashboards"

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
    from stackctl.monitoring.switch_counts import GroupCounts

    text = switch_started("g") + switch_metrics("g", ["a", "b"], "a", {
        "total": 1, "stop": 1, "start": 1, "ready": 1, "routable": 1}, True, False,
        counts=GroupCounts().add("manual", 1.0, False))
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

    from prometheus_client import Gauge, Histogram

    with mock.patch("prometheus_client.Counter",
                    lambda *a, **k: Counter(*a, registry=registry, **k)), \
            mock.patch("prometheus_client.Gauge",
                       lambda *a, **k: Gauge(*a, registry=registry, **k)), \
            mock.patch("prometheus_client.Histogram",
                       lambda *a, **k: Histogram(*a, registry=registry, **k)):
        routing_callback._counter()("a", "f", "diverted")
        holding, held_for = routing_callback._hold_meters()
        holding("a", 1)
        held_for("a", "held", 0.3)
    return {s.name: set(s.labels) for fam in registry.collect() for s in fam.samples
            if not s.name.endswith("_created")}


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
        "_counter, _hold_meters) in the gateway's multiprocess registry: read from what it "
        "registers.",
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
