"""What the gateway will serve: public model names and the deployments behind them."""

from __future__ import annotations

from dataclasses import dataclass

from .load import Registry
from .models import Provider


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


def profile_of(name: str, prov: Provider) -> str:
    return (prov.container.profile if prov.container and prov.container.profile else name)


def models_of_provider(reg: Registry, provider: str) -> list[str]:
    """Public names served (at least partly) by `provider`."""
    return [m for m, deps in deployments(reg).items() if any(d.provider == provider for d in deps)]
