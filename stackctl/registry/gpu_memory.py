"""GPU memory of a group's members: each member's footprint and which members fit together.

A group with `memory_gib` (stack.yaml gpu_groups) lets members co-reside when their
footprints fit; one without is exclusive. Pure: used by `validate` and by the on-demand
scheduler (stackctl/switching/scheduler.py), so both count the same GiB.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

from stackctl.registry.catalog import group_settings
from stackctl.registry.load import Registry
from stackctl.registry.models import Provider

VLLM_UTILIZATION = "--gpu-memory-utilization"
VLLM_DEFAULT_UTILIZATION = 0.9  # vLLM's own default: it claims 90% of the GPU when not told
MAX_ENUMERATED = 12  # members; beyond, the sets that fit are not listed (2^n subsets)


@dataclass(frozen=True)
class Footprint:
    gib: float | None  # None: nothing says (an error in a budgeted group)
    source: str  # how it was found, for messages
    problem: str | None = None  # the command's utilization cannot be read


def utilization(command: list[str]) -> tuple[float | None, str | None]:
    """(vLLM's --gpu-memory-utilization from `command` or None, a problem with it)."""
    for i, arg in enumerate(command):
        if arg == VLLM_UTILIZATION or arg.startswith(VLLM_UTILIZATION + "="):
            raw = arg.partition("=")[2] if "=" in arg else \
                (command[i + 1] if i + 1 < len(command) else "")
            try:
                value = float(raw)
            except ValueError:
                return None, f"{VLLM_UTILIZATION} {raw!r} is not a number"
            if not 0 < value <= 1:
                return None, f"{VLLM_UTILIZATION} {raw} is not in (0, 1]"
            return value, None
    return None, None


def footprint(prov: Provider, memory_gib: float | None) -> Footprint:
    """GiB a member claims on its GPU while loaded: weights_gib + kv_gib when kv_gib is
    given (the user states it all); a vLLM member claims --gpu-memory-utilization (vLLM's
    default 0.9) of the group's memory at start, whatever its weights; else weights_gib."""
    gpu = prov.container.gpu if prov.container else None
    weights = gpu.weights_gib if gpu else None
    if gpu is not None and gpu.kv_gib is not None and weights is not None:
        return Footprint(weights + gpu.kv_gib, f"weights_gib {weights:g} + kv_gib {gpu.kv_gib:g}")
    if prov.type == "vllm" and memory_gib is not None:
        assert prov.container is not None
        util, problem = utilization(prov.container.command)
        if problem:
            return Footprint(None, VLLM_UTILIZATION, problem)
        said = f"{VLLM_UTILIZATION} {util:g}" if util else \
            f"vLLM's default {VLLM_UTILIZATION} {VLLM_DEFAULT_UTILIZATION:g}"
        return Footprint((util or VLLM_DEFAULT_UTILIZATION) * memory_gib,
                         f"{said} of {memory_gib:g} GiB")
    if weights is not None:
        return Footprint(weights, f"weights_gib {weights:g}")
    return Footprint(None, "nothing")


def fits(sizes: dict[str, float], members: tuple[str, ...] | list[str],
         memory_gib: float | None) -> bool:
    """Whether `members` fit together: in the budget, or alone in an exclusive group."""
    if memory_gib is None:
        return len(members) <= 1
    return sum(sizes[m] for m in members) <= memory_gib + 1e-9


def fitting_sets(sizes: dict[str, float], memory_gib: float | None) -> list[tuple[str, ...]]:
    """The largest sets of two or more members that fit together (none is a subset of
    another), members in `sizes` order; [] when no two fit (an exclusive group)."""
    names = list(sizes)
    if memory_gib is None or len(names) > MAX_ENUMERATED:
        return []
    found: list[tuple[str, ...]] = []
    for k in range(len(names), 1, -1):
        for combo in combinations(names, k):
            if fits(sizes, combo, memory_gib) and not any(set(combo) <= set(f) for f in found):
                found.append(combo)
    return sorted(found, key=lambda s: [names.index(m) for m in s])


def may_run_together(reg: Registry, group: str, names: list[str]) -> bool:
    """Whether `names` may be loaded (awake) together in `group`: at most one in an
    exclusive group; in one with a memory budget, when their footprints fit it (`load` puts
    them there). More than that only an interrupted switch leaves."""
    budget = group_settings(reg, group).memory_gib
    if len(names) <= 1:
        return True
    if budget is None:
        return False
    sizes = {n: footprint(reg.providers.providers[n], budget).gib for n in names}
    if any(v is None for v in sizes.values()):
        return False
    return fits({n: float(v or 0.0) for n, v in sizes.items()}, names, budget)
