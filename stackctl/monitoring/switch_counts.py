"""Every switch of a stack counted, by reason, with a histogram of their durations: the
counters the Pushgateway carries for `rate()`, thrash and the GPU-groups dashboard.

Why a file: the Pushgateway keeps one push per group and a push replaces the last one, so a
counter must be cumulative where it is pushed from; the switch journal is trimmed (its count
would fall back, which Prometheus reads as a reset). The file is rewritten under the stack
lock, like the journal: one writer at a time; a lost file starts the counters again (a
reset that rate() handles).

Reasons: `manual` (a command: switch, load, unload, top), `demand` (the scheduler loads a
member for its requests), `idle` (it puts an idle member away), and `rollback`, counted once
more for a switch that was rolled back (the group moved twice).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

REASONS = ("demand", "idle", "manual", "rollback")
# seconds: a vLLM wake (0.3 s) up to a cold start of a large model (minutes)
BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)


class GroupCounts(BaseModel):
    """One group's counters since the file was created."""

    switches: dict[str, int] = Field(default_factory=lambda: dict.fromkeys(REASONS, 0),
                                     description="reason → switches")
    buckets: list[int] = Field(default_factory=lambda: [0] * len(BUCKETS),
                               description="cumulative: switches that took <= BUCKETS[i]")
    count: int = 0
    sum: float = 0.0

    def add(self, reason: str, seconds: float, rolled_back: bool) -> GroupCounts:
        """The counts with one more switch (pure)."""
        switches = {**dict.fromkeys(REASONS, 0), **self.switches}
        switches[reason] = switches.get(reason, 0) + 1
        if rolled_back:
            switches["rollback"] += 1
        buckets = [n + (seconds <= le) for n, le in zip(self.buckets, BUCKETS, strict=True)]
        return GroupCounts(switches=switches, buckets=buckets, count=self.count + 1,
                           sum=round(self.sum + seconds, 3))


class SwitchCounts(BaseModel):
    groups: dict[str, GroupCounts] = Field(default_factory=dict)


def counts_path(state_dir: Path, project: str) -> Path:
    return state_dir / f"{project}.switch-counts.json"


def load(path: Path) -> SwitchCounts:
    """The counts ({} without a file, or when it cannot be read: counted again from 0)."""
    try:
        return SwitchCounts.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, ValidationError, ValueError):
        return SwitchCounts()


def count(path: Path, group: str, reason: str, seconds: float, rolled_back: bool
          ) -> tuple[GroupCounts, str | None]:
    """Count one switch of `group`; (its counts now, None or why the file was not written: a
    switch never fails because of it)."""
    counts = load(path)
    counts.groups[group] = counts.groups.get(group, GroupCounts()).add(reason, seconds,
                                                                        rolled_back)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temp.write_text(json.dumps(counts.model_dump(), indent=1) + "\n", encoding="utf-8")
        os.replace(temp, path)
    except OSError as exc:
        return counts.groups[group], f"switch counts {path} not written: {exc.strerror or exc}"
    return counts.groups[group], None


def _le(bound: float) -> str:
    return f"{bound:g}" if bound != int(bound) else f"{bound:.1f}"


def counts_metrics(group_label: str, counts: GroupCounts) -> list[str]:
    """The exposition lines of one group's counters (`group_label` escaped already)."""
    g = group_label
    lines = ["# TYPE stackctl_switches_total counter"]
    lines += [f'stackctl_switches_total{{gpu_group="{g}",reason="{r}"}} '
              f"{counts.switches.get(r, 0)}" for r in REASONS]
    lines.append("# TYPE stackctl_switch_seconds histogram")
    lines += [f'stackctl_switch_seconds_bucket{{gpu_group="{g}",le="{_le(le)}"}} {n}'
              for le, n in zip(BUCKETS, counts.buckets, strict=True)]
    lines += [f'stackctl_switch_seconds_bucket{{gpu_group="{g}",le="+Inf"}} {counts.count}',
              f'stackctl_switch_seconds_sum{{gpu_group="{g}"}} {counts.sum:.3f}',
              f'stackctl_switch_seconds_count{{gpu_group="{g}"}} {counts.count}']
    return lines
