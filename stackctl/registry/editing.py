"""Edit a registry file's text in place: add a mapping entry or a list item, nothing else.

The rest of the file stays byte for byte as it was. ruamel.yaml's round-trip dump keeps
comments but not layout (it re-flows `command: [...]` lists spread over lines, changes
indentation and quoting), so it is used only to find where an entry goes (its line and
column records) and to write the new entry's own lines; those lines are spliced into the
original text at the end of the block they join, indented like its entries.
"""

from __future__ import annotations

import io
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

Path_ = tuple[str, ...]


class EditError(ValueError):
    """The text cannot be edited this way; the message says where and why."""


def add_entry(text: str, path: Path_, key: str, value: Any) -> str:
    """`text` with `key: value` added at the end of the mapping at `path` (created, with its
    missing parents, when absent). EditError when `key` is already there."""
    tree = _load(text)
    node, parent, depth = _walk(tree, path)
    if depth < len(path):  # the mapping (or a parent) is missing: add it to what exists
        nested: Any = {key: value}
        for name in reversed(path[depth + 1:]):
            nested = {name: nested}
        return _splice_into_map(text, parent, path[depth], nested, root=parent is tree)
    if isinstance(node, CommentedMap):
        if key in node:
            raise EditError(f"{_dotted(path + (key,))} already exists (line "
                            f"{node.lc.key(key)[0] + 1})")
        return _splice_into_map(text, node, key, value, root=node is tree)
    if node is None:  # `key:` with nothing under it
        return _under_empty_key(text, parent, path[-1], {key: value})
    raise EditError(f"{_dotted(path)} is not a mapping: cannot add {key!r} under it")


def append_item(text: str, path: Path_, item: Any) -> str:
    """`text` with `item` added at the end of the list at `path` (created when absent)."""
    tree = _load(text)
    node, parent, depth = _walk(tree, path)
    if depth < len(path):
        if depth < len(path) - 1:
            raise EditError(f"{_dotted(path[:depth + 1])} is missing")
        return _splice_into_map(text, parent, path[-1], [item], root=parent is tree)
    if node is None:
        return _under_empty_key(text, parent, path[-1], [item])
    if not isinstance(node, CommentedSeq):
        raise EditError(f"{_dotted(path)} is not a list")
    if node.fa.flow_style() or not node:
        raise EditError(f"{_dotted(path)} is written on one line ([...]): write it as a "
                        "block list (one `- item` per line) and run this again")
    lines = text.splitlines(keepends=True)
    item_line, item_col = node.lc.item(0)
    dash = _dash_column(lines[item_line], item_col)
    first_line = node.lc.line if node.lc.line is not None else item_line
    end = _block_end(lines, first_line, dash, dash_list=True)
    return _insert(lines, end, _render_item(item, dash))


# -- locating ------------------------------------------------------------------------------

def _load(text: str) -> Any:
    tree = YAML(typ="rt").load(text) if text.strip() else None
    if tree is None:
        tree = CommentedMap()
    if not isinstance(tree, CommentedMap):
        raise EditError("the file's top level is not a mapping")
    return tree


def _walk(tree: CommentedMap, path: Path_) -> tuple[Any, CommentedMap, int]:
    """(node at `path`, its parent mapping, how many keys of `path` exist)."""
    node: Any = tree
    parent = tree
    for i, key in enumerate(path):
        if not isinstance(node, CommentedMap):
            raise EditError(f"{_dotted(path[:i])} is not a mapping")
        if key not in node:
            return None, node, i
        parent, node = node, node[key]
    return node, parent, len(path)


def _dotted(path: Path_) -> str:
    return ".".join(path) or "the top level"


def _dash_column(line: str, item_col: int) -> int:
    """Column of the `-` of a block list item whose value starts at `item_col`."""
    col = min(item_col, len(line)) - 1
    while col >= 0 and line[col] == " ":
        col -= 1
    if col < 0 or line[col] != "-":
        raise EditError("cannot find the list's '-' markers")
    return col


