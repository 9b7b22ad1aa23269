"""model-mappings.yaml of the old format → stackctl's (pure, on the round-trip tree).

The old router let a provider name stand where a model belongs (a fallback, a chain, a
capability's preferred models); the gateway routes models, so each such name becomes the
first model that provider serves. Renamed providers are renamed here too. Entries for a
disabled provider, and references to models nothing serves, are dropped and reported:
the gateway could not route them either.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from stackctl.onboarding.report import Recorder, line_of
from stackctl.onboarding.yamltext import remove_key

Sub = Callable[[str], str | None]  # a model slot's value → its replacement (None: drop it)


def rename_providers(tree: CommentedMap, renames: dict[str, str], rec: Recorder) -> None:
    """Every place the mappings name a provider follows its new name."""
    if not renames:
        return
    for path, node, key in provider_slots(tree):
        value = node[key]
        if isinstance(value, str) and value in renames:
            rec.changed(line_of(node, key), path, f"provider {value!r} → {renames[value]!r}")
            node[key] = renames[value]


def provider_slots(tree: CommentedMap) -> list[tuple[str, Any, Any]]:
    """(path, node, key) of every value that names a provider."""
    out: list[tuple[str, Any, Any]] = []
    for name, e in _items(tree, "exact_matches"):
        if "provider" in e:
            out.append((f"exact_matches.{name}.provider", e, "provider"))
    for i, pat in enumerate(_seq(tree, "patterns")):
        if isinstance(pat, CommentedMap) and "provider" in pat:
            out.append((f"patterns[{i}].provider", pat, "provider"))
    for name, group in _items(tree, "load_balancing"):
        for i, wp in enumerate(group.get("providers") or []):
            if isinstance(wp, CommentedMap) and "provider" in wp:
                out.append((f"load_balancing.{name}.providers[{i}].provider", wp, "provider"))
    for name, cap in _items(tree, "capabilities"):
        for key in ("provider", "fallback"):
            if key in cap:
                out.append((f"capabilities.{name}.{key}", cap, key))
    return out


def drop_disabled(tree: CommentedMap, enabled: set[str], known: set[str], rec: Recorder) -> None:
    """Entries routed to a provider that stays disabled are removed (the gateway has no such
    deployment); a weighted group keeps its enabled members, weights scaled to sum to 1."""
    def off(name: Any) -> bool:
        return isinstance(name, str) and name in known and name not in enabled

    exact = tree.get("exact_matches")
    for name, e in list(_items(tree, "exact_matches")):
        if off(e.get("provider")):
            rec.dropped(line_of(exact, name), f"exact_matches.{name}",
                        f"provider {e['provider']!r} is disabled: not routed, removed")
            remove_key(exact, name)
    patterns = _seq(tree, "patterns")
    for i in reversed(range(len(patterns))):
        pat = patterns[i]
        if isinstance(pat, CommentedMap) and off(pat.get("provider")):
            rec.dropped(line_of(patterns, i), f"patterns[{i}]",
                        f"provider {pat['provider']!r} is disabled: removed")
            del patterns[i]
    groups = tree.get("load_balancing")
    for name, group in list(_items(tree, "load_balancing")):
        members = group.get("providers")
        if not isinstance(members, CommentedSeq):
            continue
        gone = [i for i, wp in enumerate(members) if isinstance(wp, dict) and off(wp.get("provider"))]
        for i in reversed(gone):
            rec.dropped(line_of(members, i), f"load_balancing.{name}.providers[{i}]",
                        f"provider {members[i]['provider']!r} is disabled: removed")
            del members[i]
        if not members:
            remove_key(groups, name)
            continue
        weights = [wp.get("weight") for wp in members if isinstance(wp, dict)]
        total = sum(w for w in weights if isinstance(w, (int, float)))
        if gone and total > 0 and abs(total - 1) > 1e-6:
            for wp in members:
                wp["weight"] = round(wp["weight"] / total, 4)
            rec.changed(line_of(groups, name), f"load_balancing.{name}",
                        "weights scaled to sum to 1")
    for name, cap in _items(tree, "capabilities"):
        if off(cap.get("provider")):
            rec.dropped(line_of(cap, "provider"), f"capabilities.{name}.provider",
                        f"provider {cap['provider']!r} is disabled: removed")
            remove_key(cap, "provider")


def served_models(tree: CommentedMap, enabled: set[str]) -> dict[str, list[str]]:
    """Provider → the public models routed to it (exact matches, then weighted groups)."""
    out: dict[str, list[str]] = {}
    for name, e in _items(tree, "exact_matches"):
        if e.get("provider") in enabled:
            out.setdefault(e["provider"], []).append(str(name))
    for name, group in _items(tree, "load_balancing"):
        for wp in group.get("providers") or []:
            if isinstance(wp, dict) and wp.get("provider") in enabled:
                out.setdefault(wp["provider"], []).append(str(name))
    return out


def rewrite_models(tree: CommentedMap, providers: set[str], enabled: set[str],
                   rec: Recorder, renames: dict[str, str] | None = None) -> None:
    """Every slot that must name a model: a provider name (old or renamed) becomes its
    first model (not the entry itself); a name nothing serves is dropped."""
    by_provider = served_models(tree, enabled)
    served = {m for ms in by_provider.values() for m in ms}
    renames = renames or {}

    def fix(owner: str | None, path: str, line: int | None) -> Sub:
        def sub(given: str) -> str | None:
            if given in served:
                return given
            value = renames.get(given, given)
            if value in providers:
                choices = [m for m in by_provider.get(value, []) if m != owner]
                if choices:
                    rec.changed(line, path, f"provider {given!r} → its model {choices[0]!r}")
                    return choices[0]
                rec.dropped(line, path, f"provider {given!r} serves no routed model: removed")
                return None
            rec.dropped(line, path, f"model {given!r} is not served by an enabled provider: removed")
            return None
        return sub

    for name, e in _items(tree, "exact_matches"):
        fb = e.get("fallback")
        if isinstance(fb, str):
            new = fix(str(name), f"exact_matches.{name}.fallback", line_of(e, "fallback"))(fb)
            e["fallback"] = new
    for i, pat in enumerate(_seq(tree, "patterns")):
        if isinstance(pat, CommentedMap) and isinstance(pat.get("fallback"), str):
            pat["fallback"] = fix(None, f"patterns[{i}].fallback", line_of(pat, "fallback"))(pat["fallback"])
    chains = tree.get("fallback_chains")
    for name, chain in list(_items(tree, "fallback_chains")):
        if name != "default" and str(name) not in served:
            rec.dropped(line_of(chains, name), f"fallback_chains.{name}",
                        f"model {name!r} is not served by an enabled provider: removed")
            remove_key(chains, name)
            continue
        _list(chain, "chain", str(name), f"fallback_chains.{name}.chain", fix)
    for name, cap in _items(tree, "capabilities"):
        _list(cap, "preferred_models", None, f"capabilities.{name}.preferred_models", fix)
        fb = cap.get("fallback")
        if isinstance(fb, str) and renames.get(fb, fb) not in providers:
            new = fix(None, f"capabilities.{name}.fallback", line_of(cap, "fallback"))(fb)
            if new is None:
                remove_key(cap, "fallback")


def _list(node: CommentedMap, key: str, owner: str | None, path: str,
          fix: Callable[[str | None, str, int | None], Sub]) -> None:
    seq = node.get(key)
    if not isinstance(seq, CommentedSeq):
        return
    for i in reversed(range(len(seq))):
        value = seq[i]
        if not isinstance(value, str):
            continue
        new = fix(owner, f"{path}[{i}]", line_of(seq, i))(value)
        if new is None or (new != value and new in seq):
            del seq[i]  # dropped, or a model the list already names
        else:
            seq[i] = new


def _items(tree: CommentedMap, section: str) -> list[tuple[Any, CommentedMap]]:
    node = tree.get(section)
    if not isinstance(node, CommentedMap):
        return []
    return [(k, v) for k, v in node.items() if isinstance(v, CommentedMap)]


def _seq(tree: CommentedMap, section: str) -> CommentedSeq:
    node = tree.get(section)
    return node if isinstance(node, CommentedSeq) else CommentedSeq()
