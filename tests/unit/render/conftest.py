"""Fixtures shared by the renderer tests.

    secret_env    the fake secrets of tests/fake_secrets.py set in the environment (a
                  module may define its own `secret_env` with fewer, e.g. test_swarm.py).
"""

from __future__ import annotations

import pytest

from tests.fake_secrets import SECRETS


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for k, v in SECRETS.items():
        monkeypatch.setenv(k, v)
    return SECRETS
