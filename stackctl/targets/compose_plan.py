"""Pure planning: (registry, requested profiles, observed containers) → what `up` does."""

from __future__ import annotations

from pydantic import BaseModel, Field

from stackctl.docker.models import ContainerState
from stackctl.errors import PlanError
from stackctl.hints import did_you_mean
from stackctl.registry.catalog import (
    deployments,
    exclusive_groups,
    on_demand_groups,
    profile_of,
    profiles,
)
from stackctl.registry.gpu_memory import may_run_together
from stackctl.registry.load import Registry
from stackctl.registry.vocabulary import CACHE, GATEWAY, MONITORING
from stackctl.render.compose import monitoring_services


class UpPlan(BaseModel):
    profiles: list[str] = Field(description="compose profiles to activate")
    services: list[str] = Field(description="services to start and health-gate, in order")
    expected_models: list[str] = Field(description="models the gateway must list afterwards")


def services_of(reg: Registry, active: list[str]) -> list[str]:
    out = [GATEWAY] + ([CACHE] if reg.stack.cache.enabled else [])
    for name, prov in reg.providers.providers.items():
        if prov.enabled and prov.container and profile_of(name, prov) in active:
            out.append(name)
    if MONITORING in active:
        out += list(monitoring_services(reg))
    return out


def plan_up(reg: Registry, requested: list[str], observed: list[ContainerState],
            asleep: dict[str, bool | None] | None = None) -> UpPlan:
    """`asleep`: running members of sleep-mode groups → sleeping (None: cannot say). A
    sleeping member holds little GPU memory: another member may start beside it, but never
    beside an awake one (vLLM claims its GPU memory when it starts)."""
    known = profiles(reg)
    chosen = list(dict.fromkeys(requested or reg.stack.default_profiles))
    for p in chosen:
        if p not in known:
            hint = did_you_mean(p, known)
            raise PlanError(f"unknown profile {p!r}" + (f"; {hint}" if hint else "")
                            + f" (profiles: {', '.join(known)})")
    providers = reg.providers.providers
    running = {s.service for s in observed if s.running}
    for members in on_demand_groups(reg).values():
        # the scheduler loads and puts away these members: once one runs (awake or not),
        # `up` leaves the group as it is
        if running & set(members):
            owned = {profile_of(m, providers[m]) for m in members}
            chosen = [p for p in chosen if p not in owned]
    for group, members in exclusive_groups(reg).items():
        wanted = [m for m in members if profile_of(m, providers[m]) in chosen]
        if len(wanted) > 1:
            raise PlanError(f"{' and '.join(wanted)} share exclusive GPU group {group!r}: "
                            f"start one, then `stackctl switch` to the other")
        active = [m for m in members if m in running and (asleep or {}).get(m) is not True]
        if wanted and wanted[0] in running and wanted[0] not in active:
            raise PlanError(f"{wanted[0]} sleeps in GPU group {group!r}: `stackctl switch "
                            f"{wanted[0]}` wakes it")
        if not may_run_together(reg, group, active):  # an interrupted switch; `up` keeps it
            keep = wanted[0] if wanted else active[0]
            raise PlanError(f"{' and '.join(active)} run together in exclusive GPU group {group!r} "
                            f"(an interrupted switch?): `stackctl switch {keep}` keeps {keep} "
                            "and stops the others")
        if wanted and active and wanted[0] not in active:
            raise PlanError(f"{active[0]} is running in exclusive GPU group {group!r}: "
                            f"use `stackctl switch {wanted[0]}` to move the group to {wanted[0]}")
    services = services_of(reg, chosen)
    started = set(services)
    expected = [m for m, deps in deployments(reg).items()
                if any(d.provider in started for d in deps)]
    return UpPlan(profiles=chosen, services=services, expected_models=expected)
