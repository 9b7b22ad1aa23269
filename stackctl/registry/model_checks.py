"""What a provider serves, checked against what its command loads and what the mappings
route: a model file that is not there, a vLLM that answers to another name, a provider
nothing sends requests to. Each would otherwise show only after `up` (a container that exits
after its start period, a 404 "model not found" from the gateway) or never."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

from stackctl.registry.catalog import deployments, host_folder, named_volume, profile_of
from stackctl.registry.load import PROVIDERS, Registry
from stackctl.registry.models import Provider
from stackctl.registry.problems import Problem
from stackctl.registry.source import Loc

MISSING_FILE = "llama.cpp loads"  # how the missing-file error starts (`models import` fixes it)
# llama.cpp's options that fetch the model instead of reading a file
_LLAMA_DOWNLOADS = ("-hf", "--hf-repo", "-mu", "--model-url", "-hfr")


def option(command: list[str], *names: str) -> str | None:
    """The value of the first of `names` in `command` (`--opt value` or `--opt=value`)."""
    for i, arg in enumerate(command):
        for name in names:
            if arg == name and i + 1 < len(command):
                return command[i + 1]
            if arg.startswith(name + "="):
                return arg.split("=", 1)[1]
    return None


def values(command: list[str], name: str) -> list[str]:
    """Every value after `name` up to the next option (`--served-model-name a b`)."""
    out: list[str] = []
    for i, arg in enumerate(command):
        if arg == name:
            for value in command[i + 1:]:
                if value.startswith("-"):
                    break
                out.append(value)
        elif arg.startswith(name + "="):
            out.append(arg.split("=", 1)[1])
    return out


@dataclass(frozen=True)
class ModelFile:
    """Where a llama.cpp provider's model file is: `path` inside the container, and the
    mount holding it (a named volume or a host folder), `relative` to that mount."""

    provider: str
    path: str
    source: str | None  # the volume or host folder; None: in the image itself
    mount: str | None
    relative: str | None

    @property
    def in_volume(self) -> bool:
        return self.source is not None and named_volume(self.source)


def model_file(name: str, prov: Provider) -> ModelFile | None:
    """The GGUF file a llama.cpp provider's command loads (None: none named, or it is
    downloaded by the server)."""
    c = prov.container
    if prov.type != "llama_cpp" or c is None:
        return None
    if option(c.command, *_LLAMA_DOWNLOADS) or c.env.get("LLAMA_ARG_HF_REPO"):
        return None
    path = option(c.command, "-m", "--model") or c.env.get("LLAMA_ARG_MODEL")
    if not path or "$" in path or not path.startswith("/"):
        return None
    inside = PurePosixPath(path)
    best: tuple[str, str] | None = None
    for source, mount in c.volumes.items():
        if inside.is_relative_to(mount) and (best is None or len(mount) > len(best[1])):
            best = (source, mount)
    if best is None:
        return ModelFile(name, path, None, None, None)
    return ModelFile(name, path, best[0], best[1], str(inside.relative_to(best[1])))


def model_files(reg: Registry) -> list[ModelFile]:
    """The model files of the enabled llama.cpp providers."""
    out = []
    for name, prov in reg.providers.providers.items():
        if prov.enabled and (found := model_file(name, prov)) is not None:
            out.append(found)
    return out


def check_models(reg: Registry) -> list[Problem]:
    providers = reg.providers.providers
    src = reg.sources[PROVIDERS]
    out: list[Problem] = []
    for f in model_files(reg):
        if f.source is None or f.in_volume:
            continue  # in the image, or in a volume: `stackctl doctor` looks there
        host = host_folder(reg, f.source) / (f.relative or "")
        if not host.is_file():
            out.append(src.problem(
                "error", ("providers", f.provider, "container", "command"),
                f"{MISSING_FILE} {f.path}, but {host} does not exist: the server would "
                "exit after its start period",
                f"copy the GGUF file there (`stackctl models import FILE.gguf --provider "
                f"{f.provider}`) or fix --model"))
    for name, prov in providers.items():
        c = prov.container
        if not (prov.enabled and c and prov.type == "vllm" and "vllm" in c.image):
            continue  # a vLLM stand-in (the offline example's stub) takes other arguments
        out += _vllm(reg, name, prov)
    out += _unrouted(reg)
    return out


def _vllm(reg: Registry, name: str, prov: Provider) -> list[Problem]:
    """A real vLLM needs --model, and answers only to --served-model-name (default: the
    --model value): the gateway asks for the registry's name."""
    assert prov.container is not None
    src = reg.sources[PROVIDERS]
    loc: Loc = ("providers", name, "container", "command")
    command = prov.container.command
    model = option(command, "--model")
    if model is None:
        return [src.problem("error", loc if command else loc[:-1],
                            "vLLM is started without --model: it would load its default "
                            "model, not this provider's",
                            "add --model HF_REPO/NAME (e.g. Qwen/Qwen2.5-Coder-7B-Instruct-AWQ)")]
    served = values(command, "--served-model-name") or [model]
    asked = list(dict.fromkeys(prov.model_names + [
        d.backend for deps in deployments(reg).values() for d in deps if d.provider == name]))
    missing = [m for m in asked if m not in served]
    if not missing:
        return []
    return [src.problem(
        "error", loc, f"vLLM answers to {', '.join(served)}, but the registry asks it for "
        f"{', '.join(missing)}: every request would fail with 'model does not exist'",
        f"add --served-model-name {' '.join(asked)} to its command, or name the model "
        f"{served[0]!r} in the registry")]


def _unrouted(reg: Registry) -> list[Problem]:
    """An enabled provider that no mapping routes to gets no request from the gateway."""
    m = reg.mappings
    routed = {d.provider for deps in deployments(reg).values() for d in deps}
    routed |= {p.provider for p in m.patterns} | {c.provider for c in m.capabilities.values()
                                                   if c.provider}
    defaults = set(reg.stack.default_profiles)
    out = []
    for name, prov in reg.providers.providers.items():
        if not prov.enabled or name in routed:
            continue
        started = prov.container is not None and profile_of(name, prov) in defaults
        why = ("`stackctl up` starts it, but the gateway never sends it a request"
               if started else "the gateway never sends it a request"
               + ("" if prov.container is None else
                  " and no default profile starts it (stack.yaml default_profiles)"))
        out.append(reg.sources[PROVIDERS].problem(
            "warning", ("providers", name), f"no mapping routes a model to {name!r}: {why}",
            f"add one: `stackctl add model {prov.model_names[0] if prov.models else 'NAME'} "
            f"--provider {name}`, or set status: disabled"))
    return out

