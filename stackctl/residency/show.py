"""A PsTable as the aligned text `stackctl ps` prints (pure: tested as text)."""

from __future__ import annotations

from stackctl.residency.rows import PsRow, PsTable
from stackctl.top.format import age

HEADER = ("NAME", "GROUP", "STATE", "PINNED", "MEMORY", "IDLE", "LAST USED", "WAITING",
          "MODELS")


def duration(seconds: float | None) -> str:
    """'42s', '3m', '2h5m', '4d'; '-' when not known."""
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60}m" if s % 3600 >= 60 else f"{s // 3600}h"
    return f"{s // 86400}d"


def memory(row: PsRow) -> str:
    own = "-" if row.memory_gib is None else f"{row.memory_gib:g}"
    if row.group_memory_gib is not None:
        return f"{own}/{row.group_memory_gib:g} GiB"
    return "-" if row.memory_gib is None else f"{own} GiB"


def cells(row: PsRow, now: float) -> tuple[str, ...]:
    waiting = "-" if row.waiting is None else f"{row.waiting:g}"
    if row.held:
        waiting += " (held)"
    return (row.name, row.group or "-", row.state, "yes" if row.pinned else "-", memory(row),
            duration(row.idle_s), "-" if row.last_used is None else age(row.last_used, now),
            waiting, ", ".join(row.models) or "-")


def render(table: PsTable) -> str:
    lines = [HEADER, *(cells(r, table.taken_at) for r in table.rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(HEADER))]
    text = "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
                     for line in lines) + "\n"
    return text + "".join(f"note: {p}\n" for p in table.problems)
