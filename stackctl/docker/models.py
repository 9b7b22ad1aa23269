"""Observed state of the stack's containers, as plain typed data (what planners decide on).

A dataclass, not a pydantic model: it is built from Docker's own answers, never from user
input, and `switch` must not pay pydantic's import on its critical path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

LABEL = "org.stackctl"
Health = Literal["healthy", "unhealthy", "starting", "none"]


@dataclass
class ContainerState:
    name: str
    service: str
    state: str  # Docker's status: created, running, exited, restarting, dead…
    health: Health = "none"
    exit_code: int | None = None
    labels: dict[str, str] = field(default_factory=dict)
    restarts: int = 0  # how often Docker's restart policy has restarted it
    started_at: datetime | None = None  # when it (re)started last

    @property
    def gpu_group(self) -> str | None:
        return self.labels.get(f"{LABEL}.gpu-group")

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def ready(self) -> bool:
        """Running, and healthy when the image has a healthcheck."""
        return self.running and self.health in ("healthy", "none")

    @property
    def failed(self) -> bool:
        return self.state in ("exited", "dead") or self.health == "unhealthy"


def by_service(states: list[ContainerState]) -> dict[str, ContainerState]:
    return {s.service: s for s in states}
