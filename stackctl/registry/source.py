"""YAML loading that remembers where every key and item came from (ruamel.yaml).

A registry file is untrusted input: it is read only if it is a regular file inside the
config folder and at most MAX_BYTES long, parsed with a nesting limit, without merge keys,
and turned into plain data with a limit on how many values aliases may expand to. Each
refusal is a located Problem, never a traceback, a hang or unbounded memory.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import (
    CommentedKeyMap,
    CommentedKeySeq,
    CommentedMap,
    CommentedSeq,
    CommentedSet,
    TaggedScalar,
)
from ruamel.yaml.composer import Composer, MaxDepthExceededError
from ruamel.yaml.constructor import ConstructorError, DuplicateKeyError, RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError
from ruamel.yaml.reader import ReaderError
from ruamel.yaml.scalarstring import ScalarString

from stackctl.registry.problems import Problem, RegistryError, display_path

Loc = tuple[str | int, ...]

MAX_BYTES = 256 * 1024  # real files are a few KiB; ruamel reads ~60 KiB/s, so this bounds time
MAX_DEPTH = 64  # real registries nest about 6 deep; deeper input would exhaust the stack
MAX_VALUES = 100_000  # values after alias expansion: bounds an alias bomb ("billion laughs")
MERGE_TAG = "tag:yaml.org,2002:merge"


class Source:
    """One parsed YAML file: plain data for pydantic plus a position lookup by key path."""

    def __init__(self, path: Path, tree: Any):
        self.path = path
        self.name = shown_path(path)
        self.tree = tree
        self.data = _Plain(self).convert(tree)

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

    def alias_use(self, loc: Loc) -> Loc:
        """The prefix of `loc` to the key or item holding the first alias (*name) on the way:
        the place to point at when what an alias brings in is too big or too deep. A
        collection reached through an alias starts before its container in the file (ruamel
        records no position for the alias itself)."""
        node: Any = self.tree
        for i, key in enumerate(loc):
            if isinstance(node, CommentedMap) and key in node:
                child = node[key]
            elif isinstance(node, CommentedSeq) and isinstance(key, int) and key < len(node):
                child = node[key]
            else:
                break
            if isinstance(child, (CommentedMap, CommentedSeq)) and \
                    (child.lc.line, child.lc.col) < (node.lc.line, node.lc.col):
                return loc[:i]
            node = child
        return loc

    def key_path(self, loc: Loc, is_tag: Any) -> Loc:
        """`loc` from pydantic without the union/type members it inserts ('str', 'list[str]'):
        an element is a key of the file when the data holds it there, whatever it looks like
        (a provider may be called `int`); only elements the data lacks are tested by `is_tag`."""
        out: list[str | int] = []
        node: Any = self.data
        for key in loc:
            if isinstance(node, dict) and key in node:
                node = node[key]
            elif isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node):
                node = node[key]
            elif isinstance(key, int) or not is_tag(key):
                node = None
            else:
                continue
            out.append(key)
        return tuple(out)


def format_path(loc: Loc) -> str:
    out = ""
    for key in loc:
        if isinstance(key, int):
            out += f"[{key}]"
        elif key == "" or any(c in key for c in "[]\"' \t"):
            out += f"[{json.dumps(key)}]"  # so `a[0]` the key does not read as item 0 of `a`
        else:
            out += ("." if out else "") + str(key)
    return out


def shown_path(path: Path) -> str:
    """The file as named in the folder (a symlink by its own name, not its target's; resolving
    a symlink loop would raise)."""
    return str(Path(display_path(path.parent)) / path.name)


def load_source(path: Path, required: bool = True, text: str | None = None) -> Source | None:
    """The file at `path` parsed; with `text`, that text as if it were the file's (an edit
    validated before it is written: problems name the file and the edited text's lines)."""
    name = shown_path(path)

    def fail(message: str, line: int | None = None, column: int | None = None,
             hint: str | None = None) -> RegistryError:
        return RegistryError([Problem(severity="error", file=name, line=line, column=column,
                                      message=message, hint=hint)])

    if text is None:
        raw = _read(path, required, fail, MISSING_HINTS.get(path.name))
        if raw is None:
            return None
        text = _decode(raw, fail)
    try:
        tree = _yaml().load(text)
    except ReaderError as exc:  # a character YAML does not allow (NUL, other controls)
        line, col = _where(text, exc.position)
        char = exc.character if isinstance(exc.character, int) else 0
        raise fail(f"character U+{char:04X} is not allowed in YAML", line, col,
                   "remove it, or write it as an escape inside a double-quoted string") from None
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        if (tab := _tab_indent(text, line)) is not None:
            raise fail("this line is indented with a tab: YAML indents with spaces only",
                       line, tab, "replace each tab with spaces, as many as the lines around "
                       "it use per level") from None
        raise fail(_yaml_message(exc), line, mark.column + 1 if mark else None) from None
    except Exception as exc:  # noqa: BLE001  anything else ruamel raises, still no traceback
        raise fail(f"invalid YAML ({type(exc).__name__})") from None
    if tree is None:
        tree = CommentedMap()
    if not isinstance(tree, CommentedMap):
        raise fail("expected a mapping at the top level", 1)
    return Source(path, tree)


