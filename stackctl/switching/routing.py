"""Which models the gateway must not send to their own member, and which it holds.

A member of an exclusive GPU group that is not the active one (asleep, stopped, or being
switched out) cannot answer: a sleeping vLLM engine would queue the request until it wakes,
a stopped one costs a connection error and a cooldown. `switch` and `up` write the state
below to `<output_dir>/litellm/gpu-routing.json`; the gateway's routing callback
(incontainer/routing_callback.py) reads it: it sends a diverted model's requests straight to its
fallback, and holds a request for the model being switched in until the switch is over (or
`hold` seconds, then its fallback).

The models of on-demand groups (`gpu_groups.NAME.on_demand`) are not diverted: they are in
`ask`, and the callback asks the resident scheduler (stackctl/resident/) over the unix socket
`scheduler` names, in the same folder. The entry says what the gateway does when no
scheduler answers (as it did before there was one): `awake` models go on, the others to
`fallback`; `seconds` bounds the wait for the scheduler's answer (the group's `hold`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from stackctl.registry.catalog import deployments, fallbacks, group_settings, on_demand_groups
from stackctl.registry.load import Registry
from stackctl.registry.vocabulary import LITELLM_FILE, SCHEDULER_SOCKET
from stackctl.render.litellm import gateway_aliases

ROUTING_FILE = "gpu-routing.json"
VERSION = 1


def routing_state(reg: Registry, inactive: set[str], held: dict[str, float] | None = None
                  ) -> dict:
    """The state for members `inactive` (diverted) and `held` (member → hold seconds), pure.

    A model is diverted or held only when every deployment of it is on such a member; its
    replacement is the first model of its fallback chain (then the default chain) that has a
    deployment elsewhere. Aliases get the entry of their model."""
    held = held or {}
    deps = deployments(reg)
    away = inactive | set(held)
    chains = fallbacks(reg)
    default = reg.mappings.fallback_chains.get("default")

    def serves(model: str) -> bool:
        return any(d.provider not in away for d in deps.get(model, []))

    aliases: dict[str, list[str]] = {}
    for alias, model in gateway_aliases(reg, deps).items():
        aliases.setdefault(model, []).append(alias)
    on_demand = {m: group_settings(reg, g).hold
                 for g, ms in on_demand_groups(reg).items() for m in ms}
    divert: dict[str, str] = {}
    hold: dict[str, dict] = {}
    ask: dict[str, dict] = {}
    for model, members in deps.items():
        asked = all(d.provider in on_demand for d in members)
        if serves(model) and not asked:
            continue
        chain = chains.get(model, []) + (default.chain if default else [])
        fallback = next((m for m in chain if m != model and serves(m)), None)
        seconds = max((held[d.provider] for d in members if d.provider in held), default=0)
        for name in [model, *aliases.get(model, [])]:
            if seconds > 0:
                hold[name] = {"seconds": seconds, "fallback": fallback}
            elif asked:
                ask[name] = {"seconds": max(on_demand[d.provider] for d in members),
                             "fallback": fallback, "awake": serves(model)}
            elif fallback is not None:
                divert[name] = fallback
    state: dict = {"v": VERSION, "divert": divert, "hold": hold}
    if on_demand:
        state.update(ask=ask, scheduler=SCHEDULER_SOCKET)
    return state


def routing_path(reg: Registry) -> Path:
    return reg.output_dir / Path(LITELLM_FILE).parent / ROUTING_FILE


def write_routing(reg: Registry, state: dict) -> None:
    """Replace the state file atomically (a new inode, which the gateway's folder mount shows
    at once). Raises OSError."""
    path = routing_path(reg)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{ROUTING_FILE}.{os.getpid()}.tmp")
    with open(temp, "w", encoding="utf-8") as f:
        json.dump(state, f, indent=1, sort_keys=True)
        f.write("\n")
    os.chmod(temp, 0o644)  # the gateway runs as another user
    os.replace(temp, path)


def read_routing(reg: Registry) -> str:
    """The state file's text as it is ("" when there is none), for restore_routing."""
    try:
        return routing_path(reg).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ""


def restore_routing(reg: Registry, text: str) -> None:
    """Put back what read_routing returned: the text, or no file (the gateway then routes
    every model to its own members)."""
    try:
        if text:
            write_routing(reg, json.loads(text))
        else:
            routing_path(reg).unlink(missing_ok=True)
    except (OSError, ValueError):
        pass
