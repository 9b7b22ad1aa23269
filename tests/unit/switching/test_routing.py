"""The gateway's routing state (switching/routing.py) as data: which models go to their
fallback, which are held, for the offline registry (`sleepy`, `edited`: conftest.py)."""

from __future__ import annotations

from stackctl.switching.routing import routing_state

QWEN, DOLPHIN = "vllm-qwen", "vllm-dolphin"
QWEN_MODEL, DOLPHIN_MODEL, FALLBACK = "qwen-coder-vllm", "dolphin-uncensored-vllm", \
    "qwen2.5-coder:7b"


def state(divert: dict | None = None, hold: dict | None = None) -> dict:
    return {"v": 1, "divert": divert or {}, "hold": hold or {}}


def held(model: str, seconds: float = 10, fallback: str | None = FALLBACK) -> dict:
    return {model: {"seconds": seconds, "fallback": fallback}}


def test_inactive_member_model_is_diverted_to_its_fallback(sleepy):
    assert routing_state(sleepy, {QWEN}) == state({QWEN_MODEL: FALLBACK})
    assert routing_state(sleepy, set()) == state()


def test_fallback_chain_skips_models_that_are_away_too(sleepy):
    # dolphin's chain: qwen2.5-coder:7b (ollama, inactive too), then smollm2
    out = routing_state(sleepy, {DOLPHIN, "ollama"})
    assert out["divert"][DOLPHIN_MODEL] == "smollm2"


def test_no_usable_fallback_means_no_divert_entry(sleepy):
    out = routing_state(sleepy, {QWEN, "ollama"})
    assert QWEN_MODEL not in out["divert"] and FALLBACK not in out["divert"]
    assert out["hold"] == {}


def test_model_with_an_active_deployment_elsewhere_is_not_diverted(edited):
    def lb(d):
        d["load_balancing"] = {"gpu-chat": {"providers": [
            {"provider": QWEN, "weight": 1}, {"provider": DOLPHIN, "weight": 1}]}}
        d["fallback_chains"]["gpu-chat"] = {"chain": [FALLBACK]}
    reg = edited("model-mappings.yaml", lb)
    assert "gpu-chat" not in routing_state(reg, {QWEN})["divert"]
    assert "gpu-chat" not in routing_state(reg, set(), {DOLPHIN: 10})["hold"]
    assert routing_state(reg, {QWEN, DOLPHIN})["divert"]["gpu-chat"] == FALLBACK
    # one deployment inactive, the other held: held wins, with the hold seconds
    assert routing_state(reg, {QWEN}, {DOLPHIN: 7})["hold"]["gpu-chat"] == \
        {"seconds": 7, "fallback": FALLBACK}


def test_aliases_get_the_entry_of_their_model(edited):
    reg = edited("model-mappings.yaml",
                 lambda d: d["exact_matches"][QWEN_MODEL].__setitem__("aliases", ["qwen-gpu"]))
    assert routing_state(reg, {QWEN})["divert"] == {QWEN_MODEL: FALLBACK, "qwen-gpu": FALLBACK}
    assert routing_state(reg, set(), {QWEN: 10})["hold"] == {
        QWEN_MODEL: {"seconds": 10, "fallback": FALLBACK},
        "qwen-gpu": {"seconds": 10, "fallback": FALLBACK}}


def test_held_member_with_hold_gets_seconds_and_fallback(sleepy):
    out = routing_state(sleepy, {QWEN}, {DOLPHIN: 10})
    assert out == state({QWEN_MODEL: FALLBACK}, held(DOLPHIN_MODEL))


def test_held_member_with_hold_0_is_diverted(sleepy):
    assert routing_state(sleepy, set(), {DOLPHIN: 0}) == state({DOLPHIN_MODEL: FALLBACK})


def test_hold_without_fallback_still_holds_with_none(sleepy):
    out = routing_state(sleepy, {"ollama"}, {QWEN: 5})
    assert out["hold"] == {QWEN_MODEL: {"seconds": 5, "fallback": None}}
    assert QWEN_MODEL not in out["divert"]


def on_demand(data):
    data["gpu_groups"]["gpu0"].update(on_demand=True, hold=20)


def test_on_demand_models_are_asked_about_not_diverted(edited):
    """The gateway asks the scheduler for an on-demand group's models; what it does when
    none answers is in the entry: a sleeping member's model to its fallback, an awake one's
    on."""
    out = routing_state(edited("stack.yaml", on_demand), {QWEN})
    assert out["divert"] == {} and out["hold"] == {}
    assert out["scheduler"] == "stackctl-scheduler.sock"
    assert out["ask"][QWEN_MODEL] == {"seconds": 20, "fallback": FALLBACK, "awake": False}
    assert out["ask"][DOLPHIN_MODEL]["awake"] is True


def test_a_switch_holds_an_on_demand_model_as_before(edited):
    out = routing_state(edited("stack.yaml", on_demand), {QWEN}, {DOLPHIN: 20})
    assert out["hold"] == held(DOLPHIN_MODEL, 20)
    assert DOLPHIN_MODEL not in out["ask"] and out["ask"][QWEN_MODEL]["awake"] is False


def test_no_ask_keys_without_on_demand_groups(sleepy):
    assert set(routing_state(sleepy, {QWEN})) == {"v", "divert", "hold"}