# -- reading the file -------------------------------------------------------------------------

# What a missing required file is for, and how to make one (the loader's message for it)
MISSING_HINTS = {
    "providers.yaml": "it lists the inference providers: copy examples/offline/config/"
                      "providers.yaml, or point -C/--config-dir at the folder holding yours",
    "model-mappings.yaml": "it names the models the gateway serves: `stackctl add model "
                           "NAME --provider P` creates it, or write one entry per model "
                           "under exact_matches: (README § Registry), or point "
                           "-C/--config-dir at the folder holding yours",
}


def _read(path: Path, required: bool, fail: Any, missing_hint: str | None = None
          ) -> bytes | None:
    """The bytes of a regular file inside its folder, at most MAX_BYTES; never blocks on a
    FIFO or device and never follows a symlink out of the config folder."""
    try:
        os.lstat(path)
    except FileNotFoundError:
        if not required:
            return None
        raise fail("file not found", hint=missing_hint or "point -C/--config-dir at the "
                   "folder holding it") from None
    except OSError as exc:
        raise fail(f"cannot be read: {exc.strerror}") from None
    folder = path.parent.resolve()
    try:
        real = path.resolve(strict=True)
    except FileNotFoundError:
        raise fail(f"is a symlink to {os.readlink(path)}, which does not exist") from None
    except (RuntimeError, OSError) as exc:  # RuntimeError: a symlink loop (Python < 3.13)
        if isinstance(exc, RuntimeError) or getattr(exc, "errno", None) == errno.ELOOP:
            raise fail("is a symlink loop", hint="point the symlink at a real file") from None
        raise fail(f"cannot be read: {exc.strerror}") from None
    refused = _not_regular(os.stat(real).st_mode)
    if refused:
        raise fail(refused, hint="a registry file must be a regular YAML file")
    if real.parent != folder and folder not in real.parents:
        raise fail(f"is a symlink to {real}, outside the config folder",
                   hint="registry files are read only from the config folder, so -C names "
                        "everything validated and generated; copy the file in instead")
    # O_NONBLOCK: a FIFO swapped in after the check still cannot block the open
    try:
        fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        raise fail(f"cannot be read: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        refused = _not_regular(os.fstat(fd).st_mode)
        if refused:
            raise fail(refused, hint="a registry file must be a regular YAML file")
        raw = f.read(MAX_BYTES + 1)
    if len(raw) > MAX_BYTES:
        raise fail(f"is larger than {MAX_BYTES // 1024} KiB",
                   hint="a registry file is a few KiB; is this the right file?")
    return raw


def _not_regular(mode: int) -> str | None:
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "is a folder, not a file"
    kind = ("a FIFO (named pipe)" if stat.S_ISFIFO(mode) else
            "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else
            "a socket" if stat.S_ISSOCK(mode) else "a special file")
    return f"is {kind}, not a regular file"


def _decode(raw: bytes, fail: Any) -> str:
    """UTF-8 text; a UTF-8 byte-order mark is dropped (editors on Windows write one)."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise fail("is UTF-16 text, not UTF-8", 1, 1, "save it as UTF-8")
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        head = raw[:exc.start]
        line = head.count(b"\n") + 1
        column = len(head[head.rfind(b"\n") + 1:].decode("utf-8", "replace")) + 1
        raise fail(f"is not valid UTF-8: byte 0x{raw[exc.start]:02x} cannot start or continue "
                   "a character", line, column, "save the file as UTF-8") from None


def _tab_indent(text: str, line: int | None) -> int | None:
    """1-based column of a tab in the indentation of `line` (or of the line before it, where
    YAML often notices), else None: a tab there is what the parser's error is about."""
    if line is None:
        return None
    lines = text.splitlines()
    for n in (line, line - 1):
        if 1 <= n <= len(lines):
            body = lines[n - 1]
            indent = body[:len(body) - len(body.lstrip(" \t"))]
            if "\t" in indent:
                return indent.index("\t") + 1
    return None


def _where(text: str, index: int) -> tuple[int, int]:
    head = text[:index]
    return head.count("\n") + 1, index - (head.rfind("\n") + 1) + 1


# -- parsing --------------------------------------------------------------------------------

class _Refused(ConstructorError):
    """Input stackctl refuses though YAML allows it; the message is complete as it is."""


class _Composer(Composer):
    def compose_mapping_node(self, anchor: Any) -> Any:
        node = super().compose_mapping_node(anchor)
        for key_node, _ in node.value:
            if key_node.tag == MERGE_TAG:
                raise _Refused(
                    None, None, "merge keys (<<) are not supported: write the keys out, so "
                    "each error points at the line that sets it", key_node.start_mark)
        return node


class _Constructor(RoundTripConstructor):
    def check_mapping_key(self, node: Any, key_node: Any, mapping: Any, key: Any,
                          value: Any) -> bool:
        """A duplicate key names the key and both lines, never the values (maybe secrets)."""
        if key not in mapping:
            return True
        first = next((k for k, _ in node.value
                      if k is not key_node and getattr(k, "value", None) == key_node.value),
                     None)
        where = f" (first set on line {first.start_mark.line + 1})" if first else ""
        raise DuplicateKeyError(None, None, f"duplicate key {_key_text(key)!r}{where}",
                                key_node.start_mark)

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except ValueError:  # e.g. Python's limit on int("999…") (sys.get_int_max_str_digits)
            tag = str(node.tag).rsplit(":", 1)[-1]
            size = len(node.value) if isinstance(node.value, str) else 0
            what = "number" if tag in ("int", "float") else f"{tag} value"
            raise _Refused(None, None, f"cannot read this {what} ({size} characters long)",
                           node.start_mark) from None


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.Composer = _Composer
    yaml.Constructor = _Constructor
    yaml.max_depth = MAX_DEPTH
    return yaml


def _yaml_message(exc: MarkedYAMLError) -> str:
    if isinstance(exc, MaxDepthExceededError):
        return f"nested more than {MAX_DEPTH} levels deep"
    if isinstance(exc, _Refused):
        return str(exc.problem)
    return f"invalid YAML: {exc.problem or exc.context}"


# -- plain data for pydantic ----------------------------------------------------------------

class _Plain:
    """The tree as plain dicts, lists and scalars; keys must be strings (a key YAML reads as
    null, a boolean, a number or a collection is refused where it stands), and the values
    reached through aliases are counted so a small file cannot expand without bound."""

    def __init__(self, src: Source):
        self.src = src
        self.count = 0
        self.problems: list[Problem] = []

    def convert(self, tree: Any) -> Any:
        data = self._plain(tree, ())
        if self.problems:
            raise RegistryError(self.problems)
        return data

    def _plain(self, node: Any, loc: Loc) -> Any:
        self.count += 1
        if self.count > MAX_VALUES:
            raise RegistryError([self.src.problem(
                "error", self.src.alias_use(loc), f"the file expands to more than {MAX_VALUES} values",
                "an alias (*name) repeated inside repeated aliases multiplies; write the "
                "values out")])
        if len(loc) > MAX_DEPTH:  # aliases inside aliases nest without nesting in the text
            raise RegistryError([self.src.problem(
                "error", self.src.alias_use(loc), f"nested more than {MAX_DEPTH} levels deep through aliases",
                "write the values out")])
        if isinstance(node, dict):
            out = {}
            for k, v in node.items():
                if isinstance(k, str):
                    out[str(k)] = self._plain(v, (*loc, k))
                else:
                    self._bad_key(k, loc)
            return out
        if isinstance(node, list):
            return [self._plain(v, (*loc, i)) for i, v in enumerate(node)]
        tag = (str(node.tag.value).replace("tag:yaml.org,2002:", "!!")
               if isinstance(node, TaggedScalar) else "!!binary" if isinstance(node, bytes)
               else "!!set" if isinstance(node, (set, CommentedSet)) else None)
        if tag:  # custom or exotic tags build objects no registry field takes
            self.problems.append(self.src.problem(
                "error", loc, f"YAML tag {tag} is not supported",
                "remove the tag; stackctl reads plain strings, numbers, booleans, lists and "
                "mappings"))
            return None
        if isinstance(node, ScalarString):
            return str(node)
        return node

    def _bad_key(self, key: Any, loc: Loc) -> None:
        line, col = self.src.position((*loc, key))
        text = _key_text(key)
        if isinstance(key, (CommentedKeyMap, CommentedKeySeq, tuple, frozenset)):
            message, hint = "a key must be a name, not a mapping or sequence", None
        else:
            kind = ("null" if key is None else "a boolean" if isinstance(key, bool)
                    else "a number" if isinstance(key, (int, float)) else type(key).__name__)
            message = f"key {text} is read by YAML as {kind}, not a name"
            hint = f'quote it if it is a name: "{text}"'
        self.problems.append(Problem(severity="error", file=self.src.name, line=line,
                                     column=col, path=format_path(loc), message=message,
                                     hint=hint))


def _key_text(key: Any) -> str:
    """A key as YAML spells it (null, true, 3), not as Python prints it (None, True)."""
    if key is None:
        return "null"
    if isinstance(key, bool):
        return "true" if key else "false"
    return str(key)
