"""What switching knows of each member of an exclusive GPU group, from the checked registry.

Pure facts: nothing here asks Docker, a cluster or an engine.
"""

from __future__ import annotations

from dataclasses import dataclass

from stackctl.errors import PlanError
from stackctl.hints import did_you_mean
from stackctl.registry.catalog import exclusive_groups, models_of_provider, profile_of
from stackctl.registry.load import Registry
from stackctl.render.litellm import served_backend
from stackctl.render.probes import host_check


@dataclass(frozen=True)
class Member:
    """What switching needs to know of one member of an exclusive GPU group."""

    name: str
    group: str
    profile: str
    stop_grace: float
    ready_url: str | None  # the container's readiness check seen from the host; None: no port
    ready_expect: str | None
    model: str | None  # a public model it serves: asked through the gateway after a switch
    url: str | None = None  # http://127.0.0.1:<host port>: its own API (sleep mode, warm-up)
    backend: str | None = None  # the model name the engine itself serves


def members_of(reg: Registry) -> dict[str, Member]:
    """Every member of every exclusive GPU group, registry order (pure)."""
    providers = reg.providers.providers
    members = {}
    for group, names in exclusive_groups(reg).items():
        for name in names:
            prov = providers[name]
            assert prov.container is not None  # a group member has a container
            backend = served_backend(reg, name)
            url, expect = host_check(prov, backend) if prov.host_port else (None, None)
            members[name] = Member(name, group, profile_of(name, prov),
                                   prov.container.stop_grace_period, url, expect,
                                   next(iter(models_of_provider(reg, name)), None),
                                   f"http://127.0.0.1:{prov.host_port}" if prov.host_port
                                   else None, backend)
    return members


def group_members(members: dict[str, Member], group: str) -> list[str]:
    """The members of `group`, registry order."""
    return [m.name for m in members.values() if m.group == group]


def resolve_member(members_: dict[str, Member], name: str) -> tuple[str, str]:
    """(group, member) for a full or short member name such as 'dolphin'."""
    members = {m.name: m.group for m in members_.values()}
    if not members:
        raise PlanError("no exclusive GPU group is defined in the registry")
    if name in members:
        return members[name], name
    hits = [m for m in members if name.lower() in m.lower()]
    if len(hits) == 1:
        return members[hits[0]], hits[0]
    if hits:
        raise PlanError(f"{name!r} is ambiguous: it matches {', '.join(hits)}")
    hint = did_you_mean(name, members) or f"members: {', '.join(members)}"
    raise PlanError(f"{name!r} is not a member of an exclusive GPU group; {hint}")
