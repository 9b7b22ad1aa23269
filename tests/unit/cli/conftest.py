"""Fixtures for the CLI tests.

    machine         what `stackctl init` may detect, emptied: HOME, HF_HOME and PATH point
                    into tmp_path, OLLAMA_HOST at a port nothing listens on
    fake_nvidia_smi an `nvidia-smi` script on that PATH printing one 24 GiB GPU
    fake_ollama     a tiny HTTP server on a free 127.0.0.1 port answering /api/tags with two
                    models; OLLAMA_HOST points at it
    offline         a copy of the offline example with its generated files, switching by
                    restart; cwd is its tmp root
    fake            the fake Docker adapter every command gets, the offline stack's gateway,
                    cache and vllm-qwen running
"""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

from stackctl.cli import cli
from tests.fakes.docker import FakeDocker


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home, bin_dir = tmp_path / "home", tmp_path / "bin"
    home.mkdir()
    bin_dir.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("HF_HOME", str(home / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{_free_port()}")
    for var in ("STACKCTL_CONFIG_DIR",):
        monkeypatch.delenv(var, raising=False)
    return home


@pytest.fixture
def fake_nvidia_smi(machine: Path, tmp_path: Path) -> Path:
    script = tmp_path / "bin" / "nvidia-smi"
    script.write_text("#!/bin/sh\n# the query `stackctl init` sends: name, memory.total (MiB)\n"
                      "echo 'NVIDIA GeForce RTX 4090, 24564'\n")
    script.chmod(0o755)
    return script


class _Tags(BaseHTTPRequestHandler):
    body = json.dumps({"models": [{"name": "llama3.2:3b"}, {"name": "qwen2.5-coder:7b"}]}).encode()

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        if self.path != "/api/tags":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args) -> None:  # quiet
        pass


@pytest.fixture
def fake_ollama(machine: Path, monkeypatch: pytest.MonkeyPatch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Tags)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.server_address[1]
    monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{port}")
    yield port
    server.shutdown()
    server.server_close()


@pytest.fixture
def offline(registry_dir) -> Path:  # type: ignore[no-untyped-def]
    """Its GPU group switches by restart, which the CLI tests script through the fake Docker
    (sleep mode, which also asks the engines: tests/unit/switching/test_sleep_switch.py)."""
    cfg = registry_dir("offline", with_output=True)
    stack = cfg / "stack.yaml"
    stack.write_text(stack.read_text().replace("switch: sleep", "switch: restart"))
    r = CliRunner().invoke(cli, ["generate", "-C", str(cfg)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return cfg


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeDocker:
    """Constructed where the real adapter would be."""
    docker = FakeDocker(project="stackctl-offline", running={
        "litellm": {}, "redis": {}, "vllm-qwen": {"org.stackctl.gpu-group": "gpu0"}})
    monkeypatch.setattr("stackctl.docker.adapter.Docker", lambda *a, **k: docker)
    return docker
