"""New registry entries: a provider of each type with the container defaults of the shipped
registry (config/providers.yaml), and a model mapping. Pure: options in, plain data out
(stackctl.registry.editing splices it into the files)."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, Field
from ruamel.yaml.comments import CommentedSeq
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

from stackctl.registry.catalog import monitoring_components
from stackctl.registry.load import Registry
from stackctl.registry.models import LOCAL_TYPES, ProviderType

# What each local type's container needs, as the shipped registry has it (a test keeps
# them in step): `add provider` and `init` both write these. host_port: the first one tried
DEFAULTS: dict[str, dict[str, Any]] = {
    "ollama": {"image": "ollama/ollama:0.12.10", "port": 11434, "host_port": 11434,
               "mount": "/root/.ollama", "volume": "ollama-models", "start_period": 30,
               "health_endpoint": "/api/version"},
    "llama_cpp": {"image": "ghcr.io/ggml-org/llama.cpp:server-cuda-b6990",
                  "cpu_image": "ghcr.io/ggml-org/llama.cpp:server-b6990", "port": 8080,
                  "host_port": 8080, "mount": "/models", "volume": "llamacpp-models",
                  "start_period": 120, "health_endpoint": "/health"},
    "vllm": {"image": "vllm/vllm-openai:v0.11.0", "port": 8000, "host_port": 8001,
             "mount": "/root/.cache/huggingface", "volume": "hf-cache", "start_period": 300,
             "health_endpoint": "/v1/models"},
}
CLOUD_URLS = {"openai": "https://api.openai.com/v1", "anthropic": "https://api.anthropic.com/v1"}
CLOUD_KEYS = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}  # their SDKs' names


class NewProvider(BaseModel):
    """What `stackctl add provider` was asked for; unset fields take the type's defaults."""

    type: ProviderType
    name: str
    models: list[str] = Field(default_factory=list, description="model names it serves")
    host_port: int | None = Field(None, ge=1, le=65535, description="published port; "
                                  "default: the type's, else the next free one")
    image: str | None = Field(None, description="container image; default per type")
    base_url: str | None = Field(None, description="a remote provider's URL (no container)")
    api_key_env: str | None = Field(None, description="variable holding its API key")
    hf_model: str | None = Field(None, description="vLLM: the Hugging Face model to load")
    model_file: str | None = Field(None, description="llama.cpp: the GGUF file in its "
                                   "volume (default: MODEL.gguf)")
    gpus: int = Field(1, ge=0, le=64, description="GPUs reserved (0: CPU only)")
    group: str | None = Field(None, description="exclusive GPU group")
    profile: str | None = Field(None, description="compose profile; default: the name")


def used_ports(reg: Registry) -> set[int]:
    """Host ports the registry already gives a service."""
    stack = reg.stack
    ports = {stack.gateway.host_port}
    if stack.cache.enabled and stack.cache.host_port:
        ports.add(stack.cache.host_port)
    ports |= {c.host_port for _, c in monitoring_components(reg).values() if c.host_port}
    ports |= {p.host_port for p in reg.providers.providers.values() if p.host_port}
    return ports


def free_port(start: int, used: set[int]) -> int:
    port = start
    while port in used:
        port += 1
    return port


def provider_entry(spec: NewProvider, used: set[int]) -> dict[str, Any]:
    """The providers.yaml entry for `spec` (key order as the shipped registry writes it)."""
    local = spec.type in LOCAL_TYPES and spec.base_url is None
    entry: dict[str, Any] = {"type": spec.type}
    if not local:
        url = spec.base_url or CLOUD_URLS.get(spec.type)
        if url is None:
            raise ValueError(f"a {spec.type} provider needs --base-url (where it answers)")
        entry |= {"base_url": url, "status": "active"}
        key = spec.api_key_env or CLOUD_KEYS.get(spec.type)
        if key:
            entry |= {"requires_api_key": True, "env_var": key}
        entry["models"] = list(spec.models)
        return entry
    d = DEFAULTS[spec.type]
    port = spec.host_port or free_port(d["host_port"], used)
    entry |= {"base_url": f"http://127.0.0.1:{port}", "status": "active",
              "models": [{"name": m} for m in spec.models],
              "health_endpoint": d["health_endpoint"]}
    container: dict[str, Any] = {"image": spec.image or _image(spec)}
    command = _command(spec)
    if command:
        container["command"] = command
    container["port"] = d["port"]  # inside; the host port is base_url's
    container["volumes"] = {_volume(spec): d["mount"]}
    if spec.type == "vllm":
        container["env"] = {"HF_TOKEN": "${HF_TOKEN:-}"}  # gated models; empty otherwise
    if spec.gpus or spec.group:
        gpu: dict[str, Any] = {"count": spec.gpus}
        if spec.group:
            gpu["exclusive_group"] = spec.group
        container["gpu"] = gpu
    container["profile"] = spec.profile or spec.name
    if spec.type == "vllm":
        container["stop_grace_period"] = 20
    container["health"] = {"start_period": d["start_period"]}
    entry["container"] = container
    return entry


def model_file(spec: NewProvider) -> str:
    """llama.cpp: the GGUF file's name in the volume."""
    name = spec.model_file or f"{_slug(spec.models[0] if spec.models else spec.name)}.gguf"
    return name.rsplit("/", 1)[-1]


def _image(spec: NewProvider) -> str:
    d = DEFAULTS[spec.type]
    return d.get("cpu_image", d["image"]) if spec.gpus == 0 else d["image"]


def _volume(spec: NewProvider) -> str:
    # Ollama's and vLLM's caches are shared between providers of the type (one download);
    # a llama.cpp server loads one file from its own
    return f"{spec.name}-models" if spec.type == "llama_cpp" else DEFAULTS[spec.type]["volume"]


def _command(spec: NewProvider) -> CommentedSeq | None:
    d = DEFAULTS[spec.type]
    served = spec.models[0] if spec.models else spec.name
    if spec.type == "llama_cpp":
        args = ["--model", f"{d['mount']}/{model_file(spec)}", "--alias", served,
                "--host", "0.0.0.0", "--port", str(d["port"]), "--ctx-size", "8192",
                "--n-gpu-layers", "99" if spec.gpus else "0", "--metrics"]
    elif spec.type == "vllm":
        if not spec.hf_model:
            raise ValueError("a vLLM provider needs --hf-model (the Hugging Face model it "
                             "loads, e.g. Qwen/Qwen2.5-Coder-7B-Instruct-AWQ)")
        args = ["--model", spec.hf_model, "--served-model-name", served,
                "--gpu-memory-utilization", "0.85", "--max-model-len", "4096",
                "--port", str(d["port"])]
    else:
        return None
    seq = CommentedSeq(DoubleQuotedScalarString(a) for a in args)
    seq.fa.set_flow_style()  # one line, as the shipped registry writes commands
    return seq


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "model"


def mapping_entry(provider: str, backend: str | None = None, aliases: list[str] | None = None,
                  fallback: str | None = None) -> dict[str, Any]:
    """An exact_matches entry of model-mappings.yaml."""
    entry: dict[str, Any] = {"provider": provider}
    if backend:
        entry["backend_model"] = backend
    if aliases:
        entry["aliases"] = list(aliases)
    if fallback:
        entry["fallback"] = fallback
    return entry
