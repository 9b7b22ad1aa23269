"""Fixtures for the onboarding tests.

    free_port    a TCP port on 127.0.0.1 that nothing listens on (bound, then closed)
    check_dir    validate a registry folder: (errors, warnings) as `validate` finds them
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from stackctl.registry.checks import check
from stackctl.registry.load import load_registry
from stackctl.registry.problems import RegistryError


@pytest.fixture
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def check_dir():
    def run(folder: Path) -> tuple[list[str], list[str]]:
        try:
            problems = check(load_registry(folder))
        except RegistryError as exc:
            problems = exc.problems
        return ([p.render() for p in problems if p.severity == "error"],
                [p.render() for p in problems if p.severity == "warning"])
    return run
