"""Alertmanager 0.25's webhook relay (stdlib only; runs in the Alertmanager container).

Alertmanager 0.25 (Debian bookworm's, the local image) has no `url_file` and prints every
webhook URL on its status API (GET /api/v2/status) and in its failed-notification log lines;
a webhook URL is a credential. So that Alertmanager never knows the URLs, its config names
`http://127.0.0.1:PORT/<VARIABLE>` and this relay, started first in the same container,
forwards each POST to the URL in the secret file `<secrets>/<VARIABLE>`, answering with the
upstream status (a failure to connect: 502, which Alertmanager retries).

    python3 webhook_relay.py PORT SECRETS_DIR VARIABLE...

It checks every URL, binds 127.0.0.1:PORT, then forks: the parent exits 0 once the relay
listens (1 with a message naming the variable, never its value, when a URL is unusable), so
the start script can `exec` Alertmanager next. Its own lines name variables, never URLs.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TIMEOUT = 30  # seconds for the upstream answer (Alertmanager 0.25 waits as long)
FORWARDED = ("Content-Type", "User-Agent")


def read_urls(secrets: str, names: list[str]) -> dict[str, str]:
    """Variable → URL, each from its secret file; ValueError naming the variable (only)."""
    urls = {}
    for name in names:
        try:
            with open(os.path.join(secrets, name), encoding="utf-8") as fh:
                url = fh.read().strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"{name}: its secret file cannot be read "
                             f"({type(exc).__name__})") from None
        if not url.startswith(("http://", "https://")) or len(url.split("//", 1)[1]) == 0:
            raise ValueError(f"{name} must hold the webhook URL (http:// or https://)")
        if any(c.isspace() or ord(c) < 32 for c in url):
            raise ValueError(f"{name}: the webhook URL must not contain blanks or control "
                             "characters")
        urls[name] = url
    return urls


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is the receiver's answer, not a place to send the alert (and its URL)."""

    def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return None


def forward(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    """POST `body` to `url`: (status, a short reason for the log, "" on success)."""
    opener = urllib.request.build_opener(_NoRedirect)
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with opener.open(req, timeout=TIMEOUT) as resp:
            resp.read()
            return resp.status, ""
    except urllib.error.HTTPError as exc:
        return exc.code, f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        # the class and errno text only: an exception's message may quote the URL
        reason = getattr(exc, "reason", exc)
        detail = getattr(reason, "strerror", None)
        return 502, type(reason).__name__ + (f" ({detail})" if detail else "")


def handler(urls: dict[str, str]) -> type[BaseHTTPRequestHandler]:
    class Relay(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            name = self.path.strip("/")
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if name not in urls:
                status, reason = 404, "no such receiver"
            else:
                headers = {h: self.headers[h] for h in FORWARDED if self.headers.get(h)}
                status, reason = forward(urls[name], body, headers)
            if reason:
                print(f"webhook relay: {name[:64]!r}: {reason}", file=sys.stderr, flush=True)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass  # one line per failure (above), none per request

    return Relay


def main(argv: list[str]) -> int:
    if len(argv) < 3 or not argv[0].isdigit():
        print("usage: webhook_relay.py PORT SECRETS_DIR VARIABLE...", file=sys.stderr)
        return 2
    try:
        urls = read_urls(argv[1], argv[2:])
    except ValueError as exc:
        print(f"webhook relay: {exc}", file=sys.stderr)
        return 1
    server = ThreadingHTTPServer(("127.0.0.1", int(argv[0])), handler(urls))
    server.daemon_threads = True
    if os.fork():
        return 0  # listening: the start script goes on to Alertmanager
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
