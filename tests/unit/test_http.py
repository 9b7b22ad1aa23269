"""The plain-socket HTTP client (probes, the gateway, the Engine API socket) and the Docker
adapter's use of the Engine API."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from stackctl.ops import engine_api
from stackctl.ops.http import HttpError, request


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        code = 503 if self.path == "/loading" else 200
        body = json.dumps({"path": self.path, "auth": self.headers.get("Authorization")})
        self.send_response(code)
        self.send_header("X-Litellm-Model-Id", "m@p")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def do_POST(self):  # noqa: N802
        sent = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        body = json.dumps({"echo": sent}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def test_get_with_headers_status_and_json(server):
    r = request("GET", f"{server}/v1/models?x=1", 2, {"Authorization": "Bearer k"})
    assert r.ok and r.json() == {"path": "/v1/models?x=1", "auth": "Bearer k"}
    assert r.headers["x-litellm-model-id"] == "m@p"
    loading = request("GET", f"{server}/loading", 2)
    assert loading.status == 503 and not loading.ok


def test_post_sends_json(server):
    assert request("POST", f"{server}/v1/chat", 2, payload={"a": [1]}).json() == {"echo": {"a": [1]}}


def test_refused_is_an_http_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nobody listens once closed
    with pytest.raises(HttpError):
        request("GET", f"http://127.0.0.1:{port}/", 1)


def test_chunked_answer_is_decoded():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)

    def answer():
        conn, _ = srv.accept()
        conn.recv(4096)
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"4\r\n{\"a\"\r\n3\r\n: 1\r\n1\r\n}\r\n0\r\n\r\n")
        conn.close()
    threading.Thread(target=answer, daemon=True).start()
    assert request("GET", f"http://127.0.0.1:{srv.getsockname()[1]}/", 2).json() == {"a": 1}
    srv.close()


def test_engine_socket_follows_docker_host_and_context(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    monkeypatch.delenv("DOCKER_CONTEXT", raising=False)
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    assert engine_api.socket_path() == "/var/run/docker.sock"
    meta = tmp_path / "contexts/meta" / hashlib.sha256(b"rootless").hexdigest()
    meta.mkdir(parents=True)
    (meta / "meta.json").write_text(json.dumps(
        {"Endpoints": {"docker": {"Host": "unix:///run/user/1000/docker.sock"}}}))
    (tmp_path / "config.json").write_text(json.dumps({"currentContext": "rootless"}))
    assert engine_api.socket_path() == "/run/user/1000/docker.sock"
    monkeypatch.setenv("DOCKER_HOST", "unix:///tmp/d.sock")
    assert engine_api.socket_path() == "/tmp/d.sock"
    monkeypatch.setenv("DOCKER_HOST", "tcp://10.0.0.1:2375")
    with pytest.raises(engine_api.EngineUnreachable, match="not one"):
        engine_api.socket_path()


def test_no_engine_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/absent.sock")
    with pytest.raises(engine_api.EngineUnreachable, match="cannot reach the Docker engine at "
                       ".*absent.sock.*ensure-docker.sh"):
        engine_api.call("GET", "/containers/json")


def test_create_asks_compose_only_when_its_input_or_image_changed(tmp_path, monkeypatch):
    from stackctl.docker.adapter import Docker

    monkeypatch.setenv("STACKCTL_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("DELAY", raising=False)
    compose, env = tmp_path / "compose.yaml", tmp_path / ".env"
    compose.write_text("services: {m: {image: stub:1, environment: {D: '${DELAY:-3}'}}}\n")
    env.write_text("K=1\n")
    docker = Docker(compose, "p", env)
    engine = {"container": "c0", "runs": "img1", "tag": "img1"}
    created = []

    def api(method, path, timeout=30, **query):
        if path == "/containers/json":
            return [{"Id": engine["container"], "Names": ["/p-m-1"]}]
        if path.startswith("/containers/"):
            return {"Config": {"Image": "stub:1"}, "Image": engine["runs"]}
        return {"Id": engine["tag"]}  # /images/stub:1/json

    def compose_create(profiles, *args):  # Compose recreates the container
        created.append(args)
        engine.update(container=f"c{len(created)}", runs=engine["tag"])

    monkeypatch.setattr(docker, "_api", api)
    monkeypatch.setattr(docker, "_compose", compose_create)
    assert docker.create_service(["m"], "m") == "p-m-1"
    assert len(created) == 1  # a container this adapter did not create: Compose decides
    assert docker.create_service(["m"], "m") == "p-m-1"
    assert len(created) == 1  # same input, same container: skipped
    env.write_text("K=2\n")
    docker.create_service(["m"], "m")
    assert len(created) == 2  # .env changed
    monkeypatch.setenv("DELAY", "9")
    docker.create_service(["m"], "m")
    assert len(created) == 3  # a variable the compose file interpolates changed
    engine["tag"] = "img2"
    docker.create_service(["m"], "m")
    assert len(created) == 4  # the image was rebuilt under the same tag
    engine["container"] = "by-up"
    docker.create_service(["m"], "m")
    assert len(created) == 5  # someone else recreated the container
    compose.write_text(compose.read_text() + "# changed\n")
    docker.create_service(["m"], "m")
    docker.create_service(["m"], "m")
    assert len(created) == 6  # the compose file changed, once
