"""A new registry from what `detect` found (pure: Machine in, three YAML trees out).

- a running Ollama: a containerized Ollama listing its models (the stack's own, beside the
  one found, so on the next port when that one holds 11434);
- each GGUF file: a llama.cpp server, on the GPU when one is detected and the file fits;
- each Hugging Face cache model, with a GPU: a vLLM server;
- the GPU members form one group `gpu0` with memory_gib from nvidia-smi, so those that fit
  may load together and `stackctl switch` moves between the others.
Volumes are named (a host folder mount is a `validate` warning: the container may write
there); the report says how to put a model file in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ruamel.yaml.comments import CommentedMap

from stackctl.onboarding.containers import (
    gpu_section,
    llama_cpp_container,
    ollama_container,
    vllm_container,
)
from stackctl.onboarding.detect import Machine, slug
from stackctl.onboarding.stackfile import GroupPlan, MonitoringDirs, stack_tree
from stackctl.onboarding.yamltext import comment_before, flow, mapping
from stackctl.registry.templates import DEFAULTS, free_port

GROUP = "gpu0"
KV_GUESS_GIB = 1.0  # a llama.cpp member's KV cache beside its weights, until the user says
FIT = 0.9  # a model file larger than this share of the GPU's memory runs on the CPU


@dataclass
class Plan:
    providers: CommentedMap
    mappings: CommentedMap
    stack: CommentedMap
    notes: list[str] = field(default_factory=list)  # what the user does next, what was skipped


def plan_fresh(machine: Machine, monitoring: MonitoringDirs | None,
               project: str = "stackctl") -> Plan:
    providers, models = mapping(), mapping()
    notes = list(machine.notes)
    defaults: list[str] = []
    members: list[str] = []
    always_on: list[str] = []  # models a switched-out GPU member falls back to
    gpu = machine.gpus[0] if machine.gpus else None
    used: set[str] = set()

    def unique(name: str) -> str:
        out, n = name, 1
        while out in used:
            n += 1
            out = f"{name}-{n}"
        used.add(out)
        return out

    if machine.ollama and machine.ollama.models:
        found = machine.ollama
        port = free_port(DEFAULTS["ollama"]["host_port"], {found.port})
        name = unique("ollama")
        prov = mapping({"type": "ollama", "base_url": f"http://127.0.0.1:{port}",
                        "status": "active",
                        "description": f"Ollama in the stack; these models were found at {found.url}",
                        "models": [mapping({"name": m}) for m in found.models],
                        "container": ollama_container(name, gpu is not None)})
        providers[name] = prov
        comment_before(providers, name, f"Ollama answered at {found.url}. The stack runs its own "
                       f"(port {port}) with an empty volume:\npull each model into it before "
                       "the first request.", 2)
        for m in found.models:
            models[m] = mapping({"provider": name})
        defaults.append(name)
        always_on.append(found.models[0])
        notes.append(f"pull the Ollama models into the stack's volume once it runs: "
                     f"docker compose -p {project} exec {name} ollama pull MODEL")
    elif machine.ollama:
        notes.append(f"Ollama answers at {machine.ollama.url} but lists no model: not added")

    for i, f in enumerate(machine.ggufs):
        public = unique(slug(f.path.stem))
        name = unique(f"llamacpp-{public}"[:48].rstrip("-_."))
        on_gpu = gpu is not None and f.size_gib + KV_GUESS_GIB <= gpu.memory_gib * FIT
        # weights_gib must be > 0: a file of a few MiB rounds to 0.0 GiB
        gpu_map = gpu_section(GROUP, max(f.size_gib, 0.01), KV_GUESS_GIB) if on_gpu else None
        port = DEFAULTS["llama_cpp"]["host_port"] + i  # the next files count up
        prov = mapping({"type": "llama_cpp", "base_url": f"http://127.0.0.1:{port}",
                        "status": "active",
                        "description": f"llama.cpp serving {f.path.name} ({f.size_gib:g} GiB)",
                        "models": [mapping({"name": public})],
                        "container": llama_cpp_container(name, f.path.name, public,
                                                         ["--ctx-size", "4096"], gpu_map)})
        providers[name] = prov
        comment_before(providers, name, f"found {f.path}: copy it into the volume "
                       f"llamacpp-models\n(the container reads /models/{f.path.name})", 2)
        models[public] = mapping({"provider": name})
        if on_gpu:
            members.append(name)
        elif not any(d.startswith("llamacpp-") for d in defaults):
            defaults.append(name)  # one CPU server at start: each one holds its model in RAM
            always_on.append(public)
        notes.append(f"copy {f.path} into the volume llamacpp-models (as /models/{f.path.name})")

    if machine.hf_models and gpu is None:
        notes.append(f"{len(machine.hf_models)} Hugging Face model(s) found, but vLLM needs an "
                     "NVIDIA GPU and none was detected: not added")
    for i, hf in enumerate(machine.hf_models if gpu is not None else []):
        public = unique(slug(hf.repo_id.split("/", 1)[1]))
        name = unique(f"vllm-{public}"[:48].rstrip("-_."))
        port = DEFAULTS["vllm"]["host_port"] + i
        prov = mapping({"type": "vllm", "base_url": f"http://127.0.0.1:{port}",
                        "status": "active",
                        "description": f"vLLM serving {hf.repo_id}",
                        "models": [mapping({"name": public, "hf_model": hf.repo_id})],
                        "container": vllm_container(name, hf.repo_id, [public],
                                                    ["--gpu-memory-utilization", "0.9"],
                                                    gpu_section(GROUP))})
        providers[name] = prov
        comment_before(providers, name, f"found in the Hugging Face cache ({hf.size_gib:g} GiB): "
                       "vLLM downloads it into the volume\nhf-cache on first start", 2)
        models[public] = mapping({"provider": name})
        members.append(name)

    groups: dict[str, GroupPlan] = {}
    if members and gpu is not None:
        defaults.append(members[0])  # one member at start; `stackctl switch` moves the group
        others = "; ".join(f"GPU {g.index}: {g.name}, {g.memory_gib:g} GiB" for g in machine.gpus[1:])
        groups[GROUP] = GroupPlan(
            memory_gib=gpu.memory_gib, members=members,
            why=f"GPU 0: {gpu.name}, {gpu.memory_gib:g} GiB (nvidia-smi). Members whose "
                "footprints fit load together;\n`stackctl switch MEMBER` moves the group."
                + (f"\nNot used by the group: {others}." if others else ""))
    chains = mapping()
    for m in members:
        public = next(k for k, v in models.items() if v["provider"] == m)
        fallback = [x for x in always_on if x != public][:2]
        if fallback:
            chains[public] = mapping({"chain": flow(fallback)})
    mappings_doc = mapping({"exact_matches": models})
    mappings_doc.yaml_set_start_comment("Model routing: the names clients send to the gateway "
                                        "and where they go.\nWritten by `stackctl init`.")
    if chains:
        mappings_doc["fallback_chains"] = chains
        comment_before(mappings_doc, "fallback_chains", "\nWhile a GPU member is switched "
                       "out, its requests are served by the next model here.", 0)
    providers_doc = mapping({"providers": providers})
    providers_doc.yaml_set_start_comment(
        "Provider registry, written by `stackctl init` from what it found on this machine.\n"
        "Reference: README.md § Registry. Check it with `stackctl validate`.")
    stack = stack_tree(project, defaults, groups, monitoring,
                       "Gateway, cache, monitoring, GPU groups. Every key is optional; "
                       "defaults in README § stack.yaml.")
    return Plan(providers_doc, mappings_doc, stack, notes)


def gguf_folders(target: Path, extra: list[Path], home: Path) -> list[Path]:
    """Where GGUF files are looked for: the config folder, ~/models, and the given ones."""
    return list(dict.fromkeys([target, home / "models", *extra]))
