"""A `Ui` (stackctl/targets/base.py) that records every line by kind."""

from __future__ import annotations

from typing import Any


class RecordingUi:
    def __init__(self, quiet: bool = False, verbose: bool = False, as_json: bool = False):
        self.quiet, self.verbose, self.as_json = quiet, verbose, as_json
        self.lines: list[tuple[str, str]] = []

    def progress(self, text: str) -> None:
        self.lines.append(("progress", text))

    def detail(self, text: str) -> None:
        self.lines.append(("detail", text))

    def result(self, text: str) -> None:
        self.lines.append(("result", text))

    def rich(self, *objects: Any, **kwargs: Any) -> None:
        self.lines.append(("rich", " ".join(str(o) for o in objects)))

    def of(self, kind: str) -> list[str]:
        return [text for k, text in self.lines if k == kind]
