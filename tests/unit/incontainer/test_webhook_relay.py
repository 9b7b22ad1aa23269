"""Alertmanager 0.25's webhook relay (stackctl/incontainer/webhook_relay.py), on the host's
python3: it forwards each POST to the URL in its secret file and answers with the upstream
status, checks the URLs before it listens, and never prints one. The same file runs in the
local Alertmanager image in tests/contract/test_alertmanager.py."""

from __future__ import annotations

import ast
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from stackctl.incontainer import HERE, webhook_relay

RELAY = HERE / "webhook_relay.py"
TOKEN = "T0-B0-should-not-appear"


class Receiver:
    """A webhook receiver on 127.0.0.1: records each POST, answers `status`."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict[str, str], bytes]] = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.posts.append((self.path, dict(self.headers), body))
                self.send_response(receiver.status)
                if receiver.status in (301, 302, 307, 308):
                    self.send_header("Location", f"http://127.0.0.1:{self.server.server_port}/")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/services/{TOKEN}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


def serve(urls: dict[str, str]) -> tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), webhook_relay.handler(urls))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}"


def post(url: str, body: bytes = b'{"status":"firing"}') -> int:
    req = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json", "User-Agent": "Alertmanager/0.25.0"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_a_post_is_forwarded_as_sent(receiver, capsys):
    server, relay = serve({"ALERT_WEBHOOK_URL": receiver.url})
    try:
        assert post(f"{relay}/ALERT_WEBHOOK_URL", b'{"alerts":[1]}') == 200
    finally:
        server.shutdown()
    ((path, headers, body),) = receiver.posts
    assert path == f"/services/{TOKEN}" and body == b'{"alerts":[1]}'
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"] == "Alertmanager/0.25.0"
    assert capsys.readouterr().err == ""  # no line per request


@pytest.mark.parametrize("status, answered, logged", [
    (500, 500, "HTTP 500"),  # Alertmanager retries a 5xx
    (404, 404, "HTTP 404"),
    (302, 302, "HTTP 302"),  # not followed: the receiver's answer
])
def test_the_upstream_status_is_the_answer(receiver, capsys, status, answered, logged):
    receiver.status = status
    server, relay = serve({"ALERT_WEBHOOK_URL": receiver.url})
    try:
        assert post(f"{relay}/ALERT_WEBHOOK_URL") == answered
    finally:
        server.shutdown()
    assert len(receiver.posts) == 1  # a redirect is not followed
    err = capsys.readouterr().err
    assert err == f"webhook relay: 'ALERT_WEBHOOK_URL': {logged}\n"


def test_an_unreachable_receiver_is_a_502_and_its_url_is_not_logged(capsys):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server, relay = serve({"ALERT_WEBHOOK_URL": f"http://127.0.0.1:{port}/{TOKEN}",
                           "CHAT": f"http://{TOKEN}.invalid/x"})
    try:
        assert post(f"{relay}/ALERT_WEBHOOK_URL") == 502
        assert post(f"{relay}/CHAT") == 502
        assert post(f"{relay}/OTHER") == 404
    finally:
        server.shutdown()
    err = capsys.readouterr().err
    assert "ConnectionRefusedError (Connection refused)" in err
    assert "'OTHER': no such receiver" in err
    assert TOKEN not in err and str(port) not in err


@pytest.mark.parametrize("value, message", [
    (None, "ALERT_WEBHOOK_URL: its secret file cannot be read (FileNotFoundError)"),
    ("", "ALERT_WEBHOOK_URL must hold the webhook URL (http:// or https://)"),
    (f"hooks.example.com/{TOKEN}", "must hold the webhook URL"),
    ("https://", "must hold the webhook URL"),
    (f"https://x/{TOKEN} y", "must not contain blanks or control characters"),
    (f"https://x/{TOKEN}\ty", "must not contain blanks"),
])
def test_a_bad_url_is_refused_naming_the_variable_only(tmp_path, value, message):
    if value is not None:
        (tmp_path / "ALERT_WEBHOOK_URL").write_text(value)
    with pytest.raises(ValueError) as exc:
        webhook_relay.read_urls(str(tmp_path), ["ALERT_WEBHOOK_URL"])
    assert message in str(exc.value) and TOKEN not in str(exc.value)


def test_a_trailing_newline_is_not_part_of_the_url(tmp_path):
    (tmp_path / "A").write_text("https://hooks.example.com/x\n")
    assert webhook_relay.read_urls(str(tmp_path), ["A"]) == {"A": "https://hooks.example.com/x"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_script_returns_once_it_listens_and_keeps_serving(tmp_path, receiver):
    """As the start script runs it: the parent exits 0 with the relay already listening;
    the relay (its child) serves on until killed."""
    (tmp_path / "ALERT_WEBHOOK_URL").write_text(receiver.url + "\n")
    port = _free_port()
    log = tmp_path / "log"
    with log.open("w") as out:  # not a pipe: the child would hold it open
        p = subprocess.Popen([sys.executable, str(RELAY), str(port), str(tmp_path),
                              "ALERT_WEBHOOK_URL"], stdout=out, stderr=out,
                             start_new_session=True)  # its own group: the test kills the child
    try:
        assert p.wait(timeout=30) == 0, log.read_text()
        assert post(f"http://127.0.0.1:{port}/ALERT_WEBHOOK_URL") == 200  # no wait needed
        assert len(receiver.posts) == 1
    finally:
        os.killpg(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the child is gone: the port is free again
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        except OSError:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the relay still listens after SIGTERM")


def test_the_script_fails_before_listening_on_a_bad_url(tmp_path):
    (tmp_path / "A").write_text("https://ok.example.com/1")
    (tmp_path / "B").write_text(f"not a url {TOKEN}")
    p = subprocess.run([sys.executable, str(RELAY), str(_free_port()), str(tmp_path), "A", "B"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 1
    assert p.stderr == "webhook relay: B must hold the webhook URL (http:// or https://)\n"
    usage = subprocess.run([sys.executable, str(RELAY), "x"], capture_output=True, text=True,
                           timeout=30)
    assert usage.returncode == 2 and usage.stderr.startswith("usage: ")


def test_the_relay_imports_only_the_standard_library():
    tree = ast.parse(RELAY.read_text(encoding="utf-8"))
    names = {alias.name.split(".")[0] for node in ast.walk(tree)
             if isinstance(node, ast.Import) for alias in node.names}
    names |= {node.module.split(".")[0] for node in ast.walk(tree)
              if isinstance(node, ast.ImportFrom) and node.module}
    assert names <= sys.stdlib_module_names | {"__future__"}, names
