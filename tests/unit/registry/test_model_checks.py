"""What a provider serves against what its command loads and what the mappings route (#21):
one test per gap, through `validate --json`, located."""

from __future__ import annotations

import json
from typing import Any

from stackctl.cli import cli
from stackctl.registry.model_checks import model_file, option, values
from stackctl.registry.models import Provider


def report(runner, cfg) -> dict[str, Any]:
    r = runner.invoke(cli, ["validate", "-C", str(cfg), "--json"], catch_exceptions=False)
    return json.loads(r.stdout)


def found(doc: dict, kind: str, words: str) -> list[dict]:
    return [p for p in doc[kind] if words in p["message"]]


def test_command_options_are_read_in_both_spellings():
    cmd = ["--model=/m/a.gguf", "--served-model-name", "a", "b", "--port", "8000"]
    assert option(cmd, "-m", "--model") == "/m/a.gguf"
    assert values(cmd, "--served-model-name") == ["a", "b"]
    assert option(["-m", "/x"], "-m", "--model") == "/x" and option([], "--model") is None


def test_model_file_is_placed_in_its_mount():
    prov = Provider.model_validate({
        "type": "llama_cpp", "base_url": "http://127.0.0.1:8080", "container": {
            "image": "i:1", "port": 8080, "command": ["--model", "/models/sub/x.gguf"],
            "volumes": {"models": "/models", "./host": "/models/sub"}}})
    f = model_file("p", prov)
    assert (f.source, f.mount, f.relative, f.in_volume) == ("./host", "/models/sub", "x.gguf",
                                                            False)
    hf = prov.model_copy(update={"container": prov.container.model_copy(
        update={"command": ["-hf", "org/repo"]})})
    assert model_file("p", hf) is None  # downloaded by the server: nothing to look for


def test_unrouted_provider_is_warned(runner, registry_dir, yaml_edit):
    cfg = registry_dir("shipped")
    yaml_edit(cfg / "model-mappings.yaml", lambda d: d["exact_matches"].pop("llama-cpp-native"))

    def unroute(d):
        d["capabilities"]["chat"]["preferred_models"] = ["llama3.1:latest"]
        d["fallback_chains"]["dolphin-uncensored-vllm"]["chain"] = ["llama3.1:latest"]
        d["fallback_chains"]["qwen2.5-coder:7b"]["chain"] = ["llama3.1:latest"]
        del d["fallback_chains"]["llama3.1:latest"]
    yaml_edit(cfg / "model-mappings.yaml", unroute)
    doc = report(runner, cfg)
    assert doc["ok"], doc["errors"]
    [w] = found(doc, "warnings", "no mapping routes a model to 'llama_cpp_native'")
    assert w["path"] == "providers.llama_cpp_native" and w["line"] == 39
    assert "`stackctl up` starts it" in w["message"]  # llamacpp is a default profile
    assert "stackctl add model llama-cpp-native --provider llama_cpp_native" in w["hint"]


def test_vllm_served_name_must_be_the_registrys(runner, registry_dir, yaml_edit):
    cfg = registry_dir("shipped")

    def rename(d):
        cmd = d["providers"]["vllm-qwen"]["container"]["command"]
        cmd[cmd.index("--served-model-name") + 1] = "qwen-coder"
    yaml_edit(cfg / "providers.yaml", rename)
    [e] = found(report(runner, cfg), "errors", "vLLM answers to qwen-coder")
    assert e["path"] == "providers.vllm-qwen.container.command"
    assert "asks it for qwen-coder-vllm" in e["message"]
    assert "--served-model-name qwen-coder-vllm" in e["hint"]


def test_vllm_without_model_is_an_error(runner, registry_dir, yaml_edit):
    cfg = registry_dir("shipped")
    yaml_edit(cfg / "providers.yaml", lambda d: d["providers"]["vllm-dolphin"]["container"]
              .__setitem__("command", ["--served-model-name", "dolphin-uncensored-vllm"]))
    [e] = found(report(runner, cfg), "errors", "vLLM is started without --model")
    assert e["path"] == "providers.vllm-dolphin.container.command"


def test_llama_model_file_missing_on_a_host_path(runner, registry_dir, yaml_edit, tmp_path):
    cfg = registry_dir("shipped")
    (tmp_path / "models").mkdir()
    yaml_edit(cfg / "providers.yaml", lambda d: d["providers"]["llama_cpp_native"]["container"]
              .__setitem__("volumes", {"../models": "/models"}))
    [e] = found(report(runner, cfg), "errors", "llama.cpp loads /models/model.gguf")
    assert f"{tmp_path}/models/model.gguf does not exist" in e["message"]
    assert "stackctl models import FILE.gguf --provider llama_cpp_native" in e["hint"]
    (tmp_path / "models" / "model.gguf").write_bytes(b"GGUF")
    assert not found(report(runner, cfg), "errors", "llama.cpp loads")


def test_unrouted_provider_no_default_profile_starts(runner, registry_dir):
    cfg = registry_dir("shipped")
    r = runner.invoke(cli, ["add", "provider", "ollama", "spare", "--gpus", "0", "--no-route"],
                      catch_exceptions=False)
    assert r.exit_code == 0, r.output
    [w] = found(report(runner, cfg), "warnings", "no mapping routes a model to 'spare'")
    assert w["message"].endswith("the gateway never sends it a request and no default "
                                 "profile starts it (stack.yaml default_profiles)")
