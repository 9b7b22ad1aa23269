"""One lock per stack: `up` and `switch` hold it across read → decide → act."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class Busy(Exception):
    pass


def state_dir() -> Path:
    base = os.environ.get("STACKCTL_STATE_DIR") or os.path.join(
        os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state"), "stackctl")
    path = Path(base)
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def stack_lock(project: str, operation: str, wait: float | None = None) -> Iterator[None]:
    """Exclusive lock for `project`. Without `wait`, fail at once naming who holds it."""
    path = state_dir() / f"{project}.lock"
    with open(path, "a+") as fh:
        deadline = time.monotonic() + (wait or 0)
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if wait is None or time.monotonic() >= deadline:
                    fh.seek(0)
                    holder = fh.read().strip() or "another stackctl"
                    raise Busy(f"{holder} is in progress on stack {project!r}; "
                               "try again when it ends (or pass --wait)") from None
                time.sleep(0.2)
        fh.seek(0)
        fh.truncate()
        fh.write(f"`stackctl {operation}` (pid {os.getpid()})")
        fh.flush()
        try:
            yield
        finally:
            fh.seek(0)
            fh.truncate()
            fcntl.flock(fh, fcntl.LOCK_UN)
