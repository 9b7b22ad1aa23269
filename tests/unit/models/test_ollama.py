"""`models pull` against a fake Ollama: a tiny http.server streaming /api/pull's NDJSON as
the real one does (status lines, per-layer digest/total/completed, then success; or an
{"error"} line mid-stream, or an error status)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from stackctl.cli import cli
from stackctl.models.ollama import Progress, PullError, events, pull

LAYER = "sha256:aaaa"
SMALL = "sha256:bbbb"


def stream(model: str) -> list[dict]:
    if model == "missing:1b":
        return [{"status": "pulling manifest"},
                {"error": "pull model manifest: file does not exist"}]
    return [{"status": "pulling manifest"},
            {"status": f"pulling {LAYER[7:]}", "digest": LAYER, "total": 4 * 2**20},
            {"status": f"pulling {LAYER[7:]}", "digest": LAYER, "total": 4 * 2**20,
             "completed": 2**20},
            {"status": f"pulling {SMALL[7:]}", "digest": SMALL, "total": 2**20,
             "completed": 2**20},
            {"status": f"pulling {LAYER[7:]}", "digest": LAYER, "total": 4 * 2**20,
             "completed": 4 * 2**20},
            {"status": "verifying sha256 digest"}, {"status": "writing manifest"},
            {"status": "success"}]


class FakeOllama(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # the body ends when the connection closes, as streamed
    requests: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeOllama.requests.append({"path": self.path, **body})
        if body.get("model") == "Bad Name":
            self.send_response(400)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"error":"invalid model name"}')
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.end_headers()
        for event in stream(body["model"]):
            self.wfile.write(json.dumps(event).encode() + b"\n")
            self.wfile.flush()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def ollama() -> Iterator[str]:
    FakeOllama.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeOllama)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_progress_folds_layers_into_one_line():
    p = Progress()
    lines = []
    for event in stream("qwen3:0.6b"):
        p.update(event)
        lines.append(p.line())
    assert lines[0] == "pulling manifest"
    assert lines[2] == "downloading 1 layer(s): 1.0 MiB / 4.0 MiB (25%)"
    assert lines[3] == "downloading 2 layer(s): 2.0 MiB / 5.0 MiB (40%)"
    assert lines[-3:] == ["verifying sha256 digest", "writing manifest", "success"]


def test_error_lines_and_garbage_are_errors():
    with pytest.raises(PullError, match="file does not exist"):
        list(events([b'{"status":"pulling manifest"}', b'{"error":"file does not exist"}']))
    with pytest.raises(PullError, match="not JSON"):
        list(events([b"<html>"]))


def test_pull_streams_from_the_api(ollama):
    seen = []
    progress = pull(ollama, "qwen3:0.6b", lambda p: seen.append(p.line()))
    assert progress.status == "success" and len(seen) == 8
    assert FakeOllama.requests == [{"path": "/api/pull", "model": "qwen3:0.6b", "stream": True}]
    with pytest.raises(PullError, match=rf"^Ollama at {ollama}: pull missing:1b: pull model "
                       "manifest: file does not exist$"):
        pull(ollama, "missing:1b", lambda p: None)
    with pytest.raises(PullError, match="HTTP 400: invalid model name"):
        pull(ollama, "Bad Name", lambda p: None)
    with pytest.raises(PullError, match="nothing answers there"):
        pull("http://127.0.0.1:9", "x", lambda p: None)


def point_at(cfg, url: str) -> None:
    text = (cfg / "providers.yaml").read_text()
    (cfg / "providers.yaml").write_text(text.replace("http://127.0.0.1:11434", url, 1))


def test_models_pull_command(runner, registry_dir, ollama):
    cfg = registry_dir("offline")
    point_at(cfg, ollama)
    r = runner.invoke(cli, ["models", "pull", "qwen3:0.6b", "-C", str(cfg)],
                      catch_exceptions=False)
    assert r.exit_code == 0, r.output
    # not a terminal: each status once, the download at each new 10 %
    assert r.output.splitlines()[1:] == [
        "pulling manifest", "downloading 1 layer(s): 0 B / 4.0 MiB (0%)",
        "downloading 1 layer(s): 1.0 MiB / 4.0 MiB (25%)",
        "downloading 2 layer(s): 2.0 MiB / 5.0 MiB (40%)",
        "downloading 2 layer(s): 5.0 MiB / 5.0 MiB (100%)", "verifying sha256 digest",
        "writing manifest", "success", "pulled qwen3:0.6b into ollama",
        "next: `stackctl add model qwen3:0.6b --provider ollama` routes it through the gateway"]
    r = runner.invoke(cli, ["models", "pull", "missing:1b", "-C", str(cfg)],
                      catch_exceptions=False)
    assert r.exit_code == 1
    assert f"Error: Ollama at {ollama}: pull missing:1b: pull model manifest: file does not " \
           "exist" in r.output and "Traceback" not in r.output


def test_models_pull_on_a_terminal_rewrites_one_line(runner, registry_dir, ollama,
                                                      monkeypatch):
    cfg = registry_dir("offline")
    point_at(cfg, ollama)
    monkeypatch.setattr("stackctl.cli.models._terminal", lambda: True)
    r = runner.invoke(cli, ["models", "pull", "qwen3:0.6b", "-C", str(cfg)],
                      catch_exceptions=False)
    assert r.exit_code == 0, r.output
    second = r.output.split("\n")[1]  # (splitlines would split at each \\r)
    assert second.startswith("\rpulling manifest\x1b[K\rdownloading 1 layer(s)")
    assert second.endswith("\rsuccess\x1b[K")


def test_models_pull_names_the_provider_to_start_or_choose(runner, registry_dir):
    cfg = registry_dir("offline")
    point_at(cfg, "http://127.0.0.1:9")
    r = runner.invoke(cli, ["models", "pull", "x", "-C", str(cfg)], catch_exceptions=False)
    assert r.exit_code == 1 and "nothing answers there (is it running? `stackctl up -p " \
                                "ollama`" in r.output
    r = runner.invoke(cli, ["models", "pull", "x", "-p", "llama_cpp", "-C", str(cfg)],
                      catch_exceptions=False)
    assert r.exit_code == 1 and "a llama_cpp provider, not Ollama" in r.output
