"""Registry → LiteLLM proxy config (as a dict)."""

from __future__ import annotations

from typing import Any

from stackctl.registry.catalog import (
    Deployment,
    deployments,
    exclusive_groups,
    fallbacks,
    group_settings,
)
from stackctl.registry.load import Registry
from stackctl.registry.models import Provider
from stackctl.registry.vocabulary import CACHE, ROUTING_MODULE, TRACE_MODULE

PREFIX = {"ollama": "ollama_chat", "vllm": "hosted_vllm", "llama_cpp": "openai",
          "openai": "openai", "anthropic": "anthropic", "openai_compatible": "openai"}
SSE_KEEPALIVE = 3  # seconds: LiteLLM's `: ping` interval for streams not answered yet
# the callback modules generated beside the config (callbacks.py): the request trace, and
# what holds or diverts requests for the members of exclusive GPU groups that are not active
# (the state it reads: switching/routing.py)
TRACE_CALLBACK = f"{TRACE_MODULE}.callback"
ROUTING_CALLBACK = f"{ROUTING_MODULE}.callback"
# The gateway's metrics that the shipped alert rules and dashboards, and `stackctl cache
# stats`, use (a unit test keeps them in step). Only these are kept: each request updates
# ~40 metrics by default, and the ones left out (rate-limit, budget and per-key gauges) cost
# the gateway about a tenth of its CPU per request (benchmarks/bench_gateway.py).
GATEWAY_METRICS = (
    "litellm_proxy_total_requests_metric", "litellm_proxy_failed_requests_metric",
    "litellm_request_total_latency_metric", "litellm_llm_api_latency_metric",
    "litellm_llm_api_time_to_first_token_metric", "litellm_in_flight_requests",
    "litellm_deployment_state", "litellm_deployment_cooled_down",
    "litellm_deployment_success_responses", "litellm_deployment_failure_responses",
    "litellm_deployment_successful_fallbacks", "litellm_deployment_failed_fallbacks",
    "litellm_input_tokens_metric", "litellm_output_tokens_metric", "litellm_total_tokens_metric",
    "litellm_spend_metric", "litellm_cache_hits_metric",
    "litellm_requests_metric",  # cache stats: the hit ratio's denominator
)


def api_base(name: str, prov: Provider) -> str:
    """Inside the compose network a local provider is reached by its service name."""
    if prov.container is not None:
        base = f"http://{name}:{prov.container.port}"
        return base if prov.type == "ollama" else base + "/v1"
    return prov.base_url


def litellm_params(dep: Deployment, prov: Provider) -> dict[str, Any]:
    params: dict[str, Any] = {"model": f"{PREFIX[prov.type]}/{dep.backend}",
                              "api_base": api_base(dep.provider, prov)}
    if prov.env_var:
        params["api_key"] = f"os.environ/{prov.env_var}"
    elif prov.type in ("llama_cpp", "openai_compatible", "vllm"):
        params["api_key"] = "none"  # the OpenAI client insists on some key; these servers ignore it
    if dep.weight is not None:
        params["weight"] = dep.weight
    return params


def render_litellm(reg: Registry) -> dict[str, Any]:
    providers = reg.providers.providers
    deps = deployments(reg)
    model_list = []
    for public, members in deps.items():
        for dep in members:
            prov = providers[dep.provider]
            model_list.append({
                "model_name": public,
                "litellm_params": litellm_params(dep, prov),
                "model_info": {"id": f"{public}@{dep.provider}", "provider": dep.provider},
            })

    router = reg.stack.gateway.router
    settings: dict[str, Any] = {
        "routing_strategy": "simple-shuffle",  # honours deployment weights
        "num_retries": router.num_retries,
        "retry_after": router.retry_after,
        "timeout": router.timeout,
        "allowed_fails": router.allowed_fails,
        "cooldown_time": router.cooldown_time,
    }
    chains = [{m: [c for c in chain if c in deps]} for m, chain in fallbacks(reg).items()
              if m in deps and any(c in deps for c in chain)]
    if chains:
        settings["fallbacks"] = chains
    default = reg.mappings.fallback_chains.get("default")
    if default and (usable := [m for m in default.chain if m in deps]):
        settings["default_fallbacks"] = usable
    aliases = gateway_aliases(reg, deps)
    if aliases:
        settings["model_group_alias"] = aliases

    # stackctl_trace: one JSON line per request on the gateway's stdout (`stackctl logs
    # --requests`); a module generated beside this config, where the proxy looks for it
    callbacks = ["prometheus", TRACE_CALLBACK] + ([ROUTING_CALLBACK] if exclusive_groups(reg)
                                                  else [])
    litellm_settings: dict[str, Any] = {
        "drop_params": True, "callbacks": callbacks,
        "prometheus_metrics_config": [{"group": "stackctl", "metrics": list(GATEWAY_METRICS)}]}
    if any(group_settings(reg, g).hold or group_settings(reg, g).on_demand
           for g in exclusive_groups(reg)):
        # a stream the routing callback holds (a switch, a member loading on demand) is
        # opened after this many seconds and gets `: ping` comments until the model
        # answers: clients with a read timeout do not give up on it
        litellm_settings["sse_keepalive_ping_interval_seconds"] = SSE_KEEPALIVE
    cache = reg.stack.cache
    if cache.enabled:
        litellm_settings["cache"] = True
        litellm_settings["cache_params"] = {"type": "redis", "host": CACHE, "port": 6379,
                                            "password": f"os.environ/{cache.password_env}",
                                            "namespace": cache.namespace, "ttl": cache.ttl}
    return {
        "model_list": model_list,
        "router_settings": settings,
        "litellm_settings": litellm_settings,
        "general_settings": {"master_key": f"os.environ/{reg.stack.gateway.master_key_env}"},
    }


def gateway_aliases(reg: Registry, deps: dict[str, list[Deployment]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, match in reg.mappings.exact_matches.items():
        for alias in match.aliases:
            if name in deps:
                out[alias] = name
    for name, cap in reg.mappings.capabilities.items():
        first = next((m for m in cap.preferred_models if m in deps), None)
        if first and name not in deps:
            out.setdefault(name, first)
    return out


def served_backend(reg: Registry, provider: str) -> str | None:
    """The first model name a provider is asked for (used as its readiness expectation)."""
    prov = reg.providers.providers[provider]
    for members in deployments(reg).values():
        for dep in members:
            if dep.provider == provider:
                return dep.backend
    return prov.models[0].name if prov.models else None


__all__ = ["render_litellm", "served_backend"]
