"""GPU memory budgets: each member's footprint, the sets that fit together (as data), and
`validate` on a budgeted group: located errors for a member with no footprint, one that
cannot fit alone, pinned members that shut others out; a note naming what fits together."""

from __future__ import annotations

import json
from typing import Any

import pytest

from stackctl.registry.gpu_memory import fits, fitting_sets, footprint, utilization
from stackctl.registry.models import Provider
from tests.cli_checks import validate
from tests.registry_edits import key, line_of


def provider(type_: str = "vllm", command: list[str] | None = None, **gpu: Any) -> Provider:
    return Provider.model_validate({
        "type": type_, "base_url": "http://127.0.0.1:8001",
        "container": {"image": "x/y:1", "port": 8000, "command": command or [],
                      "gpu": {"exclusive_group": "g", **gpu}}})


# -- footprints and fits, as data -----------------------------------------------------------

@pytest.mark.parametrize("command, expect", [
    (["--gpu-memory-utilization", "0.45"], (0.45, None)),
    (["--port", "1", "--gpu-memory-utilization=0.3"], (0.3, None)),
    (["--model", "m"], (None, None)),
    (["--gpu-memory-utilization", "lots"], (None, "--gpu-memory-utilization 'lots' is not a number")),
    (["--gpu-memory-utilization", "1.5"], (None, "--gpu-memory-utilization 1.5 is not in (0, 1]")),
    (["--gpu-memory-utilization"], (None, "--gpu-memory-utilization '' is not a number")),
])
def test_utilization_is_read_from_the_command(command, expect):
    assert utilization(command) == expect


def test_a_vllm_member_claims_its_utilization_of_the_budget_whatever_its_weights():
    fp = footprint(provider(command=["--gpu-memory-utilization", "0.5"], weights_gib=4), 24)
    assert (fp.gib, fp.source) == (12, "--gpu-memory-utilization 0.5 of 24 GiB")
    # not told: vLLM's default, 90% of the GPU
    assert footprint(provider(), 24).gib == pytest.approx(21.6)


def test_weights_and_kv_state_the_whole_footprint_even_for_vllm():
    fp = footprint(provider(command=["--gpu-memory-utilization", "0.9"], weights_gib=4,
                            kv_gib=2), 24)
    assert (fp.gib, fp.source) == (6, "weights_gib 4 + kv_gib 2")


def test_other_engines_count_their_weights_and_nothing_is_none():
    assert footprint(provider("llama_cpp", weights_gib=5), 24).gib == 5
    assert footprint(provider("llama_cpp"), 24).gib is None
    assert footprint(provider(), None).gib is None  # no budget: vLLM's share of nothing


def test_the_largest_sets_that_fit_are_listed_and_none_in_an_exclusive_group():
    sizes = {"a": 10.0, "b": 10.0, "c": 4.0, "d": 20.0}
    assert fitting_sets(sizes, 24) == [("a", "b", "c"), ("c", "d")]
    assert fitting_sets(sizes, 14) == [("a", "c"), ("b", "c")]
    assert fitting_sets(sizes, 9) == []
    assert fitting_sets(sizes, None) == []
    assert fits(sizes, ["a", "b"], 20) and not fits(sizes, ["a", "b"], 19.9)
    assert fits(sizes, ["d"], None) and not fits(sizes, ["a", "c"], None)


# -- validate on a budgeted group ------------------------------------------------------------

def budget(gib: float, **more: Any):
    def edit(d: Any) -> None:
        d["gpu_groups"]["gpu0"].update({"memory_gib": gib, **more})
    return edit


def gpu(member: str, **values: Any):
    def edit(d: Any) -> None:
        d["providers"][member]["container"]["gpu"].update(values)
    return edit


def utilization_of(member: str, value: str):
    def edit(d: Any) -> None:
        d["providers"][member]["container"]["command"] = ["--gpu-memory-utilization", value]
    return edit


def problems(runner, cfg) -> tuple[int, dict]:
    r = validate(runner, "-C", str(cfg), "--json")
    return r.exit_code, json.loads(r.stdout)


def test_the_examples_have_no_budget_and_no_note_about_one(runner, registry_dir):
    for name in ("offline", "shipped"):
        code, doc = problems(runner, registry_dir(name))
        assert code == 0 and not any("footprints" in n for n in doc["summary"]["notes"])


def test_members_that_fit_together_are_named_in_a_note(runner, registry_dir, yaml_edit):
    cfg = registry_dir("offline")
    yaml_edit(cfg / "stack.yaml", budget(24, on_demand=True, idle_sleep="5m",
                                         min_residency="30s"))
    for m in ("vllm-qwen", "vllm-dolphin"):
        yaml_edit(cfg / "providers.yaml", utilization_of(m, "0.4"))
    r = validate(runner, "-C", str(cfg), "--strict")
    assert r.exit_code == 0, r.output
    assert ("note: GPU group gpu0: 24 GiB; footprints (GiB): vllm-qwen 9.6, vllm-dolphin 9.6; "
            "fit together: {vllm-qwen, vllm-dolphin}") in r.output


