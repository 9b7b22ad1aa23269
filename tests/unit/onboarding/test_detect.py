"""Detection: parsers as data, probes on files in tmp_path and a fake nvidia-smi."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from stackctl.onboarding import detect
from stackctl.onboarding.detect import (
    GpuInfo,
    Machine,
    find_ggufs,
    find_hf_models,
    hf_home,
    hf_repo_id,
    ollama_url,
    parse_nvidia_smi,
    parse_ollama_tags,
    slug,
)


@pytest.mark.parametrize(("text", "expected"), [
    ("NVIDIA GeForce RTX 4090, 24564\n", [("NVIDIA GeForce RTX 4090", 24.0)]),
    ("Quadro RTX 5000, 16384\nTesla T4, 15360\n", [("Quadro RTX 5000", 16.0), ("Tesla T4", 15.0)]),
    ("NVIDIA A100-SXM4-80GB, 81920", [("NVIDIA A100-SXM4-80GB", 80.0)]),
    ("Odd, Name, With, Commas, 8192\n", [("Odd, Name, With, Commas", 8.0)]),  # the last field is memory
    ("GPU X, [N/A]\n", []),  # no number: skipped, not guessed
    ("", []),
    ("garbage\n", []),
    (", 8192\n", []),  # no name
])
def test_nvidia_smi_lines(text, expected):
    assert [(g.name, g.memory_gib) for g in parse_nvidia_smi(text)] == expected
    assert [g.index for g in parse_nvidia_smi(text)] == list(range(len(expected)))


@pytest.mark.parametrize(("body", "expected"), [
    ('{"models": [{"name": "llama3.2:3b", "size": 1}, {"name": "qwen2.5:7b"}]}',
     ["llama3.2:3b", "qwen2.5:7b"]),
    ('{"models": []}', []),
    ('{"models": null}', []),
    ('{"models": [{"model": "no-name"}, 3, {"name": 5}]}', []),
    ("not json", []),
    ("[1, 2]", []),
    (b'{"models": [{"name": "bytes:ok"}]}', ["bytes:ok"]),
])
def test_ollama_tags(body, expected):
    assert parse_ollama_tags(body) == expected


@pytest.mark.parametrize(("value", "url"), [
    (None, "http://127.0.0.1:11434"),
    ("", "http://127.0.0.1:11434"),
    ("0.0.0.0", "http://127.0.0.1:11434"),
    ("0.0.0.0:11500", "http://127.0.0.1:11500"),
    ("127.0.0.1:9999", "http://127.0.0.1:9999"),
    ("http://localhost:8888", "http://localhost:8888"),
    ("https://ollama.lan", "https://ollama.lan:11434"),
    (":7000", "http://127.0.0.1:7000"),
])
def test_ollama_host_as_ollama_reads_it(value, url):
    assert ollama_url({} if value is None else {"OLLAMA_HOST": value}) == url


@pytest.mark.parametrize(("folder", "repo"), [
    ("models--Qwen--Qwen2.5-7B-Instruct", "Qwen/Qwen2.5-7B-Instruct"),
    ("models--meta-llama--Llama-3.1-8B-Instruct", "meta-llama/Llama-3.1-8B-Instruct"),
    ("models--gpt2", None),  # no organisation: not an Org/Name repository
    ("datasets--org--name", None),
    ("version.txt", None),
])
def test_hf_folder_names(folder, repo):
    assert hf_repo_id(folder) == repo


def test_hf_home_honours_the_variables(tmp_path):
    assert hf_home({"HF_HUB_CACHE": str(tmp_path / "c")}) == tmp_path / "c"
    assert hf_home({"HF_HOME": str(tmp_path)}) == tmp_path / "hub"
    assert hf_home({}) == Path("~/.cache/huggingface/hub").expanduser()


@pytest.mark.parametrize(("text", "name"), [
    ("SmolLM2-135M-Instruct.Q4_1", "smollm2-135m-instruct.q4_1"),
    ("Model Name (v2)", "model-name-v2"),
    ("___", "model"),
    ("Qwen2.5-7B", "qwen2.5-7b"),
])
def test_slug_is_a_compose_name(text, name):
    assert slug(text) == name


def _sparse(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.truncate(size)
    return path


def test_gguf_files_are_found_once_and_small_ones_skipped(tmp_path):
    a = _sparse(tmp_path / "models" / "A.Q4_K_M.gguf", 3 * 2**30)
    _sparse(tmp_path / "models" / "deep" / "B.gguf", 2 * 2**20)
    _sparse(tmp_path / "models" / "vocab.gguf", 1000)  # a vocabulary, not a model
    _sparse(tmp_path / "models" / "big-00001-of-00002.gguf", 2 * 2**20)
    _sparse(tmp_path / "models" / "big-00002-of-00002.gguf", 2 * 2**20)  # a second part
    _sparse(tmp_path / "models" / ".hidden" / "C.gguf", 2 * 2**20)
    (tmp_path / "link").mkdir()
    (tmp_path / "link" / "same.gguf").symlink_to(a)
    found = find_ggufs([tmp_path / "models", tmp_path / "link", tmp_path / "missing"])
    assert [f.path.name for f in found] == ["A.Q4_K_M.gguf", "big-00001-of-00002.gguf", "B.gguf"]
    assert found[0].size_gib == 3.0


def test_hf_cache_models_need_a_snapshot(tmp_path):
    (tmp_path / "models--Org--Good" / "snapshots" / "abc").mkdir(parents=True)
    _sparse(tmp_path / "models--Org--Good" / "blobs" / "x", 2**30)
    (tmp_path / "models--Org--Empty").mkdir()  # an interrupted download: no snapshot
    (tmp_path / "datasets--Org--Data" / "snapshots").mkdir(parents=True)
    assert [(m.repo_id, m.size_gib) for m in find_hf_models(tmp_path)] == [("Org/Good", 1.0)]
    assert find_hf_models(tmp_path / "none") == []


def test_gpus_from_nvidia_smi_on_path(monkeypatch):
    monkeypatch.setattr(detect.shutil, "which", lambda name: "/usr/bin/nvidia-smi")
    calls = []

    def run(args, **kwargs):
        calls.append(args)
        return subprocess.CompletedProcess(args, 0, "Tesla T4, 15360\n", "")

    assert detect.probe_gpus(run) == ([GpuInfo(index=0, name="Tesla T4", memory_gib=15.0)], None)
    assert calls == [["/usr/bin/nvidia-smi", "--query-gpu=name,memory.total",
                      "--format=csv,noheader,nounits"]]
    failing = lambda args, **kw: subprocess.CompletedProcess(args, 9, "", "NVML: driver mismatch")  # noqa: E731
    assert detect.probe_gpus(failing) == ([], "nvidia-smi exited 9: NVML: driver mismatch")
    monkeypatch.setattr(detect.shutil, "which", lambda name: None)
    assert detect.probe_gpus(run) == ([], None)


def test_a_closed_port_is_no_ollama(free_port):
    assert detect.probe_ollama(f"http://127.0.0.1:{free_port}", timeout=0.5) is None


def test_machine_is_empty_only_with_nothing_found():
    assert Machine().empty
    assert not Machine(gpus=[GpuInfo(index=0, name="g", memory_gib=8)]).empty
