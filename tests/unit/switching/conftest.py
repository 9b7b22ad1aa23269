"""Fixtures shared by the switching tests.

    state_dir   (autouse) the stack locks in a folder of the test's own
    routes      (autouse) every routing state a switch hands the gateway, in order; nothing
                is written
    offline     the offline example's registry with its GPU group switching by restart
    sleepy      the offline example's registry as shipped: gpu0 switches with sleep mode
    edited      edited(file, edit) → the offline registry copied to tmp, `file` edited, loaded
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from stackctl.registry.load import load_registry
from tests.paths import CONFIGS


@pytest.fixture(autouse=True)
def state_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("STACKCTL_STATE_DIR", str(tmp_path / "state"))


@pytest.fixture(autouse=True)
def routes(monkeypatch) -> list[dict]:
    """Every routing state a switch hands the gateway, in order (nothing is written)."""
    written: list[dict] = []
    monkeypatch.setattr("stackctl.switching.routing.write_routing",
                        lambda reg, st: written.append(st))
    return written


@pytest.fixture
def offline():
    """The offline registry with every GPU group switching by restart (the default; sleep
    mode's tests: test_sleep_switch.py)."""
    reg = load_registry(CONFIGS["offline"])
    return dataclasses.replace(reg, stack=reg.stack.model_copy(update={"gpu_groups": {}}))


@pytest.fixture
def sleepy():
    """The offline registry as shipped: gpu0 switches with sleep mode (level 1, hold 10)."""
    reg = load_registry(CONFIGS["offline"])
    assert reg.stack.gpu_groups["gpu0"].switch == "sleep"
    return reg


@pytest.fixture
def edited(registry_dir, yaml_edit):
    """edited(file, edit) → the offline registry copied to tmp, `file` edited, loaded."""
    def make(file: str | None = None, edit: Callable[[Any], Any] | None = None):
        cfg = registry_dir("offline")
        if file:
            yaml_edit(cfg / file, edit)
        return load_registry(cfg)
    return make
