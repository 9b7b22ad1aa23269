"""The switch journal: one JSON line per finished switch of a stack, with what asked for it.

Why a file: the Pushgateway keeps only each group's last switch, and only when the
monitoring profile runs; `stackctl top` shows the recent switches and their reasons on any
stack. It is a record of what happened, never read to decide anything (the active member
comes from Docker: design.md). Appending a short line is atomic enough for one writer at a
time, which the stack lock guarantees; a reader skips a line it cannot parse.
"""

from __future__ import annotations

import time
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

KEEP = 200  # lines kept: the file is trimmed to this many when it grows past twice as many


class SwitchRecord(BaseModel):
    at: float = Field(description="when it finished (Unix seconds)")
    group: str
    previous: str | None = Field(description="the active member before; null: none")
    target: str = Field(description="the member asked for")
    active: str | None = Field(description="the active member after (the previous one after a "
                               "rollback); null: none")
    success: bool
    rolled_back: bool
    seconds: float = Field(description="the switch's total time")
    reason: str = Field(description="what asked for it, e.g. `stackctl switch`")


def journal_path(state_dir: Path, project: str) -> Path:
    return state_dir / f"{project}.switches.jsonl"


def append(path: Path, record: SwitchRecord) -> str | None:
    """Add `record`; None on success, else why not (a switch never fails because of it)."""
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(record.model_dump_json() + "\n")
        if path.stat().st_size > 2 * KEEP * 300:  # ~300 bytes a line: trim now and then
            lines = path.read_text(encoding="utf-8").splitlines()[-KEEP:]
            temp = path.with_suffix(".tmp")
            temp.write_text("\n".join(lines) + "\n", encoding="utf-8")
            temp.replace(path)
    except OSError as exc:
        return f"switch journal {path} not written: {exc.strerror or exc}"
    return None


def recent(path: Path, limit: int = 10) -> list[SwitchRecord]:
    """The last `limit` records, newest first ([] without a journal)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 64 * 1024))  # the tail is enough: lines are short
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return []
    out: list[SwitchRecord] = []
    for line in reversed(lines):
        try:
            out.append(SwitchRecord.model_validate_json(line))
        except (ValidationError, ValueError):
            continue  # a partial first line of the tail, or a hand edit
        if len(out) == limit:
            break
    return out


def now() -> float:
    return time.time()
