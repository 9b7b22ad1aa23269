"""Round-trip YAML for the files `init` writes: the user's comments and key order kept,
new keys and comments added where a reader looks for them."""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.tokens import CommentToken

WIDTH = 120


def rt_yaml() -> YAML:
    yaml = YAML(typ="rt")
    # the layout of the shipped registry: `key:` then `  - item` two columns in
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = WIDTH
    yaml.preserve_quotes = True  # "0.3" stays a quoted string, as the user wrote it
    # `fallback: null` stays written out (ruamel's default writes nothing after the colon)
    yaml.representer.add_representer(
        type(None), lambda rep, _: rep.represent_scalar("tag:yaml.org,2002:null", "null"))
    return yaml


def dump(tree: Any) -> str:
    out = io.StringIO()
    rt_yaml().dump(tree, out)
    return out.getvalue()


def load_text(text: str) -> Any:
    return rt_yaml().load(text)


def reload(src: Any) -> CommentedMap:
    """The tree of a file registry.source.load_source has read and checked, parsed again
    keeping its quotes (the registry's loader drops them: it only reads values)."""
    tree = load_text(src.path.read_bytes().decode("utf-8-sig"))
    return tree if isinstance(tree, CommentedMap) else CommentedMap()


def flow(items: Iterable[Any]) -> CommentedSeq:
    """A list written on one line ([a, b]), as the registry writes commands."""
    seq = CommentedSeq(list(items))
    seq.fa.set_flow_style()
    return seq


def mapping(pairs: Iterable[tuple[str, Any]] | dict[str, Any] = (), flow_style: bool = False) -> CommentedMap:
    cm = CommentedMap(pairs.items() if isinstance(pairs, dict) else pairs)
    if flow_style:
        cm.fa.set_flow_style()
    return cm


def comment_before(cm: CommentedMap, key: str, text: str, indent: int) -> None:
    """Comment lines right above `key` (each line of `text` one comment line)."""
    cm.yaml_set_comment_before_after_key(key, before=text, indent=indent)


def comment_after(cm: CommentedMap, key: str, text: str) -> None:
    """An end-of-line comment on `key`'s line (scalar values) or after its value."""
    cm.yaml_add_eol_comment(text, key, column=0)


def remove_key(cm: CommentedMap, key: str) -> None:
    """Delete `key`; the comment lines after its value (ruamel attaches the lines that
    introduce the next key to the end of the previous value) stay where they were."""
    keys = list(cm)
    pos = keys.index(key)
    tail = pop_trailing(cm, key)
    del cm[key]
    if tail and pos > 0:
        push_trailing(cm, keys[pos - 1], tail)


def append_key(cm: CommentedMap, key: str, value: Any) -> None:
    """Add `key` at the end of `cm`, before the blank lines and comments that ended it."""
    tail = pop_trailing(cm, list(cm)[-1]) if len(cm) else None
    cm[key] = value
    if tail:
        push_trailing(cm, key, tail)


def pop_trailing(node: Any, key: Any) -> str | None:
    """Remove and return the lines after the end of `node[key]`'s line (blank lines and
    comments before whatever follows), None when there are none."""
    value = node[key]
    if isinstance(value, (CommentedMap, CommentedSeq)) and len(value) and not value.fa.flow_style():
        last = list(value)[-1] if isinstance(value, CommentedMap) else len(value) - 1
        return pop_trailing(value, last)
    slot = node.ca.items.get(key)
    index = 0 if isinstance(node, CommentedSeq) else 2
    token = slot[index] if slot and len(slot) > index else None
    if token is None:
        return None
    head, nl, rest = token.value.partition("\n")
    if not nl or not rest:
        return None
    if head.strip():
        token.value = head + "\n"
    else:
        slot[index] = None
    return rest


def push_trailing(node: Any, key: Any, tail: str) -> None:
    """Put `tail` (from pop_trailing) after the end of `node[key]`."""
    value = node[key]
    if isinstance(value, (CommentedMap, CommentedSeq)) and len(value) and not value.fa.flow_style():
        last = list(value)[-1] if isinstance(value, CommentedMap) else len(value) - 1
        push_trailing(value, last, tail)
        return
    index = 0 if isinstance(node, CommentedSeq) else 2
    size = 2 if isinstance(node, CommentedSeq) else 4
    slot = node.ca.items.setdefault(key, [None] * size)
    token = slot[index]
    if token is None:
        slot[index] = CommentToken("\n" + tail, _mark(), None)
    else:
        token.value = token.value.rstrip("\n") + "\n" + tail


def rename_key(cm: CommentedMap, old: str, new: str) -> None:
    """`old` becomes `new` at the same place, with its comments."""
    pos = list(cm).index(old)
    value = cm[old]
    comments = cm.ca.items.pop(old, None)
    del cm[old]
    cm.insert(pos, new, value)
    if comments is not None:
        cm.ca.items[new] = comments


def _mark():  # type: ignore[no-untyped-def]
    from ruamel.yaml.error import CommentMark

    return CommentMark(0)
