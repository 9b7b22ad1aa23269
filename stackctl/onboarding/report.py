"""What a migration did and what it left behind, each item located in the OLD files."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Item(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["changed", "dropped"] = Field(description="changed: carried over in another "
                                                "form; dropped: could not be carried over")
    file: str = Field(description="the old file, as given")
    line: int | None = Field(None, description="1-based line in the old file")
    path: str = Field("", description="key path in the old file")
    message: str

    def render(self) -> str:
        where = self.file + (f":{self.line}" if self.line else "")
        return f"{where}: {self.path + ': ' if self.path else ''}{self.message}"


class Recorder:
    """Collects items for one old file; `line` is looked up before the tree is edited."""

    def __init__(self, file: str):
        self.file = file
        self.items: list[Item] = []

    def changed(self, line: int | None, path: str, message: str) -> None:
        self.items.append(Item(kind="changed", file=self.file, line=line, path=path, message=message))

    def dropped(self, line: int | None, path: str, message: str) -> None:
        self.items.append(Item(kind="dropped", file=self.file, line=line, path=path, message=message))


def line_of(node, key) -> int | None:  # type: ignore[no-untyped-def]
    """1-based line of `key` in a round-trip mapping, or of item `key` in a sequence."""
    try:
        if isinstance(key, int):
            item = node[key]  # a collection knows where it starts, after deletions too
            return (item.lc.line if hasattr(item, "lc") else node.lc.item(key)[0]) + 1
        return node.lc.key(key)[0] + 1
    except (AttributeError, KeyError, IndexError, TypeError):
        return None
