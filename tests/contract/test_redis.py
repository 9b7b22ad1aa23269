"""Contract of stackctl-local/redis:7, the gateway's response cache, with AUTH.

The container runs the way the generated compose file runs it (`redis-server --save ''
--appendonly no --protected-mode no`) plus `--requirepass`, and the assertions use redis-py
like LiteLLM's cache does: PING is refused (NOAUTH) without the password and with a wrong
one, answers with the right one, and keys with a TTL behave as the cache needs.

Point it at a real server with STACKCTL_CONTRACT_REDIS_URL=redis://:PASSWORD@host:port/0;
a URL without a password skips the two "refused without the password" checks.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests import tc
from tests.contract import external

pytestmark = pytest.mark.integration

PASSWORD = f"contract-{secrets.token_hex(8)}"


@pytest.fixture(scope="module")
def redis_url(containers: Any) -> str:
    url = external("REDIS")
    if url:
        return url

    from testcontainers.core.container import DockerContainer
    from testcontainers.core.wait_strategies import LogMessageWaitStrategy

    server = (DockerContainer(tc.REDIS_IMAGE)
              .with_command(["redis-server", "--save", "", "--appendonly", "no",
                             "--protected-mode", "no", "--requirepass", PASSWORD])
              .waiting_for(LogMessageWaitStrategy("Ready to accept connections")
                           .with_startup_timeout(60).with_poll_interval(0.2)))
    tc.publish_on_loopback(server, 6379)
    containers.start(server)
    port = server.get_exposed_port(6379)
    return f"redis://:{PASSWORD}@{tc.LOOPBACK}:{port}/0"


def _client(url: str, password: str | None) -> Any:
    parts = urlsplit(url)
    db = int(parts.path.strip("/") or 0)
    return redis.Redis(host=parts.hostname, port=parts.port or 6379, db=db, password=password,
                       username=parts.username or None, socket_timeout=5,
                       socket_connect_timeout=5, ssl=parts.scheme == "rediss",
                       retry=Retry(NoBackoff(), 0))  # an AUTH refusal is final: no retries


@pytest.fixture(scope="module")
def password(redis_url: str) -> str | None:
    return urlsplit(redis_url).password


@pytest.fixture
def client(redis_url: str) -> Iterator[Any]:
    c = redis.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=5)
    yield c
    c.close()


def test_ping_without_password_is_noauth(redis_url: str, password: str | None) -> None:
    if not password:
        pytest.skip("STACKCTL_CONTRACT_REDIS_URL has no password")
    c = _client(redis_url, None)
    with pytest.raises(redis.exceptions.AuthenticationError, match="(?i)NOAUTH|auth"):
        c.ping()
    c.close()


def test_ping_with_wrong_password_is_refused(redis_url: str, password: str | None) -> None:
    if not password:
        pytest.skip("STACKCTL_CONTRACT_REDIS_URL has no password")
    c = _client(redis_url, password + "-wrong")
    with pytest.raises(redis.exceptions.AuthenticationError, match="(?i)WRONGPASS|invalid"):
        c.ping()
    c.close()


def test_ping_with_password(client: Any) -> None:
    assert client.ping() is True


def test_cache_keys_with_ttl(client: Any) -> None:
    key = f"stackctl-contract:{uuid.uuid4().hex}"
    try:
        assert client.set(key, b'{"cached": true}', ex=60) is True
        assert client.get(key) == b'{"cached": true}'
        assert 0 < client.ttl(key) <= 60
        assert client.exists(key) == 1
    finally:
        client.delete(key)
    assert client.get(key) is None


def test_server_is_redis_7(client: Any) -> None:
    info = client.info("server")
    assert str(info["redis_version"]).startswith("7."), info["redis_version"]
