"""The commands' `Ui` (targets/base.py): `Say`'s lines, and a rich console for tables and
coloured text, made when first used (rich costs ~40 ms to import; `status --json` never
pays it)."""

from __future__ import annotations

from typing import Any

from stackctl.cli.options import Say


class Ui(Say):
    """Progress, detail and result lines as `Say` prints them; `rich(...)` prints through one
    rich console: stdout, or stderr under --json, silent with -q."""

    def __init__(self, quiet: bool = False, verbose: bool = False, as_json: bool = False):
        super().__init__(quiet, verbose, as_json)
        self._console: Any = None

    def rich(self, *objects: Any, **kwargs: Any) -> None:
        if self._console is None:
            from rich.console import Console

            self._console = Console(highlight=False, stderr=self.as_json, quiet=self.quiet)
        self._console.print(*objects, **kwargs)
