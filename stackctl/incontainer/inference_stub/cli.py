"""Entry points: serve (until SIGTERM / SIGINT, then drain), the Docker healthcheck, main."""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import urllib.error
import urllib.request

from . import __doc__ as USAGE
from .handler import LIVENESS_PATH, StubHandler
from .log import log, set_instance_name
from .runtime import Runtime
from .server import StubHTTPServer
from .settings import ConfigError, Settings, _env_number


def healthcheck(env):
    """Probe the local server; 0 if it answers 200, else 1 (Docker HEALTHCHECK)."""
    try:
        flavor = env.get("STUB_FLAVOR", "vllm").strip().lower() or "vllm"
        port = _env_number(env, "STUB_PORT", 8000, lo=1, hi=65535, integer=True)
    except ConfigError as exc:
        print(f"unhealthy: {exc}")
        return 1
    url = f"http://127.0.0.1:{port}{LIVENESS_PATH.get(flavor, '/health')}"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
    try:
        with opener.open(url, timeout=3) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (OSError, ValueError) as exc:
        print(f"unhealthy: {url}: {exc}")
        return 1
    print(f"{'healthy' if status == 200 else 'unhealthy'}: {url} -> {status}")
    return 0 if status == 200 else 1


def serve(settings):
    set_instance_name(settings.name)
    runtime = Runtime(settings)
    problem = runtime.gpu.start()  # vLLM's memory check comes before the port is served
    if problem:
        sys.stderr.write("".join(f"{line}\n" for line in problem))
        sys.stderr.flush()
        return 1
    stop = threading.Event()
    received = []

    def on_signal(signum, _frame):
        if stop.is_set():
            log(f"{signal.Signals(signum).name} again: exiting without waiting")
            os._exit(1)
        received.append(signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    try:
        server = StubHTTPServer((settings.host, settings.port), runtime, StubHandler)
    except OSError as exc:
        log(f"cannot listen on {settings.host}:{settings.port}: {exc}")
        return 1
    port = server.server_address[1]
    log(
        f"listening on {settings.host}:{port} flavor={settings.flavor} "
        f"models={','.join(settings.models)} (stub inference server, not a real model)"
    )
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="http-accept", daemon=True
    )
    thread.start()
    runtime.begin_loading()

    while not stop.wait(0.5):
        pass

    server.draining = True
    busy = server.in_flight()
    log(
        f"{received[0] if received else 'signal'} received: not accepting new connections; "
        f"waiting for {busy} in-flight request(s) (up to {settings.shutdown_grace:g}s)"
    )
    try:  # wakes the accept loop now rather than at its next poll
        server.socket.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    server.shutdown()
    server.server_close()
    runtime.cancel_loading()
    if server.wait_idle(settings.shutdown_grace):
        log("shutdown complete")
        return 0
    log(f"shutdown grace expired with {server.in_flight()} request(s) in flight; exiting")
    sys.stderr.flush()
    os._exit(0)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv in (["-h"], ["--help"]):
        print(USAGE)
        return 0
    if argv == ["--healthcheck"]:
        return healthcheck(os.environ)
    try:
        settings = Settings(os.environ, argv)
    except ConfigError as exc:
        log(f"configuration error: {exc}")
        return 2
    return serve(settings)