def _block_end(lines: list[str], first: int, col: int, dash_list: bool = False) -> int:
    """Index of the last line belonging to the block whose entries start at column `col`
    (from line `first`). Blank lines and comments at or left of `col` after the block's last
    entry are not its own: they introduce what follows, so the new entry goes before them;
    a deeper comment is the last entry's own and stays with it."""
    last = first
    for i in range(first + 1, len(lines)):
        stripped = lines[i].strip()
        indent = len(lines[i]) - len(lines[i].lstrip(" "))
        if not stripped:
            continue
        if stripped.startswith("#"):
            if indent > col:
                last = i
            continue
        if stripped in ("---", "...") and indent == 0:
            break
        if indent < col or (dash_list and indent == col and not stripped.startswith("-")):
            break
        last = i
    return last


# -- writing -------------------------------------------------------------------------------

def _splice_into_map(text: str, node: CommentedMap, key: str, value: Any, root: bool) -> str:
    lines = text.splitlines(keepends=True)
    if not node:  # an empty file, or `key: {}`
        if root:
            return _append_at_end(text, {key: value})
        raise EditError(f"a mapping written as {{}} cannot take {key!r}: delete the {{}} "
                        "and run this again")
    if node.fa.flow_style():
        raise EditError(f"a mapping written on one line ({{...}}) cannot take {key!r}: write "
                        "it as a block (one `key: value` per line) and run this again")
    first = next(iter(node))
    line, col = node.lc.key(first)
    end = _block_end(lines, line, col)
    last_line = node.lc.key(list(node)[-1])[0]
    # entries set apart by a blank line (the registry's providers): the new one too
    gap = "\n" if last_line > 0 and not lines[last_line - 1].strip() and len(node) > 1 else ""
    return _insert(lines, end, gap + _render({key: value}, col))


def _under_empty_key(text: str, parent: CommentedMap, key: str, value: Any) -> str:
    """`key:` with no value: the entries go on the lines below it, one level deeper."""
    lines = text.splitlines(keepends=True)
    line, col = parent.lc.key(key)
    after = lines[line].split("#", 1)[0].rstrip()
    if not after.endswith(":"):
        raise EditError(f"{key!r} (line {line + 1}) holds a value on its line: edit it by hand")
    return _insert(lines, line, _render(value, col + 2))


def _append_at_end(text: str, value: dict) -> str:
    if text and not text.endswith("\n"):
        text += "\n"
    return text + _render(value, 0)


def _insert(lines: list[str], after: int, fragment: str) -> str:
    head = lines[:after + 1]
    if head and not head[-1].endswith("\n"):
        head[-1] += "\n"
    return "".join(head) + fragment + "".join(lines[after + 1:])


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.width = 4096  # a long command stays on its line
    yaml.indent(mapping=2, sequence=4, offset=2)  # the registry's own style
    return yaml


def _render(value: Any, indent: int) -> str:
    """`value` (a mapping) as block YAML lines indented by `indent` spaces."""
    out = io.StringIO()
    _yaml().dump(_quoted_keys(value), out)
    pad = " " * indent
    return "".join(pad + line if line.strip() else line
                   for line in out.getvalue().splitlines(keepends=True))


def _quoted_keys(value: Any) -> Any:
    """Keys holding ':' in double quotes ("qwen2.5-coder:7b":), as the registry writes them:
    plain YAML allows them, but a reader stumbles on `qwen3:0.6b:`."""
    if isinstance(value, dict):
        return {DoubleQuotedScalarString(k) if isinstance(k, str) and ":" in k else k:
                _quoted_keys(v) for k, v in value.items()}
    if isinstance(value, list) and not isinstance(value, CommentedSeq):
        return [_quoted_keys(v) for v in value]
    return value


def _render_item(item: Any, dash: int) -> str:
    """`item` as one `- …` list item whose dash is at column `dash`."""
    body = _render({"x": [item]}, 0).splitlines(keepends=True)[1:]
    shift = min(len(b) - len(b.lstrip(" ")) for b in body if b.strip())
    return "".join(" " * dash + b[shift:] if b.strip() else b for b in body)
