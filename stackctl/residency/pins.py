"""Members pinned by `stackctl pin`: never evicted by the on-demand scheduler's policy, never
put away idle, refused by `unload`.

Kept in the state folder (`$STACKCTL_STATE_DIR/PROJECT.pins.json`), not in the registry: a
pin is an operator's decision about a running stack, like a switch, and the registry's own
`gpu.pinned` stays the declared default (both count: `pinned_members`). The scheduler's
`group_spec(reg, group, pins=...)` reads them, so every policy decision sees the same pins.
A small flock on the file makes read-modify-write safe between two commands.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from stackctl.registry.load import Registry


class Pins(BaseModel):
    pinned: list[str] = Field(default_factory=list, description="members, in pin order")


def pins_path(state_dir: Path, project: str) -> Path:
    return state_dir / f"{project}.pins.json"


def read_pins(path: Path) -> Pins:
    """The pins (none without a file; a file that cannot be read pins nothing)."""
    try:
        return Pins.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, ValidationError, ValueError):
        return Pins()


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path.with_name(path.name + ".lock"), "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def set_pinned(path: Path, member: str, pinned: bool) -> bool:
    """Pin or unpin `member`; True when that changed something. Raises OSError."""
    with _locked(path):
        pins = read_pins(path)
        if (member in pins.pinned) == pinned:
            return False
        names = [*pins.pinned, member] if pinned else [m for m in pins.pinned if m != member]
        temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        temp.write_text(json.dumps({"pinned": names}, indent=1) + "\n", encoding="utf-8")
        os.replace(temp, path)
        return True


def registry_pinned(reg: Registry) -> set[str]:
    """Members the registry pins (`gpu.pinned`)."""
    return {name for name, p in reg.providers.providers.items()
            if p.container and p.container.gpu and p.container.gpu.pinned}


def pinned_members(reg: Registry, pins: Pins) -> set[str]:
    """Every pinned member: the registry's and the state folder's."""
    return registry_pinned(reg) | set(pins.pinned)
