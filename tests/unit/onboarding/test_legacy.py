"""Old providers → containers, commands and a GPU group (pure, on small trees)."""

from __future__ import annotations

import re

from stackctl.onboarding.legacy import LlamaModel, is_local, migrate_providers, uses_gpu
from stackctl.onboarding.report import Recorder
from stackctl.onboarding.yamltext import dump, load_text

OLD = """\
providers:
  vllm-a:
    type: vllm
    base_url: http://127.0.0.1:8001
    status: active
    models:
      - name: Org/Model-A-AWQ
        quantization: AWQ
        context_length: 4096
    gpu_memory_utilization: 0.45
    hardware_requirements:
      gpu_vram_gb: 16
  vllm-b:
    type: vllm
    base_url: http://127.0.0.1:8002
    status: disabled  # one at a time
    models:
      - name: b-model
  cpp:
    type: llama_cpp
    base_url: http://localhost:9090
    configuration:
      n_ctx: 2048
      n_gpu_layers: -1
      rope_scaling_type: yarn
    models:
      - name: cpp-model
  remote:
    type: ollama
    base_url: https://ollama.example
    models: [big]
"""


def run(text=OLD, backends=None, llama=None):
    tree, rec = load_text(text), Recorder("providers.yaml")
    result = migrate_providers(tree, rec, backends or {"vllm-b": ["Org/B"]}, llama or {})
    return tree["providers"], result, rec


def test_vllm_settings_become_its_command_and_leave_the_provider():
    providers, _, rec = run()
    a = providers["vllm-a"]
    assert list(a["container"]["command"]) == [
        "--model", "Org/Model-A-AWQ", "--served-model-name", "Org/Model-A-AWQ",
        "--gpu-memory-utilization", "0.45", "--max-model-len", "4096", "--quantization", "awq",
        "--port", "8000"]
    assert "gpu_memory_utilization" not in a
    assert a["container"]["gpu"]["exclusive_group"] == "gpu0"
    changed = {i.path: (i.line, i.message) for i in rec.items if i.kind == "changed"}
    assert changed["providers.vllm-a.gpu_memory_utilization"] == \
        (10, "0.45 → command --gpu-memory-utilization 0.45")
    assert changed["providers.vllm-a.models[0].context_length"][0] == 9


def test_disabled_vllm_joins_the_group_not_the_default_profiles():
    providers, result, _ = run()
    b = providers["vllm-b"]
    assert b["status"] == "active" and b["container"]["command"][1] == "Org/B"  # backend_model
    group = result.groups["gpu0"]
    assert group.members == ["vllm-a", "vllm-b"] and group.memory_gib == 16
    assert result.default_profiles == ["vllm-a", "cpp"]
    assert re.search(r"status: active +# one at a time", dump(providers))


def test_llama_cpp_offload_port_clash_and_leftovers():
    providers, result, rec = run()
    c = providers["cpp"]["container"]
    assert list(c["command"])[6:] == ["--port", "8080", "--ctx-size", "2048", "--n-gpu-layers",
                                      "999", "--metrics"]
    assert c["host_port"] == 8300  # 9090 is Prometheus'
    assert dict(providers["cpp"]["configuration"]) == {"rope_scaling_type": "yarn"}
    dropped = [i.path for i in rec.items if i.kind == "dropped"]
    assert dropped == ["providers.cpp.configuration.rope_scaling_type"]
    assert "container" not in providers["remote"]


def test_llamacpp_models_names_the_file():
    providers, _, rec = run(llama={"cpp-model": LlamaModel(filename="F.gguf", gpu_layers=12,
                                                            context_length=99, line=3)})
    command = list(providers["cpp"]["container"]["command"])
    # the provider's own settings win over the list's recommendations
    assert command[1] == "/models/F.gguf" and command[-5:] == [
        "--ctx-size", "2048", "--n-gpu-layers", "999", "--metrics"]
    text = "providers:\n  c:\n    type: llama_cpp\n    base_url: http://127.0.0.1:8100\n" \
           "    models: [m]\n"
    providers, _, rec = run(text, llama={"m": LlamaModel(filename="F.gguf", gpu_layers=12,
                                                         context_length=99, line=3)})
    assert list(providers["c"]["container"]["command"])[-5:] == [
        "--ctx-size", "99", "--n-gpu-layers", "12", "--metrics"]
    assert "llamacpp-models.yaml:3" in rec.items[0].path


def test_without_gpu_evidence_llama_cpp_runs_on_the_cpu():
    text = "providers:\n  c:\n    type: llama_cpp\n    base_url: http://127.0.0.1:8100\n" \
           "    models: [m]\n"
    providers, result, _ = run(text)
    assert "gpu" not in providers["c"]["container"] and result.groups == {}
    assert not uses_gpu(load_text(text)["providers"])


def test_exclusive_group_without_a_stated_memory():
    text = OLD.replace("    hardware_requirements:\n      gpu_vram_gb: 16\n", "")
    _, result, _ = run(text)
    assert result.groups["gpu0"].memory_gib is None


def test_renames_and_unknown_keys():
    text = "providers:\n  My_Box:\n    type: ollama\n    base_url: http://127.0.0.1:11434\n" \
           "    models: [a]\n    port: 11434\n"
    providers, result, rec = run(text)
    assert list(providers) == ["my_box"] and result.renames == {"My_Box": "my_box"}
    assert "port" not in providers["my_box"]
    assert rec.items[0].line == 2 and "renamed 'my_box'" in rec.items[0].message


def test_locality():
    assert is_local({"type": "vllm", "base_url": "http://localhost:1"})
    assert not is_local({"type": "openai_compatible", "base_url": "http://127.0.0.1:1"})
    assert not is_local({"type": "ollama", "base_url": "http://[::1"})
