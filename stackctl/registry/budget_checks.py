"""GPU memory budgets (stack.yaml gpu_groups.NAME.memory_gib): every member of a budgeted
group has a footprint and fits alone, the pinned members fit together; and, for `validate`
to print, which members fit together."""

from __future__ import annotations

from stackctl.registry.catalog import exclusive_groups, group_settings
from stackctl.registry.gpu_memory import MAX_ENUMERATED, fits, fitting_sets, footprint
from stackctl.registry.load import PROVIDERS, STACK, Registry
from stackctl.registry.problems import Problem
from stackctl.registry.source import Loc


def check_budgets(reg: Registry) -> list[Problem]:
    out: list[Problem] = []
    providers = reg.providers.providers
    stack = reg.sources.get(STACK)
    for group, members in exclusive_groups(reg).items():
        budget = group_settings(reg, group).memory_gib
        sizes: dict[str, float] = {}
        for m in members if budget is not None and stack is not None else []:
            gpu: Loc = ("providers", m, "container", "gpu")
            where = f"GPU group {group!r} (gpu_groups.{group}.memory_gib {budget:g} in {STACK})"
            fp = footprint(providers[m], budget)
            if fp.problem:
                out.append(reg.sources[PROVIDERS].problem(
                    "error", ("providers", m, "container", "command"), fp.problem,
                    "write e.g. --gpu-memory-utilization 0.45 (a fraction of the GPU)"))
            elif fp.gib is None:
                out.append(reg.sources[PROVIDERS].problem(
                    "error", gpu + ("weights_gib",),
                    f"{m!r} has no GPU memory footprint, but {where} has a budget",
                    "set container.gpu.weights_gib (its weights in GiB) and kv_gib (its KV "
                    "cache), or drop memory_gib to keep the group exclusive"))
            elif fp.gib > budget + 1e-9:  # type: ignore[operator]
                out.append(reg.sources[PROVIDERS].problem(
                    "error", gpu + ("kv_gib" if "kv_gib" in fp.source else "weights_gib",),
                    f"{m!r} needs {fp.gib:g} GiB ({fp.source}), more than {where}: it can "
                    "never be loaded", f"give it at most {budget:g} GiB, or raise "
                    f"gpu_groups.{group}.memory_gib"))
            else:
                sizes[m] = fp.gib
        if budget is not None and len(sizes) < len(members):
            continue  # reported above
        pinned = [m for m in members if _gpu(reg, m).pinned]
        shut_out = [m for m in members if m not in pinned and pinned
                    and not fits(sizes, [*pinned, m], budget)]
        if pinned and (shut_out or not fits(sizes, pinned, budget)):
            out.append(reg.sources[PROVIDERS].problem(
                "error", ("providers", pinned[-1], "container", "gpu", "pinned"),
                f"{' and '.join(pinned)} pinned in GPU group {group!r}: once loaded, they are "
                "never evicted, so " + (f"{', '.join(shut_out)} could never load"
                                        if fits(sizes, pinned, budget) else
                                        "the last could never load beside the others"),
                "pin fewer members" + ("" if budget is not None else
                                       f", or give gpu_groups.{group} a memory_gib budget "
                                       "they fit in")))
    return out


def budget_notes(reg: Registry) -> list[str]:
    """One line per budgeted group: each member's footprint and the sets that fit together."""
    lines = []
    providers = reg.providers.providers
    for group, members in exclusive_groups(reg).items():
        budget = group_settings(reg, group).memory_gib
        if budget is None:
            continue
        sizes = {m: fp.gib for m in members
                 if (fp := footprint(providers[m], budget)).gib is not None}
        shown = ", ".join(f"{m} {gib:g}" for m, gib in sizes.items())
        head = f"GPU group {group}: {budget:g} GiB; footprints (GiB): {shown}"
        if len(sizes) > MAX_ENUMERATED:
            lines.append(f"{head}; {len(sizes)} members: the sets that fit are not listed")
        elif sets := fitting_sets(sizes, budget):
            lines.append(f"{head}; fit together: "
                         + ", ".join("{" + ", ".join(s) + "}" for s in sets))
        else:
            lines.append(f"{head}; no two members fit together: one at a time (exclusive)")
    return lines


def _gpu(reg: Registry, member: str):  # type: ignore[no-untyped-def]
    container = reg.providers.providers[member].container
    assert container is not None and container.gpu is not None  # a group member
    return container.gpu
