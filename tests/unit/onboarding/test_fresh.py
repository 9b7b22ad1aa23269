"""A registry from what detection found (pure: Machine → trees), validated strictly."""

from __future__ import annotations

from pathlib import Path

import pytest

from stackctl.onboarding.detect import GgufFile, GpuInfo, HfModel, Machine, OllamaInfo
from stackctl.onboarding.files import monitoring_dirs
from stackctl.onboarding.fresh import gguf_folders, plan_fresh
from stackctl.onboarding.yamltext import dump

GPU = GpuInfo(index=0, name="NVIDIA GeForce RTX 4090", memory_gib=24.0)
OLLAMA = OllamaInfo(url="http://127.0.0.1:11434", port=11434, models=["llama3.2:3b", "qwen2.5:7b"])
SMALL = GgufFile(path=Path("/m/SmolLM2-135M.Q4_1.gguf"), size_gib=0.1)
HUGE = GgufFile(path=Path("/m/Huge-70B.Q8_0.gguf"), size_gib=70.0)
QWEN = HfModel(repo_id="Qwen/Qwen2.5-7B-Instruct", size_gib=15.2)

MACHINES = {
    "ollama only": Machine(ollama=OLLAMA),
    "gguf on cpu": Machine(ggufs=[SMALL, HUGE]),
    "gpu, everything": Machine(gpus=[GPU, GPU.model_copy(update={"index": 1})], ollama=OLLAMA,
                               ggufs=[SMALL, HUGE], hf_models=[QWEN]),
    "gpu, two vllm": Machine(gpus=[GPU], hf_models=[QWEN, HfModel(repo_id="Org/Other", size_gib=1)]),
    "hf without gpu": Machine(hf_models=[QWEN], ggufs=[SMALL]),
}


def plan_to(machine: Machine, folder: Path):
    plan = plan_fresh(machine, monitoring_dirs(folder))
    folder.mkdir(parents=True)
    for name, tree in (("providers.yaml", plan.providers), ("model-mappings.yaml", plan.mappings),
                       ("stack.yaml", plan.stack)):
        (folder / name).write_text(dump(tree))
    return plan


@pytest.mark.parametrize("case", sorted(MACHINES))
def test_every_plan_validates_strictly(case, tmp_path, check_dir):
    plan_to(MACHINES[case], tmp_path / "config")
    assert check_dir(tmp_path / "config") == ([], [])


def test_gpu_members_share_a_budgeted_group():
    plan = plan_fresh(MACHINES["gpu, everything"], None)
    providers = plan.providers["providers"]
    small = providers["llamacpp-smollm2-135m.q4_1"]["container"]
    assert small["gpu"]["exclusive_group"] == "gpu0" and small["gpu"]["weights_gib"] == 0.1
    assert "gpu" not in providers["llamacpp-huge-70b.q8_0"]["container"]  # too big: CPU
    assert providers["vllm-qwen2.5-7b-instruct"]["container"]["gpu"]["exclusive_group"] == "gpu0"
    group = plan.stack["gpu_groups"]["gpu0"]
    assert group["memory_gib"] == 24.0 and group["on_demand"] is False
    # one GPU member at start; Ollama and one CPU llama.cpp server beside it
    assert list(plan.stack["default_profiles"]) == [
        "ollama", "llamacpp-huge-70b.q8_0", "llamacpp-smollm2-135m.q4_1"]
    assert "GPU 1" in dump(plan.stack)


def test_the_stacks_ollama_moves_off_the_port_of_the_one_found():
    plan = plan_fresh(Machine(ollama=OLLAMA), None)
    assert plan.providers["providers"]["ollama"]["base_url"] == "http://127.0.0.1:11435"
    other = OLLAMA.model_copy(update={"port": 11500, "url": "http://127.0.0.1:11500"})
    assert plan_fresh(Machine(ollama=other), None).providers["providers"]["ollama"]["base_url"] \
        == "http://127.0.0.1:11434"
    assert list(plan.mappings["exact_matches"]) == ["llama3.2:3b", "qwen2.5:7b"]
    assert any("ollama pull" in n for n in plan.notes)


def test_an_ollama_without_models_is_a_note():
    plan = plan_fresh(Machine(ollama=OLLAMA.model_copy(update={"models": []}), ggufs=[SMALL]), None)
    assert "ollama" not in plan.providers["providers"]
    assert any("lists no model" in n for n in plan.notes)


def test_hf_models_need_a_gpu():
    plan = plan_fresh(MACHINES["hf without gpu"], None)
    assert not [p for p in plan.providers["providers"] if p.startswith("vllm")]
    assert any("vLLM needs an NVIDIA GPU" in n for n in plan.notes)


def test_names_stay_unique():
    twin = GgufFile(path=Path("/other/SmolLM2-135M.Q4_1.gguf"), size_gib=0.1)
    plan = plan_fresh(Machine(ggufs=[SMALL, twin]), None)
    assert list(plan.mappings["exact_matches"]) == ["smollm2-135m.q4_1", "smollm2-135m.q4_1-2"]


def test_gguf_folders(tmp_path):
    assert gguf_folders(tmp_path, [tmp_path / "x", tmp_path], Path("/home/u")) == [
        tmp_path, Path("/home/u/models"), tmp_path / "x"]


def test_a_gpu_alone_plans_no_provider():
    """The command then writes the offline example (tests/unit/cli/test_init.py)."""
    plan = plan_fresh(Machine(gpus=[GPU]), None)
    assert dict(plan.providers["providers"]) == {} and "gpu_groups" not in plan.stack
