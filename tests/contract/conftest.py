"""Fixtures of the contract tests (see tests/contract/__init__.py for the URL mode).

    http        a requests session that ignores proxy variables (module)
    containers  per-module pool: `containers.start(DockerContainer(...), image)` starts a
                container (skipping the test when Docker or the image is missing: a failure
                under STACKCTL_NO_SKIP=1) and removes it, with its volumes, when the module is
                done; `containers.network()` makes a private network removed with them

`tests.tc` is imported first: it sets the testcontainers environment of these machines
(no Ryuk, docker_host connection mode, TC_HOST=127.0.0.1) before testcontainers is imported.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests import tc  # first: testcontainers settings
from tests.contract import session


class Containers:
    def __init__(self) -> None:
        self._started: list[Any] = []
        self._networks: list[Any] = []
        self._checked: set[str] = set()
        self._engine_ok = False

    def require(self, *images: str) -> None:
        """Skip unless the engine answers and these images exist (checked once each)."""
        todo = [i for i in images if i not in self._checked]
        if self._engine_ok and not todo:
            return
        reason = tc.docker_problem(*todo)
        if reason:
            pytest.skip(reason)  # a failure in CI (STACKCTL_NO_SKIP=1)
        self._engine_ok = True
        self._checked.update(todo)

    def network(self) -> Any:
        from testcontainers.core.network import Network

        self.require()
        net = Network().create()
        self._networks.append(net)
        return net

    def start(self, container: Any, image: str | None = None) -> Any:
        self.require(image or container.image)
        self._started.append(container)  # removed even when its wait strategy fails
        try:
            container.start()
        except Exception as exc:
            logs = ""
            if container._container is not None:
                logs = container._container.logs(tail=40).decode(errors="replace")
            raise RuntimeError(f"{container.image} did not start: {exc}\n--- last log lines "
                               f"---\n{logs}") from exc
        return container

    def close(self) -> None:
        for container in reversed(self._started):
            try:
                container.stop()  # docker rm -f -v
            except Exception as exc:  # keep removing the others
                print(f"could not remove a {container.image} container: {exc}")
        for net in self._networks:
            try:
                net.remove()
            except Exception as exc:
                print(f"could not remove network {net.name}: {exc}")


@pytest.fixture(scope="module")
def containers() -> Iterator[Containers]:
    pool = Containers()
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture(scope="module")
def http() -> Iterator[requests.Session]:
    with session() as s:
        yield s
