"""Fakes for `stackctl top`: a LiteLLM-like /metrics text, StackStatus documents as
`status` builds them, and Sources that serve them (and count what was asked).

The exposition uses the names and label sets a real LiteLLM 1.106 proxy exports
(tests/monitoring_queries.py) and its latency buckets (litellm/types/integrations/
prometheus.py LATENCY_BUCKETS), with other families around them as on a real /metrics.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from urllib.parse import unquote

from stackctl.registry.catalog import exclusive_groups, group_settings
from stackctl.registry.load import Registry
from stackctl.switching.journal import SwitchRecord
from stackctl.targets.compose_status import (
    AlertStatus,
    GatewayStatus,
    GroupStatus,
    ServiceStatus,
    StackStatus,
)
from stackctl.top.collect import Sources
from stackctl.top.prom import QUERIES, WAITING

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0,
           300.0, 420.0, 600.0, math.inf)
NOW = 1_796_000_000.0  # a fixed clock: 2026-11-30 (UTC), the snapshots' time
GATEWAY = "http://127.0.0.1:4000"
PROMETHEUS = "http://127.0.0.1:9090"


@dataclass
class Load:
    """What one model has seen since the gateway started."""

    latencies: list[float] = field(default_factory=list)  # seconds, one per request
    ttfts: list[float] = field(default_factory=list)
    failed: int = 0
    output_tokens: int = 0
    rerouted: dict[str, int] = field(default_factory=dict)  # action → count


def _labels(**kv: str) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in kv.items()) + "}"


def _histogram(name: str, values: list[float], labels: dict[str, str]) -> list[str]:
    lines = []
    for le in BUCKETS:
        n = sum(1 for v in values if v <= le)
        lines.append(f"{name}_bucket{_labels(**labels, le='+Inf' if math.isinf(le) else str(le))}"
                     f" {float(n)}")
    lines.append(f"{name}_count{_labels(**labels)} {float(len(values))}")
    lines.append(f"{name}_sum{_labels(**labels)} {sum(values)}")
    return lines


def exposition(loads: dict[str, Load], keys: int = 1, workers: int = 2,
               in_flight: int = 0) -> str:
    """/metrics text: each model's load split over `keys` API keys (LiteLLM labels every
    series by key, team and user: the text grows with them), gauges per worker pid."""
    out = ["# HELP python_gc_objects_collected_total Objects collected during gc",
           "# TYPE python_gc_objects_collected_total counter",
           'python_gc_objects_collected_total{generation="0"} 1234.0']
    for pid in range(workers):
        out.append(f'litellm_in_flight_requests{{pid="{100 + pid}"}} '
                   f"{float(in_flight if pid == 0 else 0)}")
    for model, load in loads.items():
        for k in range(keys):
            share = load.latencies[k::keys]
            caller = {"api_key_alias": f"key{k}", "hashed_api_key": f"{k:064x}", "team": "None",
                      "team_alias": "None", "user": "None", "end_user": "None"}
            req = {"requested_model": model, **caller, "model_id": f"{model}@p",
                   "api_provider": "openai", "route": "/chat/completions",
                   "user_agent": "python-requests", "client_ip": "172.18.0.1"}
            failed = load.failed if k == 0 else 0
            out.append(f"litellm_proxy_total_requests_metric_total"
                       f"{_labels(**req, status_code='200')} {float(len(share))}")
            if failed:
                out.append(f"litellm_proxy_total_requests_metric_total"
                           f"{_labels(**req, status_code='500')} {float(failed)}")
                out.append(f"litellm_proxy_failed_requests_metric_total"
                           f"{_labels(**req, exception_class='APIError', exception_status='500')}"
                           f" {float(failed)}")
            lat = {"requested_model": model, "model": model, "model_group": model, **caller}
            out += _histogram("litellm_request_total_latency_metric", share, lat)
            out += _histogram("litellm_llm_api_time_to_first_token_metric",
                              load.ttfts[k::keys], lat)
            out.append(f"litellm_output_tokens_metric_total{_labels(**lat)} "
                       f"{float(load.output_tokens if k == 0 else 0)}")
            out.append(f'litellm_deployment_state{{api_base="http://x",api_provider="openai",'
                       f'litellm_model_name="{model}",model_id="{model}@p",pid="100"}} 0.0')
        for action, n in load.rerouted.items():
            out.append(f"stackctl_gateway_rerouted_requests_total"
                       f"{_labels(requested_model=model, fallback_model='', action=action)} {n}.0")
    return "\n".join(out) + "\n"


# -- status -------------------------------------------------------------------------------------

def stack_status(reg: Registry, members: dict[str, str], gateway_up: bool = True,
                 alerts: list[AlertStatus] | None = None) -> StackStatus:
    """`status` as collect_status builds it; `members`: GPU-group member → awake, asleep,
    loading or stopped (the others run, ready)."""
    services = [ServiceStatus(name="litellm", role="gateway", profile=None, state="running",
                              health="healthy", port=4000, latency_ms=2.0, ready=True)]
    for name, prov in reg.providers.providers.items():
        if not (prov.enabled and prov.container):
            continue
        how = members.get(name, "awake")
        running = how != "stopped"
        services.append(ServiceStatus(
            name=name, role="provider", profile=name, state="running" if running else "exited",
            health={"loading": "starting", "stopped": "none"}.get(how, "healthy"),
            port=prov.host_port, latency_ms=None, ready=how in ("awake", "asleep"),
            sleep="asleep" if how == "asleep" else "awake" if running else None))
    groups = {}
    for group, names in exclusive_groups(reg).items():
        running = [m for m in names if members.get(m, "awake") != "stopped"]
        asleep = [m for m in running if members.get(m) == "asleep"]
        awake = [m for m in running if m not in asleep]
        groups[group] = GroupStatus(active=awake[0] if awake else None, members=names,
                                    mode=group_settings(reg, group).switch, running=running,
                                    asleep=asleep)
    return StackStatus(project=reg.stack.project,
                       gateway=GatewayStatus(url=GATEWAY, healthy=gateway_up),
                       services=services, gpu_groups=groups, alerts=alerts,
                       healthy=gateway_up)


class FakeSources(Sources):
    """Sources serving a fixed state; `asked` records every URL fetched."""

    def __init__(self, status: StackStatus | Exception, metrics: str | Exception | int,
                 routing: dict | None = None, switches: list[SwitchRecord] | None = None,
                 now: float = NOW, prometheus: dict[str, dict[str, float]] | None = None):
        """`prometheus`: query name (prom.QUERIES, or "waiting": prom.WAITING) → label
        value → value; given, a Prometheus answers at PROMETHEUS (an unknown query or one
        without an answer: an error)."""
        self.asked: list[str] = []
        self.now = now
        self._status, self._metrics = status, metrics

        def get_status() -> StackStatus:
            if isinstance(self._status, Exception):
                raise self._status
            return self._status

        def get(url: str, headers: dict[str, str], timeout: float) -> tuple[int, str]:
            self.asked.append(url)
            if url.startswith(PROMETHEUS):
                return _prometheus(prometheus or {}, url)
            if isinstance(self._metrics, Exception):
                raise self._metrics
            if isinstance(self._metrics, int):
                return self._metrics, "refused"
            return 200, self._metrics

        super().__init__(status=get_status, get=get, routing=lambda: routing or {},
                         switches=lambda: list(switches or []), clock=lambda: self.now,
                         gateway_url=GATEWAY, gateway_key="sk-test",
                         prometheus_url=PROMETHEUS if prometheus is not None else None)


def _prometheus(answers: dict[str, dict[str, float]], url: str) -> tuple[int, str]:
    expr = unquote(url.split("query=", 1)[1])
    name = "waiting" if expr == WAITING else next(
        (n for n, q in QUERIES.items() if q == expr), None)
    if name is None or name not in answers:
        return 400, json.dumps({"status": "error", "error": "unknown query"})
    by = "provider" if name == "waiting" else "requested_model"
    result = [{"metric": {by: m} if m else {}, "value": [NOW, str(v)]}
              for m, v in answers[name].items()]
    return 200, json.dumps({"status": "success",
                            "data": {"resultType": "vector", "result": result}})


def record(at: float, previous: str, target: str, success: bool = True,
           rolled_back: bool = False, seconds: float = 1.4,
           reason: str = "stackctl switch") -> SwitchRecord:
    return SwitchRecord(at=at, group="gpu0", previous=previous, target=target,
                        active=target if success else previous, success=success,
                        rolled_back=rolled_back, seconds=seconds, reason=reason)
