"""The Docker Engine API over its unix socket, for the container verbs on hot paths.

Each `docker` CLI call costs ~17 ms of process start-up and version negotiation; the same
request on the socket takes ~1 ms. `switch` and `status` make a handful of them on their
critical path, so they talk to the engine directly. Compose operations stay on the CLI.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import socket
from pathlib import Path
from typing import Any
from urllib.parse import quote


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
    meta = config / "contexts" / "meta" / hashlib.sha256(name.encode()).hexdigest() / "meta.json"
    try:
        return json.loads(meta.read_text())["Endpoints"]["docker"]["Host"]
    except (OSError, ValueError, KeyError):
        return None


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def call(method: str, path: str, timeout: float = 30, **query: Any) -> Any:
    """One API request; the decoded JSON answer (None when empty)."""
    if query:
        path += "?" + "&".join(f"{k}={quote(str(v))}" for k, v in query.items())
    sock = socket_path()
    conn = _UnixConnection(sock, timeout)
    try:
        conn.request(method, path)
        resp = conn.getresponse()
        body = resp.read()
    except OSError as exc:
        raise EngineUnreachable(f"cannot reach the Docker engine at {sock}: {exc} "
                                "(is it running? scripts/ensure-docker.sh starts one)") from None
    finally:
        conn.close()
    data = json.loads(body) if body.strip() else None
    if resp.status >= 400:
        raise EngineRefused(resp.status, (data or {}).get("message") or f"HTTP {resp.status}")
    return data
