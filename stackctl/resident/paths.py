"""Where the resident scheduler's files are: its sockets, pid file and log.

The gateway's socket sits beside the routing state in the folder the gateway mounts
(`<output_dir>/litellm/`). The control socket (for `switch`, `scheduler status`), the pid
file and the log are in the state folder; the control socket is named after the config
folder, so that `stackctl switch` finds it without reading the registry.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from stackctl.registry.vocabulary import LITELLM_FILE, SCHEDULER_SOCKET
from stackctl.resident.client import control_socket
from stackctl.store.lock import state_dir

__all__ = ["control_socket", "gateway_socket", "log_file", "pid_file", "short"]


def gateway_socket(output_dir: Path) -> Path:
    return output_dir / Path(LITELLM_FILE).parent / SCHEDULER_SOCKET


def pid_file(project: str) -> Path:
    return state_dir() / f"{project}.scheduler.pid"


def log_file(project: str) -> Path:
    return state_dir() / f"{project}.scheduler.log"


@contextmanager
def short(path: Path) -> Iterator[str]:
    """A path to `path` that fits a unix socket address (108 bytes): through an open
    descriptor of its folder, for the folders of deep checkouts and test runs."""
    if len(str(path)) < 100:
        yield str(path)
        return
    fd = os.open(path.parent, os.O_PATH | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)
