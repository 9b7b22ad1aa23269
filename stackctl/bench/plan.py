"""Which targets `bench` measures: the models asked for (or those whose provider is running),
through the gateway and, with --direct, straight to a local provider (pure)."""

from __future__ import annotations

from stackctl.bench.report import BenchOptions, Target
from stackctl.hints import did_you_mean
from stackctl.registry.catalog import deployments
from stackctl.registry.load import Registry


class UnknownModels(ValueError):
    """Models the registry does not serve."""


def aliases(reg: Registry) -> dict[str, str]:
    """alias → public model (the exact matches' aliases the gateway accepts)."""
    deps = deployments(reg)
    return {a: name for name, m in reg.mappings.exact_matches.items() if name in deps
            for a in m.aliases}


def plan_targets(reg: Registry, opts: BenchOptions, gateway_url: str, running: set[str]
                 ) -> tuple[list[Target], list[str]]:
    """Targets in model order (gateway, then direct), and notes saying what was chosen or
    skipped. `running`: providers whose host check passes. Raises UnknownModels."""
    deps = deployments(reg)
    alias_of = aliases(reg)
    providers = reg.providers.providers
    notes: list[str] = []
    if opts.models:
        unknown = [m for m in opts.models if m not in deps and m not in alias_of]
        if unknown:
            parts = []
            for m in unknown:
                hint = did_you_mean(m, [*deps, *alias_of])
                parts.append(f"{m!r}" + (f" ({hint})" if hint else ""))
            raise UnknownModels(f"unknown model {', '.join(parts)}; the registry serves: "
                                + ", ".join(deps))
        models = list(dict.fromkeys(opts.models))
    else:
        models = [m for m, members in deps.items() if any(d.provider in running for d in members)]
        idle = [m for m in deps if m not in models]
        notes.append("models whose provider is running: " + (", ".join(models) or "none")
                     + (f" (not benchmarked: {', '.join(idle)}; name them with --model)"
                        if idle else ""))
    targets: list[Target] = []
    for model in models:
        targets.append(Target(model=model, route="gateway", url=f"{gateway_url}/v1",
                              backend=model))
        if not opts.direct:
            continue
        members = deps[alias_of.get(model, model)]
        local = [d for d in members if providers[d.provider].container is not None
                 and providers[d.provider].host_port]
        if not local:
            notes.append(f"{model}: no direct route (its provider "
                         f"{', '.join(d.provider for d in members)} is not a local container; "
                         "bench sends traffic only to 127.0.0.1)")
            continue
        dep = next((d for d in local if d.provider in running), local[0])
        if len(members) > 1:
            notes.append(f"{model}: direct route measures {dep.provider} only "
                         f"(of {', '.join(d.provider for d in members)})")
        port = providers[dep.provider].host_port
        targets.append(Target(model=model, route="direct", url=f"http://127.0.0.1:{port}/v1",
                              backend=dep.backend, provider=dep.provider))
    return targets, notes
