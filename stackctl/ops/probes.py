"""Healthchecks run from the host against published ports.

Docker runs a container's healthcheck once per interval; these send the same request as
soon as the container runs, so `up` and `switch` see readiness without waiting for the
next interval. Docker's view still decides failure (exited, unhealthy).
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import TYPE_CHECKING

from .http import HttpError, request

if TYPE_CHECKING:  # the registry is only needed by host_probe, not by http_ok (switch)
    from ..registry.load import Registry

Probe = Callable[[str], bool]


def http_ok(url: str, expect: str | None = None, timeout: float = 1.0) -> bool:
    try:
        r = request("GET", url, timeout)
    except HttpError:
        return False
    return r.ok and (expect is None or expect in r.text)


def redis_ping(port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def host_probe(reg: Registry) -> Probe:
    """One probe for every service with a published port; False for the others."""
    from ..render.compose import CACHE, GATEWAY
    from ..render.litellm import served_backend
    from ..render.probes import host_check

    checks: dict[str, Callable[[], bool]] = {}
    gw_port = reg.stack.gateway.host_port
    checks[GATEWAY] = lambda: http_ok(f"http://127.0.0.1:{gw_port}/health/liveliness")
    if reg.stack.cache.enabled and (cache_port := reg.stack.cache.host_port):
        checks[CACHE] = lambda: redis_ping(cache_port)
    for name, prov in reg.providers.providers.items():
        if prov.enabled and prov.container and prov.host_port:
            url, expect = host_check(prov, served_backend(reg, name))
            checks[name] = lambda url=url, expect=expect: http_ok(url, expect)

    def probe(service: str) -> bool:
        check = checks.get(service)
        return bool(check and check())
    return probe
