"""Start, find and stop a stack's resident scheduler (`up`, `down`, `stackctl scheduler`).

It is a host process, not a container: loading a member in a restart-mode group starts and
stops containers, which needs the Docker engine, and the engine's socket must never be
mounted into a container that runs a user-chosen image. On the host it has the rights of
the user who runs `up`, no more than `stackctl switch` has. See design.md.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from stackctl.errors import PlanError
from stackctl.registry.load import Registry
from stackctl.resident.client import connect
from stackctl.resident.paths import control_socket, gateway_socket, log_file, pid_file

START_TIMEOUT = 30.0  # seconds until it answers (it reads the groups first)


@dataclass(frozen=True)
class Running:
    pid: int
    log: Path
    started: bool  # by this call


def fingerprint(config_dir: Path) -> str:
    """The registry's files as the scheduler read them: `up` restarts one that read others."""
    digest = hashlib.sha256()
    for name in ("providers.yaml", "model-mappings.yaml", "stack.yaml"):
        try:
            digest.update((config_dir / name).read_bytes())
        except OSError:
            pass
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def running(project: str) -> int | None:
    """The supervisor's pid while it lives (it holds its pid file's lock), else None."""
    path = pid_file(project)
    try:
        with open(path) as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.seek(0)
                text = fh.read().strip()
                return int(text) if text.isdigit() else None
            fcntl.flock(fh, fcntl.LOCK_UN)
    except FileNotFoundError:
        pass
    return None


def ask(config_dir: Path, message: dict, timeout: float = 2.0) -> dict | None:
    """One question on the control socket; None when no scheduler answers."""
    path = control_socket(config_dir)
    s = connect(path, timeout) if path.exists() else None
    if s is None:
        return None
    try:
        with s:
            s.sendall(json.dumps(message).encode() + b"\n")
            return json.loads(s.makefile("rb").readline())
    except (OSError, ValueError):
        return None


def start(reg: Registry) -> Running:
    """Start it unless it runs; wait until it answers. PlanError (with its log's last
    lines) when it does not come up."""
    project, log = reg.stack.project, log_file(reg.stack.project)
    pid = running(project)
    if pid is not None:
        return Running(pid, log, started=False)
    _rotate(log)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "stackctl.resident", str(reg.config_dir),
             "--pid-file", str(pid_file(project))],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, close_fds=True)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        answer = ask(reg.config_dir, {"op": "ping"}, timeout=1.0)
        if answer and answer.get("ok"):
            return Running(proc.pid, log, started=True)
        if proc.poll() is not None and running(project) is None:
            break
        time.sleep(0.1)
    stop(reg)
    raise PlanError(f"the scheduler did not start within {START_TIMEOUT:g}s; the last lines "
                    f"of {log}:\n{tail(log)}")


def ensure(reg: Registry) -> Running:
    """`up`: the scheduler runs on the registry as it is now (restarted if it read an
    older one)."""
    pid = running(reg.stack.project)
    if pid is not None:
        answer = ask(reg.config_dir, {"op": "ping"})
        if answer and answer.get("fingerprint") == fingerprint(reg.config_dir):
            return Running(pid, log_file(reg.stack.project), started=False)
        stop(reg)
    return start(reg)


LOG_KEEP = 5 << 20  # bytes: a longer log is moved to LOG.1 when the scheduler starts


def _rotate(log: Path) -> None:
    try:
        if log.stat().st_size > LOG_KEEP:
            log.replace(log.with_name(log.name + ".1"))
    except OSError:
        pass


def stop(reg: Registry, timeout: float = 15.0) -> bool:
    """Stop it (and its worker: one process group); True if one ran. Held requests go to
    the gateway's own rule (their fallback) when their connections close."""
    pid = running(reg.stack.project)
    stopped = False
    if pid is not None:
        _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while running(reg.stack.project) is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        if running(reg.stack.project) is not None:
            _signal(pid, signal.SIGKILL)
        stopped = True
    for path in (gateway_socket(reg.output_dir), control_socket(reg.config_dir)):
        path.unlink(missing_ok=True)
    return stopped


def _signal(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)  # its own session: the supervisor and the worker
    except (ProcessLookupError, PermissionError):
        pass


def tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "  (no log)"
    return "\n".join("  " + line for line in text.rstrip().splitlines()[-lines:])
