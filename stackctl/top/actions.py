"""What `top`'s keys do, behind a small interface the app calls (tests record the calls).

A switch runs in-process through the same Target operation as `stackctl switch` (lock,
hold, rollback and journal included), so the screen keeps refreshing while it runs. Reload
and the request log are whole commands with their own output: the app suspends and runs
them as `stackctl` subprocesses in the terminal.

Load and unload go through the same residency client as `stackctl load`/`unload`
(residency/client.py): a load in an exclusive group is a switch; in a group with a memory
budget it keeps the members that fit.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

Say = Callable[[str], None]

class Actions(Protocol):
    def switch(self, member: str, say: Say) -> str:
        """Make `member` its group's active member; the result line. Raises on failure
        (the message says what happened, rollback included)."""

    def change(self, verb: str, member: str, say: Say) -> str:
        """`load` or `unload` `member`; the result line. Raises on failure."""

    def command(self, verb: str) -> list[str]:
        """The argv of `stackctl VERB …` for reload ('reload') and the request log
        ('requests')."""

    def run(self, argv: list[str]) -> int:
        """Run a command in the terminal (the app is suspended meanwhile)."""


class LiveActions:
    def __init__(self, reg: Any, config_dir: Path, docker: Callable[[], Any]):
        self.reg, self.config_dir, self.docker = reg, config_dir, docker

    def switch(self, member: str, say: Say) -> str:
        from stackctl.switching.loop import SwitchOptions
        from stackctl.targets.factory import target_for

        target = target_for(self.reg, docker=self.docker)
        report = target.switch(SwitchOptions(member=member, reason="stackctl top"), _Lines(say))
        lines: list[str] = []
        report.show(_Lines(lines.append))
        return "; ".join(lines)

    def change(self, verb: str, member: str, say: Say) -> str:
        from stackctl.errors import PlanError
        from stackctl.residency.client import ChangeOptions, client_for

        client = client_for(self.reg, self.docker, say)
        try:
            done = getattr(client, verb)(ChangeOptions(model=member, reason="stackctl top"))
        except PlanError as exc:
            raise RuntimeError(str(exc)) from None
        if done.noop:
            return f"{member}: nothing to do ({'already loaded' if verb == 'load' else 'not loaded'})"
        return f"{verb}ed {member} in GPU group {done.group!r} " \
            f"({done.timings.get('total', 0.0):.1f}s)"

    def command(self, verb: str) -> list[str]:
        base = [sys.executable, "-m", "stackctl", "-C", str(self.config_dir)]
        return base + (["logs", "--requests", "-f"] if verb == "requests" else [verb])

    def run(self, argv: list[str]) -> int:
        try:
            return subprocess.run(argv, check=False).returncode
        except KeyboardInterrupt:  # Ctrl-C ends the followed log, not top
            return 130


class _Lines:
    """A command Ui (targets/base.py) whose lines all go to one function."""

    quiet = False
    verbose = False
    as_json = False

    def __init__(self, say: Say):
        self._say = say

    def progress(self, text: str) -> None:
        self._say(text.strip())

    detail = result = progress

    def rich(self, *objects: Any, **kwargs: Any) -> None:
        self._say(" ".join(str(o) for o in objects))
