"""stackctl unload MODEL: put a GPU group member away (sleep, or stop)."""

from __future__ import annotations

from pathlib import Path

import click

from stackctl.cli.common import FAILED, NO_ENGINE, OK, exit_codes, json_errors
from stackctl.cli.load import change_options, run_change
from stackctl.cli.ui import Ui


@click.command(epilog=exit_codes({
    OK: "MODEL's member is unloaded (or was not loaded; or --dry-run)",
    FAILED: "a pinned member (unpin it first), an unknown MODEL (the known ones are\n"
            "       listed), registry errors, a concurrent up/switch (see --wait)",
    NO_ENGINE: "no Docker engine answers",
}))
@change_options
@json_errors
def unload(config_dir: Path, model: str, dry_run: bool, lock_wait: float | None,
           as_json: bool, quiet: bool, verbose: bool) -> None:
    """Unload MODEL's GPU group member (MODEL: a member, e.g. `dolphin`, or a model it
    serves): its requests go to their fallback at once, then it finishes the ones it has and
    sleeps (a sleep-mode group) or stops. The group's other members are left as they are.
    A pinned member is refused (`stackctl unpin` it first).
    """
    run_change(config_dir, "unload", Ui(quiet, verbose, as_json), model=model,
               dry_run=dry_run, lock_wait=lock_wait)
