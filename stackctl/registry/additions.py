"""`stackctl add`: the registry files' new texts for a new provider or model (pure: texts
and the loaded registry in, texts out; stackctl.store.registry_files checks and writes)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from stackctl.hints import did_you_mean
from stackctl.registry.catalog import declared_models
from stackctl.registry.editing import EditError, add_entry, append_item
from stackctl.registry.load import MAPPINGS, PROVIDERS, Registry
from stackctl.registry.templates import NewProvider, mapping_entry, provider_entry, used_ports


class NewModel(BaseModel):
    """What `stackctl add model` was asked for."""

    name: str = Field(description="the name clients ask the gateway for")
    provider: str
    backend: str | None = Field(None, description="the provider's own name for it "
                                "(default: the same name)")
    aliases: list[str] = Field(default_factory=list)
    fallback: str | None = Field(None, description="model answering when this one fails")


def add_provider(texts: dict[str, str], reg: Registry, spec: NewProvider,
                 route: bool = True) -> dict[str, str]:
    """providers.yaml with the new provider; with `route`, model-mappings.yaml with one
    exact_matches entry per model it serves (those not declared yet)."""
    if spec.name in reg.providers.providers:
        raise EditError(f"provider {spec.name!r} already exists")
    try:
        entry = provider_entry(spec, used_ports(reg))
    except ValueError as exc:
        raise EditError(str(exc)) from None
    out = dict(texts)
    out[PROVIDERS] = add_entry(texts[PROVIDERS], ("providers",), spec.name, entry)
    if route:
        known = declared_models(reg)
        for model in spec.models:
            if model not in known:
                out[MAPPINGS] = add_entry(out[MAPPINGS], ("exact_matches",), model,
                                          mapping_entry(spec.name))
    return out


def add_model(texts: dict[str, str], reg: Registry, spec: NewModel) -> dict[str, str]:
    """model-mappings.yaml with the model routed to its provider, and providers.yaml with the
    model in the provider's list when it is not there yet."""
    providers = reg.providers.providers
    prov = providers.get(spec.provider)
    if prov is None:
        hint = did_you_mean(spec.provider, providers)
        raise EditError(f"no provider {spec.provider!r}" + (f"; {hint}" if hint else
                        f" (providers: {', '.join(providers) or 'none'})"))
    if spec.name in declared_models(reg):
        raise EditError(f"model {spec.name!r} is already declared in {MAPPINGS}")
    backend = spec.backend or spec.name
    out = dict(texts)
    if backend not in prov.model_names:
        item: object = backend if prov.models and isinstance(
            _first_model(texts[PROVIDERS], spec.provider), str) else {"name": backend}
        out[PROVIDERS] = append_item(texts[PROVIDERS], ("providers", spec.provider, "models"),
                                     item)
    out[MAPPINGS] = add_entry(texts[MAPPINGS], ("exact_matches",), spec.name, mapping_entry(
        spec.provider, spec.backend if spec.backend != spec.name else None, spec.aliases,
        spec.fallback))
    return out


def _first_model(text: str, provider: str) -> object:
    """The provider's first models item as written: a name (`- gpt-4o`) or a mapping."""
    from ruamel.yaml import YAML

    models = YAML(typ="rt").load(text)["providers"][provider].get("models") or [None]
    return models[0]
