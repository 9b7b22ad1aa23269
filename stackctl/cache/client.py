"""Connecting to the cache's Redis, and redis-py's errors as CacheError saying what to do."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from stackctl.cache.target import CacheError, CacheTarget


def connect(target: CacheTarget, password: str, timeout: float = 3.0) -> Any:
    """A redis-py client that answered an authenticated PING; CacheError otherwise. One
    retry without backoff (redis-py's default backs off for seconds on a refused port)."""
    client = redis.Redis(host=target.host, port=target.port, password=password,
                         socket_timeout=timeout, socket_connect_timeout=timeout,
                         retry=Retry(NoBackoff(), 1))
    with redis_errors(target):
        client.ping()
    return client


@contextmanager
def redis_errors(target: CacheTarget) -> Iterator[None]:
    """redis-py's errors as CacheError, saying what to do."""
    try:
        yield
    except redis.AuthenticationError:  # WRONGPASS, or a password where none is set
        raise CacheError(
            f"Redis on {target.address} refused the password in {target.password_env} "
            f"({target.password_from or target.env_file}): the running cache was started "
            "with another one. Restart the stack so both agree: `stackctl down` then "
            "`stackctl up`") from None
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise CacheError(
            f"no Redis answers on {target.address} (service {target.service!r} of stack "
            f"{target.project!r}): start the stack with `stackctl up` "
            f"({str(exc).rstrip('.') or type(exc).__name__})") from None
    except redis.RedisError as exc:  # e.g. a port where something else than Redis answers
        raise CacheError(f"Redis on {target.address}: {exc or type(exc).__name__}") from None
