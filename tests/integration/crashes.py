"""Crashing a container the way a real fault does (a helper of the integration tests)."""

from __future__ import annotations

import os
import signal
import subprocess


def crash(container: str) -> None:
    """SIGKILL the container's main process from the host: a crash, not a manual stop
    (Docker applies no restart policy after `docker kill`)."""
    pid = int(subprocess.run(["docker", "inspect", "-f", "{{.State.Pid}}", container],
                             capture_output=True, text=True, check=True).stdout)
    assert pid > 0, f"{container} is not running"
    os.kill(pid, signal.SIGKILL)
