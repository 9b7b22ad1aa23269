"""Old settings → server arguments (as data), and the containers init writes."""

from __future__ import annotations

import pytest

from stackctl.onboarding.containers import (
    LLAMA_CPP_FLAGS,
    VLLM_FLAGS,
    llama_cpp_container,
    settings_to_args,
    vllm_container,
)
from stackctl.registry.templates import DEFAULTS


@pytest.mark.parametrize(("settings", "args", "left"), [
    ({"n_ctx": 8192, "n_gpu_layers": -1}, ["--ctx-size", "8192", "--n-gpu-layers", "999"], []),
    ({"n_gpu_layers": 0}, ["--n-gpu-layers", "0"], []),
    ({"n_parallel": 4, "threads": 6}, ["--parallel", "4", "--threads", "6"], []),
    ({"threads": 6, "n_threads": 8}, ["--threads", "6"], ["n_threads"]),  # one flag, first wins
    ({"flash_attn": True, "use_mlock": False}, ["--flash-attn", "on"], []),
    ({"use_mmap": False}, ["--no-mmap"], []),
    ({"use_mmap": True}, [], []),
    ({"tensor_split": [3, 1]}, ["--tensor-split", "3,1"], []),
    ({"chat_format": "chatml", "n_gpu_layers": "all"}, [], ["chat_format", "n_gpu_layers"]),
    ({"n_ctx": {"nested": 1}, "seed": None}, [], ["n_ctx", "seed"]),
])
def test_llama_cpp_settings(settings, args, left):
    mapped, rest = settings_to_args(settings, LLAMA_CPP_FLAGS)
    assert [a for m in mapped for a in m.args] == args
    assert rest == left


@pytest.mark.parametrize(("settings", "args", "left"), [
    ({"gpu_memory_utilization": 0.45, "max_model_len": 4096},
     ["--gpu-memory-utilization", "0.45", "--max-model-len", "4096"], []),
    ({"quantization": "AWQ", "dtype": "half"}, ["--quantization", "awq", "--dtype", "half"], []),
    ({"enforce_eager": True, "trust_remote_code": False}, ["--enforce-eager"], []),
    ({"tensor_parallel_size": 2, "swap_space": 4},
     ["--tensor-parallel-size", "2", "--swap-space", "4"], []),
    ({"enforce_eager": "yes", "lora_modules": ["a"]}, [], ["enforce_eager", "lora_modules"]),
])
def test_vllm_settings(settings, args, left):
    mapped, rest = settings_to_args(settings, VLLM_FLAGS)
    assert [a for m in mapped for a in m.args] == args
    assert rest == left


def test_llama_cpp_command_has_port_metrics_and_all_layers_on_gpu():
    from stackctl.onboarding.containers import gpu_section
    c = llama_cpp_container("p", "m.gguf", "alias", [], gpu_section())
    assert list(c["command"]) == ["--model", "/models/m.gguf", "--alias", "alias", "--host",
                                  "0.0.0.0", "--port", "8080", "--n-gpu-layers", "999", "--metrics"]
    assert c["image"] == DEFAULTS["llama_cpp"]["image"]
    cpu = llama_cpp_container("p", "m.gguf", "alias", ["--n-gpu-layers", "0"], None)
    assert "gpu" not in cpu and cpu["image"] == DEFAULTS["llama_cpp"]["cpu_image"]
    assert list(cpu["command"]).count("--n-gpu-layers") == 1


def test_vllm_serves_the_registry_names():
    from stackctl.onboarding.containers import gpu_section
    c = vllm_container("v", "Org/Model", ["m1"], ["--port", "9000"], gpu_section("g"))
    assert list(c["command"]) == ["--model", "Org/Model", "--served-model-name", "m1", "--port", "9000"]
    assert c["gpu"]["exclusive_group"] == "g" and c["port"] == 8000
