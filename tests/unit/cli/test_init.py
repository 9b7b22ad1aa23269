"""stackctl init: from this machine (fake nvidia-smi, fake Ollama), offline, and --from an
old registry; each result validates and generates. No Docker."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from stackctl.cli import cli
from tests.paths import FIXTURES

LEGACY = FIXTURES / "legacy"


def invoke(runner, *args):
    r = runner.invoke(cli, list(args), catch_exceptions=False)
    assert "Traceback" not in r.output
    return r


def validates(runner, folder: Path, strict: bool = True) -> str:
    args = ["validate", "-C", str(folder)] + (["--strict"] if strict else [])
    r = invoke(runner, *args)
    assert r.exit_code == 0, r.output
    return r.output


def generates(runner, folder: Path) -> None:
    r = invoke(runner, "generate", "-C", str(folder))
    assert r.exit_code == 0, r.output
    r = invoke(runner, "generate", "--check", "-C", str(folder))
    assert r.exit_code == 0 and "up to date" in r.output, r.output


@pytest.fixture
def at(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_nothing_detected_writes_the_offline_example(runner, machine, at):
    r = invoke(runner, "init", "config")
    assert r.exit_code == 0, r.output
    assert "writing the offline example" in r.output and "0 error(s), 0 warning(s)" in r.output
    assert "project: stackctl-offline" in (at / "config" / "stack.yaml").read_text()
    validates(runner, at / "config")
    generates(runner, at / "config")


def test_gpu_and_ollama_detected(runner, fake_nvidia_smi, fake_ollama, machine, at):
    gguf = at / "config" / "Tiny-Model.Q4_K_M.gguf"
    gguf.parent.mkdir()
    with open(gguf, "wb") as f:
        f.truncate(3 * 2**20)
    (machine / "hf" / "hub" / "models--Qwen--Qwen2.5-0.5B-Instruct" / "snapshots").mkdir(parents=True)
    r = invoke(runner, "init", "config")
    assert r.exit_code == 0, r.output
    assert "found GPU 0: NVIDIA GeForce RTX 4090, 24 GiB" in r.output
    assert f"found Ollama at http://127.0.0.1:{fake_ollama}: 2 model(s)" in r.output
    assert "found Hugging Face model Qwen/Qwen2.5-0.5B-Instruct" in r.output
    providers = (at / "config" / "providers.yaml").read_text()
    for name in ("ollama:", "llamacpp-tiny-model.q4_k_m:", "vllm-qwen2.5-0.5b-instruct:",
                 "- name: qwen2.5-coder:7b"):
        assert name in providers
    stack = (at / "config" / "stack.yaml").read_text()
    assert "memory_gib: 24.0" in stack and "gpu0:" in stack
    assert "next: copy" in r.output  # how the GGUF file gets into the volume
    validates(runner, at / "config")
    generates(runner, at / "config")


def test_a_gpu_without_models_is_nothing_to_serve(runner, fake_nvidia_smi, at):
    (fake_nvidia_smi.parents[1] / "home" / "hf" / "hub" / "models--Org--M").mkdir(parents=True)
    r = invoke(runner, "init", "config")  # a cache folder without a snapshot: no model
    assert r.exit_code == 0, r.output
    assert "found GPU 0" in r.output and "writing the offline example" in r.output
    validates(runner, at / "config")


def test_a_registry_is_not_replaced_without_force(runner, machine, at):
    invoke(runner, "init", "--offline", "config")
    (at / "config" / "providers.yaml").write_text("# mine\n")
    r = invoke(runner, "init", "--offline", "config")
    assert r.exit_code == 1
    assert "config already holds a registry (providers.yaml, model-mappings.yaml, " \
           "stack.yaml): pass --force" in r.output
    assert (at / "config" / "providers.yaml").read_text() == "# mine\n"
    r = invoke(runner, "init", "--offline", "--force", "config")
    assert r.exit_code == 0, r.output
    [saved] = (at / "config" / ".backups").iterdir()
    assert (saved / "providers.yaml").read_text() == "# mine\n"
    shown = os.path.join("config", ".backups", saved.name)
    assert f"backed up providers.yaml, model-mappings.yaml, stack.yaml to {shown}" in r.output
    assert "wrote config/providers.yaml" in r.output and "unchanged config/stack.yaml" in r.output
    validates(runner, at / "config")


def test_dir_from_c_before_the_command(runner, machine, at):
    r = invoke(runner, "-C", "elsewhere", "init", "--offline")
    assert r.exit_code == 0, r.output
    assert (at / "elsewhere" / "providers.yaml").is_file()


def test_from_the_legacy_fixture(runner, machine, at):
    """The integration of #21: init --from → validate 0 errors → generate --check clean."""
    r = invoke(runner, "init", "--from", str(LEGACY), "config")
    assert r.exit_code == 0, r.output
    out = r.output
    assert "changed:" in out and "not carried over:" in out
    assert f"{LEGACY}/model-mappings.yaml:34: exact_matches.mistral-vllm.fallback: provider " \
           "'ollama_gpu' → its model 'mistral:7b-instruct'" in out
    assert f"{LEGACY}/providers.yaml:47: providers.llamacpp_bindings.service_file" in out
    assert "default profiles: ollama_gpu, llamacpp_bindings, llamacpp_server, vllm-main" in out
    assert "config: ok: 0 error(s), 12 warning(s)" in out
    validates(runner, at / "config", strict=False)
    generates(runner, at / "config")
    assert list(LEGACY.iterdir()) and "container:" not in (LEGACY / "providers.yaml").read_text()


