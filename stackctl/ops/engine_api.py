"""The Docker Engine API over its unix socket, for the container verbs on hot paths.

Each `docker` CLI call costs ~17 ms of process start-up and version negotiation; the same
request on the socket takes ~1 ms. `switch` and `status` make a handful of them on their
critical path, so they talk to the engine directly. Compose operations stay on the CLI.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .http import exchange


class EngineUnreachable(Exception):
    pass


class EngineRefused(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def socket_path() -> str:
    """The engine socket the docker CLI would use: DOCKER_HOST, else the current context."""
    host = os.environ.get("DOCKER_HOST") or _context_host()
    if not host:
        return "/var/run/docker.sock"
    if not host.startswith("unix://"):
        raise EngineUnreachable(f"stackctl drives a local engine over its unix socket; "
                                f"{host} is not one (set DOCKER_HOST=unix:///path/docker.sock)")
    return host.removeprefix("unix://")


def _context_host() -> str | None:
    config = Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker")
    name = os.environ.get("DOCKER_CONTEXT")
    if not name:
        try:
            name = json.loads((config / "config.json").read_text()).get("currentContext")
        except (OSError, ValueError):
            return None
    if not name or name == "default":
        return None
    import hashlib

    meta = config / "contexts" / "meta" / hashlib.sha256(name.encode()).hexdigest() / "meta.json"
    try:
        return json.loads(meta.read_text())["Endpoints"]["docker"]["Host"]
    except (OSError, ValueError, KeyError):
        return None


def call(method: str, path: str, timeout: float = 30, **query: Any) -> Any:
    """One API request; the decoded JSON answer (None when empty)."""
    if query:
        path += "?" + "&".join(f"{k}={quote(str(v))}" for k, v in query.items())
    where = socket_path()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(where)
        reply = exchange(sock, method, path, "docker")
    except OSError as exc:
        sock.close()
        raise EngineUnreachable(f"cannot reach the Docker engine at {where}: {exc} "
                                "(is it running? scripts/ensure-docker.sh starts one)") from None
    try:
        data = reply.json()
    except ValueError:
        data = None
    if reply.status >= 400:
        message = data.get("message") if isinstance(data, dict) else None
        raise EngineRefused(reply.status, message or f"HTTP {reply.status}")
    return data
