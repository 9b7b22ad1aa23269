"""A problem found in the registry, located by file, line, column and key path."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, field_validator

from stackctl.registry.secrets import redact


class Problem(BaseModel):
    severity: Literal["error", "warning"]
    file: str
    line: int | None = None
    column: int | None = None
    path: str = ""
    message: str
    hint: str | None = None

    @field_validator("path", "message", "hint")
    @classmethod
    def _no_secrets(cls, text: str | None) -> str | None:
        """Whatever built the message, a secret-shaped value in it is shown by kind and
        length only: messages reach terminals, logs and CI output. So does a control
        character of a name quoted in it: written as an escape, never run by a terminal."""
        return printable(redact(text)) if text else text

    def render(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        key = f" {self.path}:" if self.path else ""
        text = f"{where}: {self.severity}:{key} {self.message}"
        if self.hint:
            text += f" ({self.hint})"
        return text


def printable(text: str) -> str:
    """`text` with every character a terminal would not print as itself escaped (\\x1b)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in text)


class RegistryError(Exception):
    """Raised when the registry cannot be loaded at all; carries every problem found."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(p.render() for p in problems))


def display_path(path: Path) -> str:
    """Paths relative to the working directory when possible: shorter and machine-independent."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
