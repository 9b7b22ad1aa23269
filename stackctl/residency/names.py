"""MODEL as `load`, `unload`, `pin` and `unpin` take it: a member (provider) name, a unique
part of one (`dolphin`), or a public model name or alias the member serves. Pure."""

from __future__ import annotations

from stackctl.errors import PlanError
from stackctl.hints import did_you_mean
from stackctl.registry.catalog import deployments
from stackctl.registry.load import Registry
from stackctl.switching.members import Member, resolve_member


def served_by(reg: Registry, members: dict[str, Member]) -> dict[str, list[str]]:
    """Member → the public models and aliases only it serves (a model with a deployment
    elsewhere too does not name one member)."""
    out: dict[str, list[str]] = {m: [] for m in members}
    for model, deps in deployments(reg).items():
        providers = {d.provider for d in deps}
        if len(providers) == 1 and (p := next(iter(providers))) in members:
            match = reg.mappings.exact_matches.get(model)
            out[p] += [model, *(match.aliases if match else [])]
    return out


def known(reg: Registry, members: dict[str, Member]) -> str:
    """`vllm-qwen (qwen), vllm-dolphin (dolphin)`: what the error messages list."""
    models = served_by(reg, members)
    return ", ".join(f"{m} ({', '.join(models[m])})" if models[m] else m for m in members)


def resolve(reg: Registry, members: dict[str, Member], name: str) -> tuple[str, str]:
    """(group, member) that `name` means; PlanError naming the known ones otherwise."""
    if name in members:
        return members[name].group, name
    for member, models in served_by(reg, members).items():
        if name in models:
            return members[member].group, member
    prov = reg.providers.providers.get(name)
    if prov is not None:
        raise PlanError(f"{name!r} is not a member of a GPU group: its server is not loaded "
                        "or unloaded by stackctl (`stackctl up`/`down` start and stop it); "
                        f"GPU group members: {known(reg, members)}")
    try:
        return resolve_member(members, name)
    except PlanError as exc:
        if not members:
            raise
        if "ambiguous" in str(exc):
            raise
        models = [x for ms in served_by(reg, members).values() for x in ms]
        hint = did_you_mean(name, [*members, *models])
        raise PlanError(f"no GPU group member or model {name!r}" + (f"; {hint}" if hint else "")
                        + f" (known: {known(reg, members)})") from None
