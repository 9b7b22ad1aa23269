"""Where `stackctl models import FILE.gguf --provider P` puts a file (pure: registry in,
plan out): the file P's `--model` loads when that lies in one of its mounts, else the
first mount under the file's own name (and the plan says to point --model at it)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from stackctl.registry.catalog import host_folder, named_volume, profile_of
from stackctl.registry.load import Registry
from stackctl.registry.model_checks import model_file


class ImportRefused(ValueError):
    """The provider cannot take a model file this way; the message says why and what to do."""


@dataclass(frozen=True)
class ImportPlan:
    provider: str
    profile: str
    source: Path  # the GGUF file on this machine
    inside: str  # its path in the container
    volume: str | None  # the named volume (registry name) holding `inside`
    host_path: Path | None  # or the host file it lands in (a host-folder mount)
    note: str | None = None  # what the user still has to do


def plan_import(reg: Registry, provider: str, source: Path, name: str | None = None
                ) -> ImportPlan:
    providers = reg.providers.providers
    prov = providers.get(provider)
    if prov is None:
        raise ImportRefused(f"no provider {provider!r} (llama.cpp providers: "
                            + (", ".join(n for n, p in providers.items()
                                         if p.type == "llama_cpp") or "none") + ")")
    if prov.type != "llama_cpp" or prov.container is None:
        hint = (" (Ollama keeps its own store: `stackctl models pull MODEL`)"
                if prov.type == "ollama" else "")
        raise ImportRefused(f"{provider!r} is a {prov.type} provider"
                            f"{'' if prov.container else ' without a container'}: a GGUF "
                            f"file is imported into a llama_cpp provider's volume{hint}")
    mounts = prov.container.volumes
    if not mounts:
        raise ImportRefused(f"{provider!r} mounts no volume to hold model files: add "
                            f"container.volumes: {{{provider}-models: /models}} to it "
                            "(`stackctl add provider llama_cpp` writes one)")
    loads = model_file(provider, prov)
    if loads is not None and loads.source is not None:
        mount_source, mount = loads.source, loads.mount or ""
    else:
        mount_source, mount = next(iter(mounts.items()))
    inside = (str(PurePosixPath(mount) / name) if name else
              loads.path if loads is not None and loads.source is not None else
              str(PurePosixPath(mount) / source.name))
    note = None
    if loads is None or loads.path != inside:
        now = f"its --model loads {loads.path}" if loads else "its command names no --model"
        note = f"{now}: set --model {inside} in its container.command to load this file"
    rel = PurePosixPath(inside).relative_to(mount)
    if named_volume(mount_source):
        return ImportPlan(provider, profile_of(provider, prov), source, inside, mount_source,
                          None, note)
    return ImportPlan(provider, profile_of(provider, prov), source, inside, None,
                      host_folder(reg, mount_source) / rel, note)
