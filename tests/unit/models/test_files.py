"""`models import FILE.gguf`: where the file goes (a plan, as data), then the command on a
host folder (copied) and on a named volume (the fake Docker adapter records the copy)."""

from __future__ import annotations

from pathlib import Path

import pytest

from stackctl.cli import cli
from stackctl.models.files import ImportRefused, plan_import
from stackctl.registry.load import load_registry
from tests.fakes.docker import FakeDocker


@pytest.fixture
def gguf(tmp_path) -> Path:
    path = tmp_path / "Phi-4-Q4_K_M.gguf"
    path.write_bytes(b"GGUF" + b"\0" * 60)
    return path


def test_plan_takes_the_file_its_model_option_loads(registry_dir, gguf):
    reg = load_registry(registry_dir("shipped"))
    plan = plan_import(reg, "llama_cpp_native", gguf)
    assert (plan.inside, plan.volume, plan.host_path, plan.note) == \
        ("/models/model.gguf", "llamacpp-models", None, None)
    plan = plan_import(reg, "llama_cpp_native", gguf, name="phi.gguf")
    assert plan.inside == "/models/phi.gguf" and plan.profile == "llamacpp"
    assert plan.note == ("its --model loads /models/model.gguf: set --model /models/phi.gguf "
                         "in its container.command to load this file")


def test_plan_refuses_what_holds_no_gguf(registry_dir, gguf):
    reg = load_registry(registry_dir("offline"))
    with pytest.raises(ImportRefused, match="Ollama keeps its own store"):
        plan_import(reg, "ollama", gguf)
    with pytest.raises(ImportRefused, match=r"mounts no volume .*\{llama_cpp-models: /models\}"):
        plan_import(reg, "llama_cpp", gguf)  # the offline image holds its model
    with pytest.raises(ImportRefused, match="no provider 'nope' \\(llama.cpp providers: "
                       "llama_cpp\\)"):
        plan_import(reg, "nope", gguf)


def test_import_into_a_host_folder(runner, registry_dir, yaml_edit, gguf, tmp_path):
    cfg = registry_dir("shipped")
    yaml_edit(cfg / "providers.yaml", lambda d: d["providers"]["llama_cpp_native"]["container"]
              .__setitem__("volumes", {"../models": "/models"}))
    r = runner.invoke(cli, ["validate", "-C", str(cfg)], catch_exceptions=False)
    assert r.exit_code == 1 and "llama.cpp loads /models/model.gguf" in r.output
    # the one error `models import` fixes does not stop it
    r = runner.invoke(cli, ["models", "import", str(gguf), "-p", "llama_cpp_native",
                            "-C", str(cfg)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert (tmp_path / "models" / "model.gguf").read_bytes() == gguf.read_bytes()
    assert "copied" in r.output and "models/model.gguf (/models/model.gguf in " \
                                    "llama_cpp_native)" in r.output
    assert runner.invoke(cli, ["validate", "-C", str(cfg)]).exit_code == 0


def test_import_into_a_volume_through_the_providers_container(runner, registry_dir, gguf,
                                                              monkeypatch):
    cfg = registry_dir("shipped")
    docker = FakeDocker(project="stackctl")
    monkeypatch.setattr("stackctl.docker.adapter.Docker", lambda *a, **k: docker)
    r = runner.invoke(cli, ["models", "import", str(gguf), "-p", "llama_cpp_native",
                            "-C", str(cfg)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert docker.calls == [("create", "llama_cpp_native"),
                            ("copy_into", "stackctl-llama_cpp_native-1", str(gguf),
                             "/models/model.gguf")]
    assert "copied" in r.output and "into llama_cpp_native's volume llamacpp-models as " \
                                    "/models/model.gguf" in r.output
    assert "next: `stackctl up -p llamacpp`" in r.output


def test_import_refuses_a_file_that_is_no_gguf(runner, registry_dir, tmp_path):
    cfg = registry_dir("shipped")
    (tmp_path / "x.bin").write_bytes(b"PK\3\4")
    r = runner.invoke(cli, ["models", "import", str(tmp_path / "x.bin"), "-p",
                            "llama_cpp_native", "-C", str(cfg)], catch_exceptions=False)
    assert r.exit_code == 1 and "not a GGUF file" in r.output
    r = runner.invoke(cli, ["models", "import", "absent.gguf", "-p", "llama_cpp_native",
                            "-C", str(cfg)], catch_exceptions=False)
    assert r.exit_code == 1 and "absent.gguf: no such file" in r.output


def test_import_without_an_engine_exits_4(runner, registry_dir, gguf, monkeypatch):
    cfg = registry_dir("shipped")

    def unreachable(*a, **k):
        from stackctl.docker.adapter import EngineUnreachable

        raise EngineUnreachable("no Docker engine answers")
    monkeypatch.setattr("stackctl.docker.adapter.Docker", unreachable)
    r = runner.invoke(cli, ["models", "import", str(gguf), "-p", "llama_cpp_native",
                            "-C", str(cfg)], catch_exceptions=False)
    assert r.exit_code == 4, r.output
