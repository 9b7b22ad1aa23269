"""`stackctl init --from OLD`: the old format's files → a registry stackctl runs.

Reads OLD's providers.yaml and model-mappings.yaml (and llamacpp-models.yaml, when there,
for the GGUF file each llama.cpp alias serves) with the registry's own loader, so a broken
file is reported at its line like `validate` would; edits the round-trip trees
(legacy.py, references.py); writes a stack.yaml whose default profiles start what the old
setup ran. Every change and everything left behind is an Item located in the old files.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml.comments import CommentedMap

from stackctl.onboarding.legacy import LLAMA_MODELS_FILE, LlamaModel, migrate_providers
from stackctl.onboarding.references import (
    drop_disabled,
    rename_providers,
    rewrite_models,
)
from stackctl.onboarding.report import Item, Recorder, line_of
from stackctl.onboarding.stackfile import GroupPlan, MonitoringDirs, stack_tree
from stackctl.onboarding.yamltext import dump, reload
from stackctl.registry.checks import ENFORCEABLE_STRATEGIES
from stackctl.registry.load import MAPPINGS, PROVIDERS, STACK
from stackctl.registry.source import load_source, shown_path

LLAMA_MODELS = LLAMA_MODELS_FILE
# files of the old setup that stackctl replaces: what takes their place
REPLACED = {
    "litellm-unified.yaml": "the gateway config is generated from the registry "
                            "(compose/litellm/config.yaml, `stackctl generate`)",
    "ports.yaml": "ports come from each provider's base_url and stack.yaml "
                  "(`stackctl ports` checks them)",
    "dashboard-config.yaml": "the dashboards are stackctl's (grafana-dashboards/)",
}


@dataclass
class Migration:
    texts: dict[str, str]
    items: list[Item] = field(default_factory=list)
    default_profiles: list[str] = field(default_factory=list)


def migrate(old: Path, monitoring: MonitoringDirs | None) -> Migration:
    """Raises registry.problems.RegistryError (located problems) when an old file cannot
    be read."""
    providers_src = load_source(old / PROVIDERS)
    mappings_src = load_source(old / MAPPINGS)
    assert providers_src is not None and mappings_src is not None  # required: raised if absent
    providers, mappings = reload(providers_src), reload(mappings_src)
    prec, mrec = Recorder(providers_src.name), Recorder(mappings_src.name)
    extra = Recorder(shown_path(old / LLAMA_MODELS))
    llama = _llama_models(old / LLAMA_MODELS, extra)

    result = migrate_providers(providers, prec, _backend_models(mappings), llama)
    root = providers.get("providers")
    known = set(root) if isinstance(root, CommentedMap) else set()
    rename_providers(mappings, result.renames, mrec)
    # before anything is removed: the items name the old positions
    unenforced(mappings, mrec, lambda p: p in known and p not in result.enabled)
    drop_disabled(mappings, result.enabled, known, mrec)
    rewrite_models(mappings, known, result.enabled, mrec, result.renames)

    items = prec.items + mrec.items + extra.items
    for path in sorted(old.iterdir()):
        if path.name in REPLACED:
            items.append(Item(kind="dropped", file=shown_path(path), line=1,
                              message=f"not read: {REPLACED[path.name]}"))
    stack = _stack(old, result.groups, result.default_profiles, monitoring, items)
    return Migration(texts={PROVIDERS: dump(providers), MAPPINGS: dump(mappings), STACK: dump(stack)},
                     items=items, default_profiles=result.default_profiles)


def _stack(old: Path, groups: dict[str, GroupPlan], defaults: list[str],
           monitoring: MonitoringDirs | None, items: list[Item]) -> CommentedMap:
    stack = stack_tree("stackctl", defaults, groups, monitoring,
                       "Gateway, cache, monitoring, GPU groups: written by `stackctl init "
                       "--from`.\nThe default profiles start what the old setup ran. Every key "
                       "is optional; defaults in README § stack.yaml.")
    if (old / STACK).exists():
        items.append(Item(kind="dropped", file=shown_path(old / STACK), line=1,
                          message="an old stack.yaml is not merged: compare it with the new one"))
    return stack


def _backend_models(mappings: CommentedMap) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    exact = mappings.get("exact_matches")
    for e in exact.values() if isinstance(exact, CommentedMap) else []:
        if isinstance(e, dict) and isinstance(e.get("backend_model"), str):
            out.setdefault(str(e.get("provider")), []).append(e["backend_model"])
    return out


def _llama_models(path: Path, rec: Recorder) -> dict[str, LlamaModel]:
    """alias → GGUF file from the old llamacpp-models.yaml ({models: [{alias, filename,
    recommended_gpu_layers, context_length}]}); unreadable entries are reported, not fatal."""
    src = load_source(path, required=False)
    if src is None:
        return {}
    out: dict[str, LlamaModel] = {}
    models = src.tree.get("models")
    for i, m in enumerate(models if isinstance(models, list) else []):
        alias, file = (m.get("alias"), m.get("filename")) if isinstance(m, dict) else (None, None)
        if not (isinstance(alias, str) and isinstance(file, str)) or "/" in file:
            rec.dropped(line_of(models, i), f"models[{i}]", "no alias and file name: not used")
            continue
        layers, ctx = m.get("recommended_gpu_layers"), m.get("context_length")
        out[alias] = LlamaModel(filename=file,
                                gpu_layers=layers if isinstance(layers, int) else None,
                                context_length=ctx if isinstance(ctx, int) else None,
                                line=line_of(models, i))
    return out


def unenforced(mappings: CommentedMap, rec: Recorder, disabled: Callable[[Any], bool]) -> None:
    """Routing the old router described and a gateway cannot enforce: kept in the file (it
    documents intent; `validate` warns about each), reported as not carried over."""
    why = "kept, not enforced: clients name a model (exact_matches) or a weighted group"
    patterns = mappings.get("patterns")
    for i, pat in enumerate(patterns if isinstance(patterns, list) else []):
        if isinstance(pat, dict) and not disabled(pat.get("provider")):
            rec.dropped(line_of(patterns, i), f"patterns[{i}]",
                        f"pattern {pat.get('pattern')!r}: {why}")
    for name, group in _maps(mappings, "load_balancing"):
        for i, wp in enumerate(group.get("providers") or []):
            if isinstance(wp, dict) and wp.get("condition") and not disabled(wp.get("provider")):
                rec.dropped(line_of(wp, "condition"), f"load_balancing.{name}.providers[{i}].condition",
                            "kept, not enforced: traffic is split by weight alone")
        if group.get("strategy", "weighted_round_robin") not in ENFORCEABLE_STRATEGIES:
            rec.dropped(line_of(group, "strategy"), f"load_balancing.{name}.strategy",
                        f"{group['strategy']!r} kept, not enforced: weighted shuffle is used")
    for name, cap in _maps(mappings, "capabilities"):
        if cap.get("routing_strategy") not in ENFORCEABLE_STRATEGIES:
            rec.dropped(line_of(cap, "routing_strategy"), f"capabilities.{name}.routing_strategy",
                        f"{cap['routing_strategy']!r} kept, not enforced")
    for section in ("routing_rules", "special_cases"):
        if mappings.get(section):
            rec.dropped(line_of(mappings, section), section,
                        "kept, not enforced: the gateway routes names, weights and fallbacks")


def _maps(tree: CommentedMap, section: str) -> list[tuple[str, CommentedMap]]:
    node = tree.get(section)
    return [(str(k), v) for k, v in node.items() if isinstance(v, CommentedMap)] \
        if isinstance(node, CommentedMap) else []
