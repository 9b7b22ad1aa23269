"""The container sections `init` writes, per provider type, and the old format's server
settings as command-line arguments (pure: tested as data).

Images, ports, volumes and health settings are `add provider`'s (registry.templates.DEFAULTS,
the shipped registry's), so a migrated or detected registry runs what stackctl is tested with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ruamel.yaml.comments import CommentedMap

from stackctl.onboarding.yamltext import comment_after, flow, mapping
from stackctl.registry.templates import DEFAULTS

ALL_LAYERS = "999"  # llama.cpp offloads at most the model's layers: "all" for any model

Kind = Literal["value", "switch", "negswitch", "onoff", "layers", "join", "lower"]


@dataclass(frozen=True)
class Flag:
    flag: str
    kind: Kind = "value"


# old setting (llama-cpp-python server / vLLM engine argument names) → llama.cpp / vLLM flag
LLAMA_CPP_FLAGS: dict[str, Flag] = {
    "n_ctx": Flag("--ctx-size"), "n_gpu_layers": Flag("--n-gpu-layers", "layers"),
    "n_parallel": Flag("--parallel"), "parallel": Flag("--parallel"),
    "threads": Flag("--threads"), "n_threads": Flag("--threads"),
    "n_threads_batch": Flag("--threads-batch"), "n_batch": Flag("--batch-size"),
    "n_ubatch": Flag("--ubatch-size"), "flash_attn": Flag("--flash-attn", "onoff"),
    "rope_freq_base": Flag("--rope-freq-base"), "rope_freq_scale": Flag("--rope-freq-scale"),
    "use_mlock": Flag("--mlock", "switch"), "mlock": Flag("--mlock", "switch"),
    "use_mmap": Flag("--no-mmap", "negswitch"),
    "main_gpu": Flag("--main-gpu"), "tensor_split": Flag("--tensor-split", "join"),
    "cache_type_k": Flag("--cache-type-k"), "cache_type_v": Flag("--cache-type-v"),
    "seed": Flag("--seed"), "n_predict": Flag("--n-predict"),
    "cont_batching": Flag("--cont-batching", "switch"),
}
VLLM_FLAGS: dict[str, Flag] = {
    "gpu_memory_utilization": Flag("--gpu-memory-utilization"),
    "max_model_len": Flag("--max-model-len"),
    "tensor_parallel_size": Flag("--tensor-parallel-size"),
    "pipeline_parallel_size": Flag("--pipeline-parallel-size"),
    "dtype": Flag("--dtype"), "quantization": Flag("--quantization", "lower"),
    "max_num_seqs": Flag("--max-num-seqs"), "max_num_batched_tokens": Flag("--max-num-batched-tokens"),
    "swap_space": Flag("--swap-space"), "cpu_offload_gb": Flag("--cpu-offload-gb"),
    "enforce_eager": Flag("--enforce-eager", "switch"),
    "trust_remote_code": Flag("--trust-remote-code", "switch"),
    "enable_prefix_caching": Flag("--enable-prefix-caching", "switch"),
    "kv_cache_dtype": Flag("--kv-cache-dtype"), "block_size": Flag("--block-size"),
    "revision": Flag("--revision"), "tokenizer": Flag("--tokenizer"),
    "seed": Flag("--seed"),
}


@dataclass(frozen=True)
class Mapped:
    key: str  # the old setting
    args: tuple[str, ...]  # what it became ([] when a false switch drops it)


def settings_to_args(settings: dict[str, Any], table: dict[str, Flag]) -> tuple[list[Mapped], list[str]]:
    """Old settings → (each mapped setting with its arguments, the keys with no flag or a
    value that cannot be one). Order follows `settings`; a flag given twice (two old names
    for one setting) is taken once, the first."""
    mapped: list[Mapped] = []
    left: list[str] = []
    seen: set[str] = set()
    for key, value in settings.items():
        flag = table.get(key)
        args = _args(flag, value) if flag else None
        if flag is None or args is None or flag.flag in seen:
            left.append(key)
            continue
        seen.add(flag.flag)
        mapped.append(Mapped(key, tuple(args)))
    return mapped, left


def _args(flag: Flag, value: Any) -> list[str] | None:
    if isinstance(value, (dict,)) or value is None:
        return None
    if flag.kind in ("switch", "negswitch"):
        on = flag.kind == "switch"  # negswitch: the flag turns a default-on setting off
        return [flag.flag] if value is on else [] if value is (not on) else None
    if flag.kind == "onoff":
        return [flag.flag, "on" if value else "off"] if isinstance(value, bool) else None
    if flag.kind == "layers":
        if isinstance(value, bool) or not isinstance(value, int):
            return None
        return [flag.flag, ALL_LAYERS if value < 0 else str(value)]
    if flag.kind == "join":
        return [flag.flag, ",".join(str(v) for v in value)] if isinstance(value, list) else None
    if isinstance(value, (list, bool)):
        return None
    text = str(value)
    return [flag.flag, text.lower() if flag.kind == "lower" else text]


# -- container sections -----------------------------------------------------------------------

def gpu_section(group: str | None = None, weights_gib: float | None = None,
                kv_gib: float | None = None) -> CommentedMap:
    gpu = mapping({"count": 1})
    if group:
        gpu["exclusive_group"] = group
    if weights_gib is not None:
        gpu["weights_gib"] = weights_gib
        comment_after(gpu, "weights_gib", "the model file's size: its footprint in the group")
    if kv_gib is not None:
        gpu["kv_gib"] = kv_gib
        comment_after(gpu, "kv_gib", "KV cache beside the weights (a guess: adjust)")
    return gpu


def ollama_container(profile: str, gpu: bool) -> CommentedMap:
    d = DEFAULTS["ollama"]
    c = mapping({"image": d["image"], "port": d["port"],
                 "volumes": mapping({d["volume"]: d["mount"]}),
                 "env": mapping({"OLLAMA_KEEP_ALIVE": "30m"})})
    if gpu:
        c["gpu"] = gpu_section()
    c["profile"] = profile
    c["health"] = mapping({"via": "ollama-cli", "start_period": d["start_period"]})
    comment_after(c["health"], "via", "the image has no curl")
    return c


def llama_cpp_container(profile: str, model_file: str, alias: str, extra: list[str],
                        gpu: CommentedMap | None) -> CommentedMap:
    """llama.cpp's own server; `extra` are the mapped settings. --port is explicit (the
    server's default is moving away from 8080), --metrics lets Prometheus scrape it."""
    d = DEFAULTS["llama_cpp"]
    command = ["--model", f"{d['mount']}/{model_file}", "--alias", alias, "--host", "0.0.0.0",
               "--port", str(d["port"]), *extra]
    if gpu is not None and "--n-gpu-layers" not in extra:
        command += ["--n-gpu-layers", ALL_LAYERS]
    command.append("--metrics")
    c = mapping({"image": d["image"] if gpu is not None else d["cpu_image"],
                 "command": flow(command), "port": d["port"],
                 "volumes": mapping({d["volume"]: d["mount"]})})
    if gpu is not None:
        c["gpu"] = gpu
    c["profile"] = profile
    c["health"] = mapping({"endpoint": d["health_endpoint"], "via": "curl",
                           "start_period": d["start_period"]})
    comment_after(c["health"], "endpoint", "503 while the model loads")
    return c


def vllm_container(profile: str, hf_model: str, served: list[str], extra: list[str],
                   gpu: CommentedMap) -> CommentedMap:
    """vLLM's OpenAI server; it answers under --served-model-name, the registry's names."""
    d = DEFAULTS["vllm"]
    command = ["--model", hf_model, "--served-model-name", *served, *extra]
    if "--port" not in extra:
        command += ["--port", str(d["port"])]
    c = mapping({"image": d["image"], "command": flow(command), "port": d["port"],
                 "volumes": mapping({d["volume"]: d["mount"]}),
                 "env": mapping({"HF_TOKEN": "${HF_TOKEN:-}"}), "gpu": gpu, "profile": profile,
                 "stop_grace_period": 20,
                 "health": mapping({"endpoint": d["health_endpoint"], "via": "python",
                                    "start_period": d["start_period"]})})
    comment_after(c["env"], "HF_TOKEN", "gated models: put the token in .env")
    comment_after(c["health"], "endpoint", "ready = the model is listed")
    return c
