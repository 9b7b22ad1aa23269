"""Per-model figures from Prometheus, when it runs: it already scrapes the gateway, so
`top` then adds no request to the gateway's /metrics at all.

The queries are the dashboards' (grafana-dashboards/: `rate(...[1m])`, histogram_quantile
by requested_model); tests/unit/top/test_prom.py checks their names against the allow-list
of what LiteLLM really exports (tests/monitoring_queries.py). Pure but for `get`.
"""

from __future__ import annotations

import json
import math
from urllib.parse import quote

from stackctl.top.metrics import ModelFigures

WINDOW = 60.0  # the queries' range: [1m]
_BY = "requested_model"
QUERIES: dict[str, str] = {
    "requests": f"sum by ({_BY}) (increase(litellm_proxy_total_requests_metric_total[1m]))",
    "rps": f"sum by ({_BY}) (rate(litellm_proxy_total_requests_metric_total[1m]))",
    "errors": f"sum by ({_BY}) (increase(litellm_proxy_failed_requests_metric_total[1m]))",
    "p50": f"histogram_quantile(0.5, sum by (le, {_BY}) "
           "(rate(litellm_request_total_latency_metric_bucket[1m])))",
    "p95": f"histogram_quantile(0.95, sum by (le, {_BY}) "
           "(rate(litellm_request_total_latency_metric_bucket[1m])))",
    "ttft": f"histogram_quantile(0.5, sum by (le, {_BY}) "
            "(rate(litellm_llm_api_time_to_first_token_metric_bucket[1m])))",
    "tokens": f"sum by ({_BY}) (rate(litellm_output_tokens_metric_total[1m]))",
    "rerouted": f"sum by ({_BY}) (increase(stackctl_gateway_rerouted_requests_total[1m]))",
    "in_flight": "sum(litellm_in_flight_requests)",
}


# per member (the `provider` label stackctl's scrape config gives every provider target):
# requests its engine queues, as the performance dashboard shows them
WAITING = ("sum by (provider) (vllm:num_requests_waiting) "
           "or sum by (provider) (llamacpp:requests_deferred)")


class PrometheusError(Exception):
    """A query failed: the caller falls back to the gateway's /metrics."""


def query(get, url: str, expr: str, timeout: float,  # type: ignore[no-untyped-def]
          by: str = _BY) -> dict[str, float]:
    """`by` label's value → value of an instant vector ('' for a sum without labels); NaN
    (a quantile without observations) is left out."""
    try:
        code, text = get(f"{url}/api/v1/query?query={quote(expr, safe='')}", {}, timeout)
        doc = json.loads(text) if code == 200 else None
    except Exception as exc:
        raise PrometheusError(f"{type(exc).__name__}") from None
    if not isinstance(doc, dict) or doc.get("status") != "success":
        raise PrometheusError(f"answered {code}")
    out = {}
    for row in doc.get("data", {}).get("result", []):
        value = float(row["value"][1])
        if not math.isnan(value):
            out[row.get("metric", {}).get(by, "")] = value
    return out


def figures(get, url: str, timeout: float  # type: ignore[no-untyped-def]
            ) -> tuple[list[ModelFigures], float | None, dict[str, float]]:
    """(per-model figures over the last minute, requests in flight, member → requests its
    engine queues); PrometheusError when a query fails."""
    got = {name: query(get, url, expr, timeout) for name, expr in QUERIES.items()}
    waiting = query(get, url, WAITING, timeout, by="provider")
    models = set(got["requests"]) | set(got["rps"])

    def ms(name: str, model: str) -> float | None:
        v = got[name].get(model)
        return None if v is None else round(v * 1000, 1)

    out = [ModelFigures(model=m, requests=round(got["requests"].get(m, 0.0), 1),
                        rps=got["rps"].get(m, 0.0), errors=round(got["errors"].get(m, 0.0), 1),
                        p50_ms=ms("p50", m), p95_ms=ms("p95", m), ttft_p50_ms=ms("ttft", m),
                        tokens_per_s=got["tokens"].get(m), rerouted=round(
                            got["rerouted"].get(m, 0.0), 1))
           for m in models if m]
    return sorted(out, key=lambda f: (-f.requests, f.model)), got["in_flight"].get(""), waiting
