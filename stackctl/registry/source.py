"""YAML loading that remembers where every key and item came from (ruamel.yaml)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from .problems import Problem, RegistryError, display_path

Loc = tuple[str | int, ...]


class Source:
    """One parsed YAML file: plain data for pydantic plus a position lookup by key path."""

    def __init__(self, path: Path, tree: Any):
        self.path = path
        self.name = display_path(path)
        self.tree = tree
        self.data = _plain(tree)

    def position(self, loc: Loc) -> tuple[int | None, int | None]:
        """1-based (line, column) of the deepest node of `loc` that exists in the file."""
        node, line, col = self.tree, None, None
        for key in loc:
            if isinstance(node, CommentedMap) and key in node:
                line, col = node.lc.key(key)
                node = node[key]
            elif isinstance(node, CommentedSeq) and isinstance(key, int) and key < len(node):
                line, col = node.lc.item(key)
                node = node[key]
            else:
                break
        if line is None and isinstance(self.tree, CommentedMap):
            line, col = self.tree.lc.line, self.tree.lc.col
        return (line + 1 if line is not None else None, col + 1 if col is not None else None)

    def problem(self, severity: str, loc: Loc, message: str, hint: str | None = None) -> Problem:
        line, col = self.position(loc)
        return Problem(severity=severity, file=self.name, line=line, column=col,
                       path=format_path(loc), message=message, hint=hint)


def format_path(loc: Loc) -> str:
    out = ""
    for key in loc:
        if isinstance(key, int):
            out += f"[{key}]"
        else:
            out += ("." if out else "") + str(key)
    return out


def load_source(path: Path, required: bool = True) -> Source | None:
    if not path.exists():
        if not required:
            return None
        raise RegistryError([Problem(severity="error", file=display_path(path),
                                     message="file not found",
                                     hint="point -C/--config-dir at the folder holding it")])
    yaml = YAML(typ="rt")
    try:
        tree = yaml.load(path.read_text(encoding="utf-8"))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise RegistryError([Problem(
            severity="error", file=display_path(path),
            line=mark.line + 1 if mark else None, column=mark.column + 1 if mark else None,
            message=f"invalid YAML: {exc.problem or exc.context}",
        )]) from None
    except Exception as exc:  # duplicate keys and friends come as other ruamel errors
        raise RegistryError([Problem(severity="error", file=display_path(path),
                                     message=f"invalid YAML: {exc}")]) from None
    if tree is None:
        tree = CommentedMap()
    if not isinstance(tree, CommentedMap):
        raise RegistryError([Problem(severity="error", file=display_path(path), line=1,
                                     message="expected a mapping at the top level")])
    return Source(path, tree)


def _plain(node: Any) -> Any:
    if isinstance(node, dict):
        return {str(k) if not isinstance(k, (str, int)) else k: _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    if isinstance(node, str):
        return str(node)
    return node
