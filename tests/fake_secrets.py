"""Fake secret values the render tests put in the environment while generating: none of
them may reach a generated file (compose, LiteLLM, Prometheus, Kubernetes manifests)."""

from __future__ import annotations

SECRETS = {
    "LITELLM_MASTER_KEY": "sk-should-not-appear-master",
    "REDIS_PASSWORD": "sk-should-not-appear-redis",
    "GRAFANA_ADMIN_PASSWORD": "grafana-should-not-appear",
    "HF_TOKEN": "hf_should_not_appear",
    "OPENAI_API_KEY": "sk-should-not-appear-openai",
    "OLLAMA_API_KEY": "ollama-should-not-appear",
    "ANTHROPIC_API_KEY": "sk-ant-should-not-appear",
}
