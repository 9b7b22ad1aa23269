"""providers.yaml of the old format → stackctl's (pure, on the round-trip tree: the user's
names, comments and descriptive keys stay).

Each local provider gets a container section; its old settings (gpu_memory_utilization,
max_model_len, configuration.n_ctx, n_gpu_layers …) become its server's arguments; local
vLLM servers form one GPU group (a memory budget when the old file names the GPU's memory),
so the "one vLLM at a time" the old setup kept by hand is what `stackctl switch` does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from ruamel.yaml.comments import CommentedMap

from stackctl.onboarding.containers import (
    LLAMA_CPP_FLAGS,
    VLLM_FLAGS,
    Mapped,
    gpu_section,
    llama_cpp_container,
    ollama_container,
    settings_to_args,
    vllm_container,
)
from stackctl.onboarding.detect import slug
from stackctl.onboarding.report import Recorder, line_of
from stackctl.onboarding.stackfile import GroupPlan
from stackctl.onboarding.yamltext import append_key, comment_before, remove_key, rename_key
from stackctl.registry.models import LOCAL_TYPES, MONITORING_DEFAULTS, Cache, Gateway, Provider
from stackctl.registry.templates import free_port

GROUP = "gpu0"
SERVICE_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]*")  # registry/checks.py: a Compose service name
TOP_LEVEL_SETTINGS = ("gpu_memory_utilization", "max_model_len")
RAN_ELSEWHERE = {"service_file": "the systemd unit that started it",
                 "location": "where the old setup ran it from"}
VLLM_QUANTIZATION = {"awq", "gptq", "fp8", "bitsandbytes", "squeezellm", "marlin", "awq_marlin",
                     "gptq_marlin", "compressed-tensors"}
LLAMA_MODELS_FILE = "llamacpp-models.yaml"  # the old setup's alias → GGUF file list
FIRST_FREE_PORT = 8300  # where a provider whose port the stack itself takes is moved


@dataclass
class ProvidersResult:
    renames: dict[str, str] = field(default_factory=dict)
    groups: dict[str, GroupPlan] = field(default_factory=dict)
    default_profiles: list[str] = field(default_factory=list)
    enabled: set[str] = field(default_factory=set)  # providers active after the migration


@dataclass(frozen=True)
class LlamaModel:
    """An entry of the old llamacpp-models.yaml (alias → the GGUF file it serves)."""

    filename: str
    gpu_layers: int | None = None
    context_length: int | None = None
    line: int | None = None  # of the entry in llamacpp-models.yaml


def is_local(p: dict) -> bool:
    try:
        host = urlparse(str(p.get("base_url", ""))).hostname or ""
    except ValueError:
        return False
    return p.get("type") in LOCAL_TYPES and host in ("127.0.0.1", "localhost", "::1")


def uses_gpu(providers: dict) -> bool:
    """Whether the old setup ran on a GPU: a vLLM server, a stated GPU, or layers offloaded."""
    for p in providers.values():
        if not isinstance(p, dict):
            continue
        layers = (p.get("configuration") or {}).get("n_gpu_layers") \
            if isinstance(p.get("configuration"), dict) else None
        if (p.get("type") == "vllm" and is_local(p)) or p.get("hardware_requirements") \
                or (isinstance(layers, int) and layers != 0):
            return True
    return False


def model_names(p: dict) -> list[str]:
    out = []
    for m in p.get("models") or []:
        name = m.get("name") if isinstance(m, dict) else m
        if isinstance(name, str):
            out.append(name)
    return out


def migrate_providers(tree: CommentedMap, rec: Recorder, backend_models: dict[str, list[str]],
                      llama_models: dict[str, LlamaModel]) -> ProvidersResult:
    """Edit `tree` (providers.yaml) in place; `backend_models`: provider → the backend_model
    names its exact matches give (vLLM's Hugging Face id when the old file names it there)."""
    out = ProvidersResult()
    root = tree.get("providers")
    if not isinstance(root, CommentedMap):
        return out
    lines = {name: line_of(root, name) for name in root}
    _rename(root, rec, out)
    lines |= {new: lines[old] for old, new in out.renames.items()}
    gpu = uses_gpu(root)
    members: list[tuple[str, bool]] = []  # (vLLM provider, active in the old setup)
    memory: list[float] = []
    for name in list(root):
        p = root[name]
        if not isinstance(p, CommentedMap):
            continue
        _drop_unknown(name, p, rec)
        vram = (p.get("hardware_requirements") or {}).get("gpu_vram_gb") \
            if isinstance(p.get("hardware_requirements"), dict) else None
        if isinstance(vram, (int, float)) and not isinstance(vram, bool) and vram > 0:
            memory.append(float(vram))
        if p.get("status", "active") == "active":
            out.enabled.add(name)
        if not is_local(p) or "container" in p:
            continue
        for key, what in RAN_ELSEWHERE.items():
            if key in p:
                rec.dropped(line_of(p, key), f"providers.{name}.{key}", f"{what}: stackctl runs "
                            "the container instead (the key is kept, as a note)")
        kind = p["type"]
        if kind == "ollama":
            container = ollama_container(name, gpu)
            _leftovers(name, p, rec, list(_config(p)), "Ollama")
            what = f"{container['image']}, models in the volume ollama-models (pull them there)"
        elif kind == "llama_cpp":
            container, what = _llama_cpp(name, p, rec, gpu, llama_models)
        else:
            container, what = _vllm(name, p, rec, backend_models.get(name, []))
            members.append((name, p.get("status", "active") == "active"))
            if p.get("status", "active") != "active":
                rec.changed(line_of(p, "status"), f"providers.{name}.status",
                            f"{p['status']} → active: a member of GPU group {GROUP} "
                            f"(not started by default; `stackctl switch {name}` runs it)")
                p["status"] = "active"
                out.enabled.add(name)
        append_key(p, "container", container)
        comment_before(p, "container", "added by `stackctl init --from`: how stackctl runs it", 4)
        rec.changed(lines.get(name), f"providers.{name}", f"container added: {what}")
    _ports(root, rec, out)
    if members:
        budget = max(memory) if memory else None
        why = (f"The old registry's vLLM servers ran one at a time on one GPU. {budget:g} GiB "
               "(hardware_requirements.gpu_vram_gb):\nmembers whose --gpu-memory-utilization "
               "share fits load together." if budget else
               "The old registry's vLLM servers ran one at a time: stackctl keeps it so.")
        out.groups[GROUP] = GroupPlan(memory_gib=budget, members=[m for m, _ in members], why=why)
        first = next((m for m, active in members if active), None)
    else:
        first = None
    for name, p in root.items():
        if name in out.enabled and isinstance(p, CommentedMap) and "container" in p \
                and (not any(name in g.members for g in out.groups.values()) or name == first):
            out.default_profiles.append(p["container"].get("profile") or name)
    return out


def _rename(root: CommentedMap, rec: Recorder, out: ProvidersResult) -> None:
    taken = set(root)
    for name in list(root):
        if SERVICE_NAME.fullmatch(str(name)):
            continue
        new, n = slug(str(name)), 1
        while new in taken:
            n += 1
            new = f"{slug(str(name))}-{n}"
        taken.add(new)
        rec.changed(line_of(root, name), f"providers.{name}", f"renamed {new!r}: a Compose "
                    "service name is lowercase letters, digits, '_', '.', '-'")
        rename_key(root, name, new)
        out.renames[name] = new


def _drop_unknown(name: str, p: CommentedMap, rec: Recorder) -> None:
    for key in list(p):
        if key not in Provider.model_fields:
            rec.dropped(line_of(p, key), f"providers.{name}.{key}",
                        "not a key of the registry format: removed")
            remove_key(p, key)


def _config(p: CommentedMap) -> dict[str, Any]:
    cfg = p.get("configuration")
    return dict(cfg) if isinstance(cfg, dict) else {}


def _leftovers(name: str, p: CommentedMap, rec: Recorder, keys: list[str], server: str) -> None:
    cfg = p.get("configuration")
    for key in keys:
        rec.dropped(line_of(cfg, key) if cfg is not None else None,
                    f"providers.{name}.configuration.{key}",
                    f"no {server} option for it: kept as a note, not applied")


def _apply(name: str, p: CommentedMap, rec: Recorder, mapped: list[Mapped],
           origins: dict[str, tuple[int | None, str]]) -> list[str]:
    """Remove the mapped settings from the provider (the command holds them now);
    `origins`: where a setting taken from elsewhere (a model's context_length) was found."""
    args: list[str] = []
    cfg = p.get("configuration")
    for m in mapped:
        args += m.args
        if m.key in TOP_LEVEL_SETTINGS and m.key in p:
            node, path = p, f"providers.{name}.{m.key}"
        elif isinstance(cfg, CommentedMap) and m.key in cfg:
            node, path = cfg, f"providers.{name}.configuration.{m.key}"
        else:
            line, path = origins.get(m.key, (None, f"providers.{name}"))
            rec.changed(line, path, "read as command " + " ".join(m.args))
            continue
        rec.changed(line_of(node, m.key), path, f"{_shown(node[m.key])} → command "
                    + (" ".join(m.args) if m.args else "(nothing: off is the default)"))
        remove_key(node, m.key)
    if isinstance(cfg, CommentedMap) and not cfg:
        remove_key(p, "configuration")
    return args


def _llama_cpp(name: str, p: CommentedMap, rec: Recorder, gpu: bool,
               llama_models: dict[str, LlamaModel]) -> tuple[CommentedMap, str]:
    names = model_names(p)
    alias = names[0] if names else name
    known = llama_models.get(alias)
    settings = _config(p)
    context, origins = _context_length(name, p), {}
    if "n_ctx" not in settings and known and known.context_length:
        settings["n_ctx"] = known.context_length
        origins["n_ctx"] = (None, f"providers.{name} ({LLAMA_MODELS_FILE}:{known.line} "
                                  "context_length)")
    elif "n_ctx" not in settings and context:
        settings["n_ctx"], origins["n_ctx"] = context
    if "n_gpu_layers" not in settings and known and known.gpu_layers is not None:
        settings["n_gpu_layers"] = known.gpu_layers
        origins["n_gpu_layers"] = (None, f"providers.{name} ({LLAMA_MODELS_FILE}:{known.line} "
                                         "recommended_gpu_layers)")
    mapped, left = settings_to_args(settings, LLAMA_CPP_FLAGS)
    _leftovers(name, p, rec, [k for k in left if k in _config(p)], "llama.cpp server")
    layers = settings.get("n_gpu_layers")
    on_gpu = layers != 0 if isinstance(layers, int) else gpu
    args = _apply(name, p, rec, mapped, origins)
    file = known.filename if known else f"{slug(alias)}.gguf"
    container = llama_cpp_container(name, file, alias, args, gpu_section() if on_gpu else None)
    return container, (f"{container['image']}, the model file /models/{file} in the volume "
                       "llamacpp-models (put it there)")


def _context_length(name: str, p: CommentedMap) -> tuple[int, tuple[int | None, str]] | None:
    """The first model's context_length, with where it is (line, path)."""
    models = p.get("models") or []
    first = models[0] if models else None
    value = first.get("context_length") if isinstance(first, dict) else None
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value, (line_of(first, "context_length"), f"providers.{name}.models[0].context_length")
    return None


def _vllm(name: str, p: CommentedMap, rec: Recorder,
          backends: list[str]) -> tuple[CommentedMap, str]:
    names = model_names(p)
    first = (p.get("models") or [None])[0]
    hf = next((m for m in [first.get("hf_model") if isinstance(first, dict) else None,
                           *backends, *names] if isinstance(m, str) and "/" in m), None)
    if hf is None:
        hf = names[0] if names else name
        rec.dropped(line_of(p, "models"), f"providers.{name}.models",
                    f"no Hugging Face id (Org/Name) for vLLM's --model: {hf!r} is a guess")
    settings = {k: p[k] for k in TOP_LEVEL_SETTINGS if k in p} | _config(p)
    context, origins = _context_length(name, p), {}
    if "max_model_len" not in settings and context:
        settings["max_model_len"], origins["max_model_len"] = context
    quant = str(first.get("quantization", "")).lower() if isinstance(first, dict) else ""
    if "quantization" not in settings and quant in VLLM_QUANTIZATION:
        settings["quantization"] = quant
        origins["quantization"] = (line_of(first, "quantization"),
                                   f"providers.{name}.models[0].quantization")
    mapped, left = settings_to_args(settings, VLLM_FLAGS)
    _leftovers(name, p, rec, [k for k in left if k in _config(p)], "vLLM")
    args = _apply(name, p, rec, mapped, origins)
    container = vllm_container(name, hf, names or [hf], args, gpu_section(GROUP))
    return container, f"{container['image']} serving {hf}, GPU group {GROUP}"


def _ports(root: CommentedMap, rec: Recorder, out: ProvidersResult) -> None:
    """A provider on a port the stack's own services publish moves to a free one."""
    used = {Gateway().host_port, Cache().host_port}
    used |= {d["host_port"] for d in MONITORING_DEFAULTS.values() if "host_port" in d}
    for name, p in root.items():
        if name not in out.enabled or not isinstance(p, CommentedMap) or "container" not in p:
            continue
        try:
            port = urlparse(str(p.get("base_url"))).port
        except ValueError:
            continue
        if port is None or port not in used:
            used.add(port) if port else None
            continue
        new = free_port(FIRST_FREE_PORT, used)
        used.add(new)
        c = p["container"]
        c.insert(list(c).index("port") + 1, "host_port", new)
        rec.changed(line_of(p, "base_url"), f"providers.{name}.base_url",
                    f"port {port} is the stack's own: published on {new} (container.host_port)")


def _shown(value: Any) -> str:
    """A setting as YAML writes it (true, not True)."""
    return str(value).lower() if isinstance(value, bool) else str(value)
