"""Pins in the state folder, read by the scheduler's spec; MODEL names as the commands take
them."""

from __future__ import annotations

import pytest

from stackctl.errors import PlanError
from stackctl.registry.load import load_registry
from stackctl.residency.names import resolve
from stackctl.residency.pins import (
    Pins,
    pinned_members,
    pins_path,
    read_pins,
    set_pinned,
)
from stackctl.switching.members import members_of
from stackctl.switching.scheduler import group_spec
from tests.paths import CONFIGS


@pytest.fixture
def reg():
    return load_registry(CONFIGS["offline"])


def test_pin_and_unpin_round_trip(tmp_path):
    path = pins_path(tmp_path, "p")
    assert read_pins(path) == Pins()
    assert set_pinned(path, "a", True) and not set_pinned(path, "a", True)
    assert set_pinned(path, "b", True)
    assert read_pins(path).pinned == ["a", "b"]
    assert set_pinned(path, "a", False) and not set_pinned(path, "a", False)
    assert read_pins(path).pinned == ["b"]
    path.write_text("garbage")
    assert read_pins(path) == Pins()  # pins nothing rather than failing every command


def test_the_scheduler_sees_state_pins_beside_the_registry(reg):
    spec = group_spec(reg, "gpu0", pins=frozenset({"vllm-dolphin"}))
    assert spec.members["vllm-dolphin"].pinned and not spec.members["vllm-qwen"].pinned
    assert pinned_members(reg, Pins(pinned=["vllm-dolphin"])) == {"vllm-dolphin"}


@pytest.mark.parametrize(("name", "member"), [
    ("vllm-dolphin", "vllm-dolphin"), ("dolphin", "vllm-dolphin"),
    ("qwen-coder-vllm", "vllm-qwen")])
def test_model_names_resolve_to_members(reg, name, member):
    assert resolve(reg, members_of(reg), name) == ("gpu0", member)


def test_unknown_names_list_the_known_ones(reg):
    with pytest.raises(PlanError) as exc:
        resolve(reg, members_of(reg), "dolphn-uncensored")
    assert "no GPU group member or model 'dolphn-uncensored'" in str(exc.value)
    assert "known: vllm-qwen (qwen-coder-vllm), vllm-dolphin (dolphin-uncensored-vllm)" \
        in str(exc.value)
    with pytest.raises(PlanError, match="'ollama' is not a member of a GPU group"):
        resolve(reg, members_of(reg), "ollama")
    with pytest.raises(PlanError, match="ambiguous"):
        resolve(reg, members_of(reg), "vllm")
