"""Where the resident scheduler's files are: its sockets, pid file and log.

The gateway's socket sits beside the routing state in the folder the gateway mounts
(`<output_dir>/litellm/`). The control socket (for `switch`, `scheduler status`), the pid
file and the log are in the state folder; the control socket is named after the config
folder, so that `stackctl switch` finds it without reading the registry.
"""

from __future__ import annotations

from pathlib import Path

from stackctl.registry.vocabulary import LITELLM_FILE, SCHEDULER_SOCKET
from stackctl.resident.client import control_socket, short
from stackctl.store.lock import state_dir

__all__ = ["control_socket", "gateway_socket", "log_file", "pid_file", "short"]


def gateway_socket(output_dir: Path) -> Path:
    return output_dir / Path(LITELLM_FILE).parent / SCHEDULER_SOCKET


def pid_file(project: str) -> Path:
    return state_dir() / f"{project}.scheduler.pid"


def log_file(project: str) -> Path:
    return state_dir() / f"{project}.scheduler.log"
