"""Registry → Prometheus configuration: every target of the stack, provider labels included.

Targets are compose service names on the project network. A provider with a metrics endpoint
is scraped; one without (Ollama) is probed through the blackbox exporter, so that `up` and
`probe_success` say the same thing for every provider: is it answering. A member of an
exclusive GPU group that is stopped on purpose is a target that is down.
"""

from __future__ import annotations

from typing import Any

from stackctl.registry.catalog import has_metrics, monitoring_components
from stackctl.registry.load import Registry
from stackctl.registry.models import Provider, seconds
from stackctl.registry.vocabulary import GATEWAY
from stackctl.render.compose import MONITORING_PORTS, PROMETHEUS_RULES
from stackctl.render.probes import DEFAULT_ENDPOINT

KEY_FILE = "/run/secrets/litellm_master_key"  # the compose secret of the gateway's master key
METRICS_PATH = "/metrics"
PROBE_MODULE = "http_2xx"  # shipped in the blackbox exporter's default modules file


def _target(service: str) -> str:
    return f"{service}:{MONITORING_PORTS[service]}"


def _job(name: str, targets: list[str], **extra: Any) -> dict[str, Any]:
    return {"job_name": name, **extra, "static_configs": [{"targets": targets}]}


def provider_labels(name: str, prov: Provider) -> dict[str, str]:
    """The labels of every series of a provider's target (gpu_group "": in no group)."""
    gpu = prov.container.gpu if prov.container else None
    return {"provider": name, "provider_type": prov.type,
            "gpu_group": (gpu.exclusive_group if gpu else None) or ""}


def health_url(name: str, prov: Provider) -> str:
    """The provider's health endpoint on the project network (what the blackbox probes)."""
    c = prov.container
    assert c is not None
    path = c.health.endpoint or prov.health_endpoint or DEFAULT_ENDPOINT.get(prov.type, "/health")
    return f"http://{name}:{c.port}{path}"


def provider_targets(reg: Registry) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(scraped, probed) static configs: one per provider that runs in a container."""
    scraped, probed = [], []
    for name, prov in reg.providers.providers.items():
        if not (prov.enabled and prov.container):
            continue  # cloud providers are not ours to scrape
        labels = provider_labels(name, prov)
        if has_metrics(prov):
            scraped.append({"targets": [f"{name}:{prov.container.port}"], "labels": labels})
        else:
            probed.append({"targets": [health_url(name, prov)], "labels": labels})
    return scraped, probed


def render_prometheus(reg: Registry) -> dict[str, Any]:
    interval = reg.stack.monitoring.scrape_interval
    running = monitoring_components(reg)
    doc: dict[str, Any] = {
        "global": {"scrape_interval": interval,
                   "scrape_timeout": f"{min(seconds(interval), 10)}s",  # ≤ the interval
                   "evaluation_interval": interval},
        "rule_files": [PROMETHEUS_RULES],
    }
    if "alertmanager" in running:
        doc["alerting"] = {"alertmanagers": [
            {"static_configs": [{"targets": [_target("alertmanager")]}]}]}
    jobs = [
        _job("prometheus", [_target("prometheus")]),
        # /metrics answers 307 → /metrics/: scrape the final path; it needs the master key
        _job("litellm", [f"{GATEWAY}:4000"], metrics_path="/metrics/",
             authorization={"type": "Bearer", "credentials_file": KEY_FILE}),
    ]
    scraped, probed = provider_targets(reg)
    if scraped:
        jobs.append({"job_name": "provider", "metrics_path": METRICS_PATH,
                     "static_configs": scraped})
    if probed and "blackbox-exporter" in running:
        jobs.append({
            "job_name": "provider-probe", "metrics_path": "/probe",
            "params": {"module": [PROBE_MODULE]}, "static_configs": probed,
            # the target is the URL to probe; the request goes to the exporter
            "relabel_configs": [
                {"source_labels": ["__address__"], "target_label": "__param_target"},
                {"source_labels": ["__param_target"], "target_label": "instance"},
                {"target_label": "__address__", "replacement": _target("blackbox-exporter")},
            ]})
    if "redis-exporter" in running:
        jobs.append(_job("redis", [_target("redis-exporter")]))
    if "alertmanager" in running:
        jobs.append(_job("alertmanager", [_target("alertmanager")]))
    if "pushgateway" in running:
        # keep the pushed job/instance labels (job="stackctl_switch"), not the scrape's
        jobs.append(_job("pushgateway", [_target("pushgateway")], honor_labels=True))
    if "blackbox-exporter" in running:
        jobs.append(_job("blackbox", [_target("blackbox-exporter")]))
    doc["scrape_configs"] = jobs
    return doc
