"""Healthchecks run from the host against published ports.

Docker runs a container's healthcheck once per interval; these send the same request as
soon as the container runs, so `up` and `switch` see readiness without waiting for the
next interval. Docker's view still decides failure (exited, unhealthy).
"""

from __future__ import annotations

from collections.abc import Callable

import requests

from stackctl.registry.load import Registry
from stackctl.registry.vocabulary import CACHE, GATEWAY
from stackctl.render.litellm import served_backend
from stackctl.render.probes import host_check
from stackctl.store.envfile import EnvFileError, compose_value

Probe = Callable[[str], bool]


def http_ok(url: str, expect: str | None = None, timeout: float = 1.0) -> bool:
    try:
        r = requests.get(url, timeout=timeout)
    except requests.RequestException:
        return False
    return r.ok and (expect is None or expect in r.text)


def redis_ping(port: int, password: str | None = None, timeout: float = 1.0) -> bool:
    """PONG to an authenticated PING. Without a password to send, a server that wants AUTH
    counts as up (it answered NOAUTH); with one, a refused password is a failure."""
    import redis  # here: `up` and `status` import this module; redis costs ~150 ms (measured)

    client = redis.Redis(host="127.0.0.1", port=port, password=password or None,
                         socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        return bool(client.ping())
    except redis.AuthenticationError:
        return not password
    except redis.RedisError:
        return False
    finally:
        client.close()


def cache_password(reg: Registry) -> str | None:
    """The Redis password Compose hands the cache (host environment, then the stack's .env)."""
    try:
        return compose_value(reg.env_file, reg.stack.cache.password_env) or None
    except (EnvFileError, OSError):
        return None


def checks(reg: Registry) -> dict[str, Callable[[], bool]]:
    """service → its readiness check from the host, for every service with a published port."""
    out: dict[str, Callable[[], bool]] = {}
    gw_port = reg.stack.gateway.host_port
    out[GATEWAY] = lambda: http_ok(f"http://127.0.0.1:{gw_port}/health/liveliness")
    if reg.stack.cache.enabled and (cache_port := reg.stack.cache.host_port):
        out[CACHE] = lambda: redis_ping(cache_port, cache_password(reg))
    for name, prov in reg.providers.providers.items():
        if prov.enabled and prov.container and prov.host_port:
            url, expect = host_check(prov, served_backend(reg, name))
            out[name] = lambda url=url, expect=expect: http_ok(url, expect)
    return out


def host_probe(reg: Registry) -> Probe:
    """One probe for every service with a published port; False for the others."""
    known = checks(reg)

    def probe(service: str) -> bool:
        check = known.get(service)
        return bool(check and check())
    return probe
