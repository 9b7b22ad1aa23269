"""Fixtures for every unit test.

    isolated_state    (autouse) STACKCTL_STATE_DIR points at a fresh folder per test, so no
                      unit test reads or takes the stack locks of the machine (or of another
                      test running at the same time under `pytest -n`). A module that sets
                      the variable itself (e.g. to tmp_path / "state") still wins.
    stackctl_imported (autouse, once per session) every stackctl module imported before
                      the first test. A test that patches a name by its dotted path
                      (`monkeypatch.setattr("stackctl.docker.adapter.Docker", fake)`) while
                      another module that binds that name at import (`from stackctl.docker.adapter
                      import Docker`) is imported for the first time would leave the fake in
                      that module for every later test. Which test imports a module first
                      depends on the order, which pytest-xdist (`-n`) changes; imported up
                      front, no test is first.
    quiet_host        (autouse) no port of the machine counts as taken: a unit test of `up`
                      or `reload` must not fail because the developer's own stack holds
                      4000 (tests/unit/ports tests the real observation, and tests that
                      patch `host_listeners` themselves still win).
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import pytest

import stackctl


def _imported_up_front(name: str) -> bool:
    # not the in-container code (it runs in the images) nor `__main__` (runs the CLI)
    return not name.startswith("stackctl.incontainer") and not name.endswith(".__main__")


@pytest.fixture(autouse=True, scope="session")
def stackctl_imported() -> None:
    for module in pkgutil.walk_packages(stackctl.__path__, "stackctl.", onerror=lambda name: None):
        if _imported_up_front(module.name):
            try:
                importlib.import_module(module.name)
            except Exception:
                pass  # a module that cannot be imported fails its own tests


@pytest.fixture(autouse=True)
def isolated_state(tmp_path_factory: pytest.TempPathFactory,
                   monkeypatch: pytest.MonkeyPatch) -> Path:
    state = tmp_path_factory.mktemp("state")
    monkeypatch.setenv("STACKCTL_STATE_DIR", str(state))
    return state


@pytest.fixture(autouse=True)
def quiet_host(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if request.path.parent.name != "ports":
        monkeypatch.setattr("stackctl.ports.check.host_listeners", lambda needs: [])