def test_a_budget_where_no_two_fit_is_called_exclusive(runner, registry_dir, yaml_edit):
    cfg = registry_dir("offline")
    yaml_edit(cfg / "stack.yaml", budget(24))  # both claim 0.9 of it
    code, doc = problems(runner, cfg)
    assert code == 0 and doc["errors"] == []
    assert doc["summary"]["notes"][-1].endswith(
        "vllm-qwen 21.6, vllm-dolphin 21.6; no two members fit together: one at a time "
        "(exclusive)")


def test_a_member_without_a_footprint_is_told_what_to_add(runner, registry_dir, yaml_edit):
    cfg = registry_dir("offline")
    yaml_edit(cfg / "stack.yaml", budget(24))
    yaml_edit(cfg / "providers.yaml", lambda d: (
        d["providers"]["vllm-dolphin"].__setitem__("type", "openai_compatible"),
        d["providers"]["vllm-dolphin"]["container"]["gpu"].pop("weights_gib")))
    code, doc = problems(runner, cfg)
    assert code == 1
    [err] = [e for e in doc["errors"] if "footprint" in e["message"]]
    assert err["path"] == "providers.vllm-dolphin.container.gpu.weights_gib"
    assert err["line"] == line_of(cfg / "providers.yaml", key("vllm-dolphin"), key("gpu"))
    assert "'vllm-dolphin' has no GPU memory footprint, but GPU group 'gpu0' " \
        "(gpu_groups.gpu0.memory_gib 24 in stack.yaml) has a budget" in err["message"]
    assert "set container.gpu.weights_gib" in err["hint"] and "kv_gib" in err["hint"]


def test_a_member_that_cannot_fit_alone_is_an_error_at_its_sizes(runner, registry_dir, yaml_edit):
    cfg = registry_dir("offline")
    yaml_edit(cfg / "stack.yaml", budget(16))
    yaml_edit(cfg / "providers.yaml", gpu("vllm-qwen", weights_gib=14, kv_gib=4))
    code, doc = problems(runner, cfg)
    assert code == 1
    [err] = doc["errors"]
    assert err["path"] == "providers.vllm-qwen.container.gpu.kv_gib"
    assert err["line"] == line_of(cfg / "providers.yaml", key("vllm-qwen"), key("kv_gib"))
    assert err["message"].startswith("'vllm-qwen' needs 18 GiB (weights_gib 14 + kv_gib 4), "
                                     "more than GPU group 'gpu0'")
    assert "it can never be loaded" in err["message"]
    assert err["hint"] == "give it at most 16 GiB, or raise gpu_groups.gpu0.memory_gib"


def test_an_unreadable_utilization_is_located_at_the_command(runner, registry_dir, yaml_edit):
    cfg = registry_dir("offline")
    yaml_edit(cfg / "stack.yaml", budget(24))
    yaml_edit(cfg / "providers.yaml", utilization_of("vllm-dolphin", "half"))
    code, doc = problems(runner, cfg)
    [err] = doc["errors"]
    assert (err["path"], err["message"]) == ("providers.vllm-dolphin.container.command",
                                             "--gpu-memory-utilization 'half' is not a number")


def test_pinned_members_must_leave_every_other_member_room(runner, registry_dir, yaml_edit):
    cfg = registry_dir("offline")
    yaml_edit(cfg / "providers.yaml", gpu("vllm-qwen", pinned=True))
    code, doc = problems(runner, cfg)  # exclusive: once qwen is loaded, dolphin never is
    assert code == 1
    [err] = doc["errors"]
    assert err["path"] == "providers.vllm-qwen.container.gpu.pinned"
    assert err["line"] == line_of(cfg / "providers.yaml", key("vllm-qwen"), key("pinned"))
    assert err["message"] == ("vllm-qwen pinned in GPU group 'gpu0': once loaded, they are "
                              "never evicted, so vllm-dolphin could never load")
    assert "memory_gib budget" in err["hint"]
    # with room for both, pinning is fine
    yaml_edit(cfg / "stack.yaml", budget(24))
    for m in ("vllm-qwen", "vllm-dolphin"):
        yaml_edit(cfg / "providers.yaml", utilization_of(m, "0.4"))
    assert problems(runner, cfg)[0] == 0


@pytest.mark.parametrize("stack, where", [
    ({"idle_sleep": "5 minutes"}, "gpu_groups.gpu0.idle_sleep"),
    ({"min_residency": "0s"}, "gpu_groups.gpu0.min_residency"),
    ({"memory_gib": 0}, "gpu_groups.gpu0.memory_gib"),
    ({"max_queue": 0}, "gpu_groups.gpu0.max_queue"),
])
def test_bad_scheduler_settings_are_located(runner, registry_dir, yaml_edit, stack, where):
    cfg = registry_dir("offline")
    yaml_edit(cfg / "stack.yaml", lambda d: d["gpu_groups"]["gpu0"].update(stack))
    code, doc = problems(runner, cfg)
    assert code == 1 and [e["path"] for e in doc["errors"]] == [where]
