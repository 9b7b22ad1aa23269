"""One `Target` per place the stack runs (stack.yaml `deploy.target`): the local Docker engine
(Compose), a Docker Swarm, a Kubernetes cluster. The commands `up`, `down`, `status` and
`switch` ask the target `factory.target_for(reg)` chose and never branch on which it is.

Each answer is a `Report`: the document `--json` prints (`json_text`), the lines shown
otherwise (`show`, through the command's `Ui`), and the exit code. A failure raises: a
PlanError (exit 1, or the error a target chose), `SwitchFailed` from a switch.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # types only: `status` does not load the switching machinery
    from stackctl.switching.loop import SwitchOptions, SwitchResult
    from stackctl.targets.compose_up import UpOptions

OnChange = Callable[[str, str, float], None]  # (service, verdict, seconds since the start)


class Ui(Protocol):
    """Where a command's lines go (the CLI's; tests record them)."""

    quiet: bool  # -q: only errors and the final line
    verbose: bool  # -v: detail lines too
    as_json: bool  # --json: stdout carries the JSON document only

    def progress(self, text: str) -> None:
        """A line while the work goes on; dropped with -q."""

    def detail(self, text: str) -> None:
        """A timed detail line, only with -v."""

    def result(self, text: str) -> None:
        """The final line(s): also with -q; under --json the document replaces them."""

    def rich(self, *objects: Any, **kwargs: Any) -> None:
        """Rich text or a table, on the command's rich console (dropped with -q)."""


class Report:
    """What a target answers a command with."""

    ok: bool = True
    problem: str = ""  # when not ok: the error message

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def document(self) -> dict[str, Any]:
        raise NotImplementedError

    def json_text(self) -> str:
        return json.dumps(self.document(), indent=2)

    def show(self, ui: Ui) -> None:
        raise NotImplementedError


class Target(Protocol):
    """The stack on one kind of engine."""

    kind: str  # compose, swarm, kubernetes

    def before_up(self) -> None:
        """What `up` checks before it writes `.env` or a generated file: the engine answers
        (EngineUnreachable otherwise: exit 4) and can run the stack (PlanError)."""

    def up(self, opts: UpOptions, files: dict[str, list[str]], ui: Ui,
           on_change: OnChange) -> Report:
        """Start the stack and wait until it is healthy. `files`: what `prepare_files` did
        (secrets created, files written)."""

    def down(self, profiles: list[str], volumes: bool, ui: Ui) -> Report:
        """Stop and remove it (not ok: something is left)."""

    def status(self) -> Report:
        """What runs and how healthy it is (the exit code tells)."""

    def switch(self, opts: SwitchOptions, ui: Ui) -> Report:
        """Move a GPU group to `opts.member` (with `opts.dry_run`: the plan, from this
        target's own view of the group). Raises SwitchFailed."""


class SwitchOutcome(Report):
    """A switch's plan and timings (every dry run; a switch on the local engine)."""

    def __init__(self, result: SwitchResult, dry_run: bool):
        self.result, self.dry_run = result, dry_run

    def document(self) -> dict[str, Any]:
        return {"ok": True, "dry_run": self.dry_run, "steps": self.result.plan.describe(),
                **self.result.model_dump(mode="json")}

    def show(self, ui: Ui) -> None:
        plan, t = self.result.plan, self.result.timings
        if self.dry_run:
            for step in plan.describe():
                ui.result("plan: " + step)
            return
        if plan.noop:
            ui.result(f"{plan.target} is already the active member of GPU group "
                      f"{plan.group!r}: ready and routable (checked in {t['total']:.1f}s)")
            return
        ui.result(f"switched GPU group {plan.group!r} to {plan.target} in {t['total']:.1f}s "
                  f"(stop {t['stop']:.1f}s, start {t['start']:.1f}s, ready {t['ready']:.1f}s, "
                  f"routable {t['routable']:.1f}s)")

