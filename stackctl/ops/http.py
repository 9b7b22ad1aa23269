"""A minimal HTTP client for the loopback endpoints stackctl probes (gateway, providers) and
for the Docker Engine API socket.

Plain HTTP/1.0 on a socket rather than requests or http.client: `status` and `switch` import
this on every run, and those cost 20–90 ms of imports (ssl, email, urllib3 …) for what these
calls never need: TLS, proxies, redirects, keep-alive. With HTTP/1.0 the server answers
with a plain body and closes the connection.
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


class HttpError(OSError):
    """No usable answer: refused, reset, timed out or malformed."""


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 400

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.body) if self.body.strip() else None


def request(method: str, url: str, timeout: float, headers: dict[str, str] | None = None,
            payload: Any = None) -> Reply:
    """One request to an http:// URL; raises HttpError when there is no answer."""
    parts = urlsplit(url)
    try:
        sock = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80),
                                        timeout=timeout)
    except OSError as exc:
        raise HttpError(str(exc)) from None
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return exchange(sock, method, path, parts.netloc, headers, payload)


def exchange(sock: socket.socket, method: str, path: str, host: str,
             headers: dict[str, str] | None = None, payload: Any = None) -> Reply:
    """Send one request on a connected socket, read the answer until the server closes."""
    body = b"" if payload is None else json.dumps(payload).encode()
    head = {"Host": host, **(headers or {})}
    if payload is not None:
        head.update({"Content-Type": "application/json", "Content-Length": str(len(body))})
    lines = [f"{method} {path} HTTP/1.0"] + [f"{k}: {v}" for k, v in head.items()]
    try:
        with sock:
            sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
            chunks = []
            while data := sock.recv(65536):
                chunks.append(data)
    except OSError as exc:
        raise HttpError(str(exc)) from None
    raw_head, sep, data = b"".join(chunks).partition(b"\r\n\r\n")
    status_line, *header_lines = raw_head.decode("latin-1").split("\r\n")
    try:
        status = int(status_line.split()[1])
    except (IndexError, ValueError):
        raise HttpError(f"not an HTTP answer: {status_line[:80]!r}") from None
    if not sep:
        raise HttpError("the answer ended inside its headers")
    fields = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
    if fields.get("transfer-encoding", "").lower() == "chunked":  # not for HTTP/1.0, but legal
        data = _dechunk(data)
    return Reply(status, fields, data)


def _dechunk(data: bytes) -> bytes:
    out, rest = [], data
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out.append(rest[:size])
        rest = rest[size + 2:]
    return b"".join(out)
