"""`stackctl ps` as data: one row per GPU-group member, then one per other provider, from
facts gathered once (`Facts`). Pure: `rows(reg, facts)` is tested as data.

Where each column comes from (collected by collect.py, reusing what `status`, `top` and
`logs` already read — nothing here asks Docker or the network):
- state: `status`'s containers, ready flags and the engines' sleep states, with `top`'s
  words (awake, asleep, loading, stopped; unknown without an engine);
- memory: each member's footprint (registry/gpu_memory.py, the numbers `validate` and the
  scheduler count) and its group's budget `memory_gib`;
- last used: the newest request the member answered, from the gateway's request log lines
  (`logs --requests`' records, answered by `model@member`);
- idle: since the later of last used and when it was loaded (its last switch in the journal,
  or its container's start);
- waiting: requests the gateway holds for its models now (the routing callback's gauge);
  `held` says the routing state holds them (a switch to it is under way).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field

from stackctl.registry.catalog import exclusive_groups, group_settings, models_of_provider
from stackctl.registry.gpu_memory import footprint
from stackctl.registry.load import Registry
from stackctl.top.collect import member_state
from stackctl.top.snapshot import MemberState

if TYPE_CHECKING:  # the type only: building Facts needs no requests
    from stackctl.targets.compose_status import StackStatus


class PsRow(BaseModel):
    name: str = Field(description="the provider (a GPU group member or another provider)")
    group: str | None = Field(description="its GPU group; null: not in one")
    mode: Literal["restart", "sleep"] | None = Field(None, description="how its group "
                                                     "switches; null: not in a group")
    state: MemberState = Field(description="awake: serving; asleep: vLLM sleep mode; "
                               "loading: its container runs, not ready yet; stopped; unknown: "
                               "no Docker engine answered")
    models: list[str] = Field(default_factory=list, description="public models it serves")
    pinned: bool = Field(False, description="`stackctl pin` or the registry's gpu.pinned: "
                         "never evicted nor put away idle")
    memory_gib: float | None = Field(None, description="GiB it claims on the GPU when "
                                     "loaded; null: not stated")
    group_memory_gib: float | None = Field(None, description="its group's budget; null: "
                                           "exclusive (one member at a time) or no group")
    last_used: float | None = Field(None, description="Unix seconds of the last request it "
                                    "answered (in the gateway's recent log); null: none seen")
    idle_s: float | None = Field(None, description="seconds since it last answered or was "
                                 "loaded, the later; null: not loaded, or not known")
    waiting: float | None = Field(None, description="requests the gateway holds for its "
                                  "models now; null: the gateway's metrics were not read")
    held: bool = Field(False, description="the gateway holds its models' requests: a load "
                       "or switch to it is under way")


class PsTable(BaseModel):
    """What `ps --json` prints."""

    project: str
    taken_at: float = Field(description="Unix seconds")
    engine: bool = Field(description="a Docker engine answered")
    metrics: bool = Field(description="the gateway's metrics were read (waiting)")
    rows: list[PsRow]
    problems: list[str] = Field(default_factory=list, description="what could not be read")


@dataclass
class Facts:
    """Everything `ps` shows, gathered once (collect.py)."""

    now: float
    status: StackStatus | None  # None: no engine answered
    held_models: set[str] = field(default_factory=set)  # the routing state's `hold`
    held_counts: dict[str, float] | None = None  # model → held now; None: not read
    last_used: dict[str, float] = field(default_factory=dict)  # member → last answered
    loaded_at: dict[str, float] = field(default_factory=dict)  # member → its last switch in
    pins: set[str] = field(default_factory=set)  # every pinned member


def rows(reg: Registry, facts: Facts) -> list[PsRow]:
    """One row per member of each GPU group (registry order), then per other provider with
    a container, then per provider without one (cloud, or run outside the stack)."""
    st = facts.status
    services = {s.name: s for s in st.services} if st is not None else {}
    providers = reg.providers.providers
    out = []
    grouped = exclusive_groups(reg)
    for group, names in grouped.items():
        settings = group_settings(reg, group)
        observed = st.gpu_groups.get(group) if st is not None else None
        for name in names:
            state: MemberState = "unknown" if st is None else member_state(
                services.get(name), observed is not None and name in observed.asleep)
            out.append(_row(reg, facts, name, group, settings.switch, state,
                            footprint(providers[name], settings.memory_gib).gib,
                            settings.memory_gib))
    members = {m for names in grouped.values() for m in names}
    for name, prov in providers.items():
        if name in members or not prov.enabled:
            continue
        state = "unknown" if st is None else member_state(services.get(name), False)
        gib = footprint(prov, None).gib if prov.container is not None else None
        out.append(_row(reg, facts, name, None, None, state, gib, None))
    return out


def _row(reg: Registry, facts: Facts, name: str, group: str | None,
         mode: Literal["restart", "sleep"] | None, state: MemberState, gib: float | None,
         budget: float | None) -> PsRow:
    models = models_of_provider(reg, name)
    used = facts.last_used.get(name)
    since = max([t for t in (used, facts.loaded_at.get(name)) if t is not None], default=None)
    idle = round(max(0.0, facts.now - since), 1) if since is not None and state == "awake" \
        else None
    waiting = None if facts.held_counts is None else \
        sum(facts.held_counts.get(m, 0.0) for m in models)
    return PsRow(name=name, group=group, mode=mode, state=state, models=models,
                 pinned=name in facts.pins, memory_gib=gib, group_memory_gib=budget,
                 last_used=used, idle_s=idle, waiting=waiting,
                 held=any(m in facts.held_models for m in models))


def loaded_at(st: StackStatus | None, switched: dict[str, float], now: float
              ) -> dict[str, float]:
    """Member → when it was last loaded: its last successful switch or load (the journal),
    or its container's start, the later (a sleep-mode member woken keeps its container)."""
    out = dict(switched)
    for s in st.services if st is not None else []:
        if s.up_seconds is not None:
            started = now - s.up_seconds
            out[s.name] = max(out.get(s.name, started), started)
    return out
