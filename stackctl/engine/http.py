"""A minimal HTTP client for the loopback endpoints stackctl probes (gateway, providers).

Plain http.client rather than requests: `status` and `switch` import this on every run,
and requests (with urllib3, charset_normalizer…) costs ~90 ms of import; these calls need
none of what it adds (no TLS, no proxies, no redirects, no sessions).
"""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

HttpError = (OSError, http.client.HTTPException)  # refused, reset, timed out, malformed


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
        return json.loads(self.body) if self.body else {}


def request(method: str, url: str, timeout: float, headers: dict[str, str] | None = None,
            payload: Any = None) -> Reply:
    """One request on a fresh connection; raises one of HttpError when there is no answer."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80,
                                      timeout=timeout)
    try:
        body = None if payload is None else json.dumps(payload).encode()
        head = dict(headers or {})
        if body is not None:
            head["Content-Type"] = "application/json"
        conn.request(method, parts.path + (f"?{parts.query}" if parts.query else ""),
                     body=body, headers=head)
        resp = conn.getresponse()
        return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()
