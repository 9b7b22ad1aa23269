"""The GPU groups on the local engine as they are now: which running members sleep (their
engines' own word) and which members cannot answer. `up` writes the gateway's routing state
from these; `switch` reads a sleep-mode group with them."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from stackctl.docker.models import ContainerState
from stackctl.registry.catalog import group_settings
from stackctl.registry.load import Registry
from stackctl.switching.members import Member

SleepStates = Callable[[list[ContainerState]], dict[str, bool | None]]


def sleep_states(members: dict[str, Member], observed: list[ContainerState]
                 ) -> dict[str, bool | None]:
    """Running member → is its engine sleeping (None: it cannot say), asked side by side."""
    # requests: imported once asked (a restart-mode switch pays for it after the stop)
    from stackctl.switching.vllm import EngineError, VllmEngine

    def ask(name: str) -> bool | None:
        url = members[name].url
        try:
            return VllmEngine(name, url).is_sleeping() if url else None
        except EngineError:
            return None

    names = [s.service for s in observed if s.running and s.service in members]
    if not names:
        return {}
    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        return dict(zip(names, pool.map(ask, names), strict=True))


def inactive_members(reg: Registry, members: dict[str, Member], observed: list[ContainerState],
                     read_states: SleepStates, skip: str | None = None) -> set[str]:
    """Members that cannot answer now: not running, or asleep (sleep-mode groups)."""
    running = {s.service for s in observed if s.running}
    out = {m for m, info in members.items() if info.group != skip and m not in running}
    sleepers = [s for s in observed if s.running and s.service in members
                and members[s.service].group != skip
                and group_settings(reg, members[s.service].group).switch == "sleep"]
    if sleepers:
        out |= {m for m, asleep in read_states(sleepers).items() if asleep is not False}
    return out
