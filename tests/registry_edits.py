"""Editing a registry copy in a test, and finding a line in it independently of stackctl.

Edits are callables for the `yaml_edit` fixture (ruamel round-trip: the untouched lines keep
their layout, so line numbers stay true). Locations are found by searching the edited file's
text for regexes (`line_of(path, key("providers"), key("ollama"))`), not by asking stackctl.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any


def line_of(path: Path, *anchors: str) -> int:
    """1-based line of the last anchor; each anchor is searched after the previous one's line."""
    lines = path.read_text(encoding="utf-8").splitlines()
    start, found = 0, -1
    for anchor in anchors:
        pattern = re.compile(anchor)
        found = next((i for i in range(start, len(lines)) if pattern.search(lines[i])), -1)
        assert found >= 0, f"anchor {anchor!r} not found after line {start} in {path}"
        start = found + 1
    return found + 1


def key(name: str) -> str:
    """Regex for a YAML key, quoted or not, at the start of a line (after indentation)."""
    return rf"^\s*(- )?[\"']?{re.escape(name)}[\"']?:"


def item(value: str) -> str:
    """Regex for a sequence item, block (`- x`) or flow (`[x, …]`) style."""
    v = re.escape(value)
    return rf"(^\s*- [\"']?{v}[\"']?\s*(#.*)?$)|([\[,]\s*[\"']?{v}[\"']?\s*[,\]])"


def set_in(*keys_value: Any) -> Callable[[Any], None]:
    *keys, value = keys_value

    def edit(data: Any) -> None:
        node = data
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value

    return edit


def rename(*keys_old_new: str) -> Callable[[Any], None]:
    """Rename a mapping key in place (same position, so the line does not move)."""
    *keys, old, new = keys_old_new

    def edit(data: Any) -> None:
        node = data
        for k in keys:
            node = node[k]
        pos = list(node).index(old)
        value = node.pop(old)
        node.insert(pos, new, value)

    return edit


def both(*edits: Callable[[Any], None]) -> Callable[[Any], None]:
    def edit(data: Any) -> None:
        for e in edits:
            e(data)

    return edit
