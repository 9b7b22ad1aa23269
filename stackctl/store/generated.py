"""Write the generated files (render/files.py renders them, as pure text) to the output folder."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from stackctl.store.writer import write_set


class File(Protocol):
    """A generated file: render.files.Generated (store reads no renderer)."""

    @property
    def path(self) -> Path: ...

    @property
    def text(self) -> str: ...


def write_all(files: Sequence[File], root: Path | None = None) -> list[Path]:
    """Write the stale files below `root` (the output folder; default: their common folder)
    as one set (see writer.py); return those written. Raises writer.WriteError (a PlanError)
    with nothing changed when one cannot be written."""
    if not files:
        return []
    base = root or Path(os.path.commonpath([f.path.parent for f in files]))
    return write_set(base, {f.path: f.text for f in files})
