"""`stackctl switch` through a running scheduler: the standard library only, so that the
command reaches it without loading the registry (the scheduler has it loaded, and the
engine's and the gateway's clients warm). None when no scheduler answers: the command then
switches by itself, as it did before there was one."""

from __future__ import annotations

import hashlib
import json
import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from stackctl.store.lock import state_dir


def control_socket(config_dir: Path) -> Path:
    """Named after the config folder: found without reading the registry."""
    digest = hashlib.sha256(str(config_dir.resolve()).encode()).hexdigest()[:16]
    return state_dir() / f"scheduler-{digest}.sock"


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


def connect(path: Path, timeout: float | None) -> socket.socket | None:
    """A connection to the socket at `path`; None when nothing listens."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        with short(path) as where:
            s.connect(where)
        return s
    except OSError:
        s.close()
        return None


def command(config_dir: Path, message: dict, say: Callable[[str], None]) -> dict | None:
    """One command for the scheduler of `config_dir`: its answer (`ok`, then the result or
    `error` and `restored`), its progress lines passed to `say`; None when none runs."""
    path = control_socket(config_dir)
    if not path.exists():
        return None
    s = connect(path, 2.0)
    if s is None:
        return None
    with s:
        try:
            s.sendall(json.dumps(message).encode() + b"\n")
            s.settimeout(None)  # a change takes as long as its timeouts allow
            reader = s.makefile("rb")
            for line in reader:
                doc = json.loads(line)
                if "say" in doc:
                    say(str(doc["say"]))
                    continue
                return doc
        except (OSError, ValueError):
            pass
    return {"ok": False, "restored": False,
            "error": "the scheduler stopped answering during the change; `stackctl status` "
                     "shows the group"}


def switch(config_dir: Path, member: str, timeout: float, lock_wait: float | None,
           say: Callable[[str], None]) -> dict | None:
    """`stackctl switch` by the scheduler; None when none runs for this config folder."""
    return command(config_dir, {"op": "switch", "member": member, "timeout": timeout,
                                "lock_wait": lock_wait}, say)
