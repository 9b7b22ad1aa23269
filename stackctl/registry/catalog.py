"""What the gateway will serve: public model names and the deployments behind them."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from stackctl.registry.load import Registry
from stackctl.registry.models import GpuGroup, MonitoringService, Provider
from stackctl.registry.vocabulary import MONITORING, MONITORING_SERVICES

# Docker's named volumes; anything else on the left of a mount is a host path
VOLUME_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")


def named_volume(source: str) -> bool:
    return VOLUME_NAME.fullmatch(source) is not None


def host_folder(reg: Registry, source: str) -> Path:
    """A host path of a provider's volumes, resolved: relative to the config folder like every
    path of the registry, `~` as Compose reads it (the home folder)."""
    return Path(os.path.expanduser(source)).resolve() if source.startswith("~") \
        else reg.resolve(source)


@dataclass(frozen=True)
class Deployment:
    public: str  # name clients ask for
    provider: str
    backend: str  # name the provider knows the model by
    weight: float | None = None


def backend_for(provider: Provider, public: str, explicit: str | None) -> str:
    """The provider-side model name: explicit, else the public name if served, else the first."""
    if explicit:
        return explicit
    if public in provider.model_names or not provider.models:
        return public
    return provider.models[0].name


def deployments(reg: Registry) -> dict[str, list[Deployment]]:
    """Public model name → deployments on enabled providers, in registry order.

    A load_balancing group replaces an exact match of the same name (weighted deployments).
    """
    providers = reg.providers.providers
    out: dict[str, list[Deployment]] = {}
    for name, match in reg.mappings.exact_matches.items():
        prov = providers.get(match.provider)
        if prov is not None and prov.enabled:
            out[name] = [Deployment(name, match.provider,
                                    backend_for(prov, name, match.backend_model))]
    for name, group in reg.mappings.load_balancing.items():
        members = []
        for wp in group.providers:
            prov = providers.get(wp.provider)
            if prov is not None and prov.enabled:
                members.append(Deployment(name, wp.provider,
                                          backend_for(prov, name, wp.preferred_model), wp.weight))
        if members:
            out[name] = members
    return out


def declared_models(reg: Registry) -> set[str]:
    """Every public name the mappings declare, whatever its provider's status."""
    return set(reg.mappings.exact_matches) | set(reg.mappings.load_balancing)


def fallbacks(reg: Registry) -> dict[str, list[str]]:
    """Model → ordered fallback models: fallback_chains first, else an exact match's `fallback`."""
    out = {m: list(c.chain) for m, c in reg.mappings.fallback_chains.items()
           if m != "default" and c.chain}
    for name, match in reg.mappings.exact_matches.items():
        if match.fallback and name not in out:
            out[name] = [match.fallback]
    return out


def exclusive_groups(reg: Registry) -> dict[str, list[str]]:
    """GPU group → member provider names (enabled providers with containers), registry order."""
    groups: dict[str, list[str]] = {}
    for name, prov in reg.providers.providers.items():
        c = prov.container
        if prov.enabled and c and c.gpu and c.gpu.exclusive_group:
            groups.setdefault(c.gpu.exclusive_group, []).append(name)
    return groups


def group_settings(reg: Registry, group: str) -> GpuGroup:
    """How `group` switches: stack.yaml's gpu_groups entry, else restart."""
    return reg.stack.gpu_groups.get(group) or GpuGroup()


def on_demand_groups(reg: Registry) -> dict[str, list[str]]:
    """The exclusive groups whose members the resident scheduler loads on demand."""
    return {g: ms for g, ms in exclusive_groups(reg).items()
            if group_settings(reg, g).on_demand}


def sleep_members(reg: Registry) -> set[str]:
    """Members of the exclusive groups that switch with vLLM's sleep mode."""
    return {m for g, names in exclusive_groups(reg).items()
            if group_settings(reg, g).switch == "sleep" for m in names}


def profile_of(name: str, prov: Provider) -> str:
    return (prov.container.profile if prov.container and prov.container.profile else name)


def profiles(reg: Registry) -> list[str]:
    """Every profile the stack defines, registry order, monitoring last."""
    out: list[str] = []
    for name, prov in reg.providers.providers.items():
        if prov.enabled and prov.container is not None:
            p = profile_of(name, prov)
            if p not in out:
                out.append(p)
    return out + [MONITORING]


def models_of_provider(reg: Registry, provider: str) -> list[str]:
    """Public names served (at least partly) by `provider`."""
    return [m for m, deps in deployments(reg).items() if any(d.provider == provider for d in deps)]


# llama.cpp reads a boolean argument's environment variable as true when it is one of these
_LLAMA_TRUE = ("1", "true", "on", "enabled")


def llama_metrics_enabled(prov: Provider) -> bool:
    """llama.cpp's server has /metrics only when started with --metrics (or its variable)."""
    c = prov.container
    return c is not None and ("--metrics" in c.command or
                              c.env.get("LLAMA_ARG_ENDPOINT_METRICS", "").lower() in _LLAMA_TRUE)


def has_metrics(prov: Provider) -> bool:
    """Whether a provider's container serves Prometheus metrics on /metrics: vLLM does,
    llama.cpp with --metrics; Ollama and a generic OpenAI-compatible server have none."""
    return prov.type == "vllm" or (prov.type == "llama_cpp" and llama_metrics_enabled(prov))


def monitoring_components(reg: Registry) -> dict[str, tuple[str, MonitoringService]]:
    """Compose service → (stack.yaml key, settings) of every monitoring service the stack
    runs, in start order (the Redis exporter only with the cache)."""
    mon = reg.stack.monitoring
    out: dict[str, tuple[str, MonitoringService]] = {}
    for key, service in MONITORING_SERVICES.items():
        comp: MonitoringService = getattr(mon, key)
        if comp.enabled and (key != "redis_exporter" or reg.stack.cache.enabled):
            out[service] = (key, comp)
    return out


# Alertmanager's version in an image tag ("v0.29.0", Debian's "0.25.0")
_AM_VERSION = re.compile(r"v?(\d+)\.(\d+)")


def alertmanager_image(reg: Registry) -> str:
    return reg.stack.images.get("alertmanager", reg.stack.monitoring.alertmanager.image)


def reads_url_file(image: str) -> bool:
    """Whether this Alertmanager image has `url_file` (0.26+), from its tag; a tag that names
    no version (a digest) is taken as recent: an old one then refuses the config at start,
    which is loud, rather than showing the URL."""
    tag = image.split("@", 1)[0].rsplit("/", 1)[-1].partition(":")[2]
    version = _AM_VERSION.match(tag)
    return version is None or (int(version[1]), int(version[2])) >= (0, 26)