@pytest.mark.parametrize(("files", "expected"), [
    (None, "--from old: no such folder"),
    ({"providers.yaml": "providers:\n\tollama:\n    type: ollama\n",
      "model-mappings.yaml": "{}\n"},
     "old/providers.yaml:2:1: error: "),  # the loader's words for a tab; the hint names it
    ({"providers.yaml": "providers: {}\n", "model-mappings.yaml": "exact_matches:\n  a: [b\n"},
     "old/model-mappings.yaml:3"),
    ({"providers.yaml": "providers: {}\n"},
     "old/model-mappings.yaml: error: file not found (--from names the folder"),
])
def test_bad_old_registries_are_located_errors(runner, machine, at, files, expected):
    if files is not None:
        (at / "old").mkdir()
        for name, text in files.items():
            (at / "old" / name).write_text(text)
    r = invoke(runner, "init", "--from", "old", "new")
    assert r.exit_code == 1
    assert expected in r.output, r.output
    if files and "\t" in files["providers.yaml"]:
        assert "tab" in r.output.split(expected)[1].splitlines()[0]
    assert not (at / "new").exists()


def test_usage_and_folder_mistakes(runner, machine, at):
    r = invoke(runner, "init", "--from", "x", "--offline", "new")
    assert r.exit_code == 2 and "exclude each other" in r.output
    (at / "afile").write_text("")
    r = invoke(runner, "init", "--offline", "afile")
    assert r.exit_code == 1 and "afile: is a file, not a folder" in r.output
    (at / "same").mkdir()
    r = invoke(runner, "init", "--from", "same", "same")
    assert r.exit_code == 1 and "is DIR itself" in r.output


def test_a_result_with_errors_exits_1_listing_them(runner, machine, at):
    (at / "old").mkdir()
    (at / "old" / "providers.yaml").write_text(
        "providers:\n  a:\n    type: openai\n    base_url: https://x.example/v1\n"
        "    requires_api_key: true\n    models: [m]\n")
    (at / "old" / "model-mappings.yaml").write_text("exact_matches:\n  m:\n    provider: nobody\n")
    r = invoke(runner, "init", "--from", "old", "new")
    assert r.exit_code == 1, r.output
    assert "unknown provider 'nobody'" in r.output
    assert "2 error(s) left to fix by hand" in r.output
    assert (at / "new" / "providers.yaml").is_file()  # written: the user fixes what is listed
