"""What the renderers write from hostile but accepted input (issue #22): a folder name
cannot break out of the header comment, host-path volumes give a Compose file that loads,
and Kubernetes gets names and volumes it accepts or a located error, never a traceback."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from stackctl.cli import cli
from stackctl.registry.load import load_registry
from stackctl.render.compose import render_compose
from stackctl.render.kubernetes import render_kubernetes
from stackctl.render.text import sources, to_yaml
from tests.registry_edits import set_in


@pytest.mark.parametrize("name", ["cfg\nservices:\n  evil: {image: x}\n#", "a\rb", "esc\x1b[2Jx",
                                  "tab\tname", "rtl\u202eg"])
def test_folder_name_stays_inside_the_header_comment(registry_dir, tmp_path, name):
    cfg = registry_dir("offline")
    odd = cfg.parent / name
    shutil.copytree(cfg, odd)
    reg = load_registry(odd)
    text = to_yaml(render_compose(reg), sources(reg))
    lines = text.splitlines()
    assert lines[0].startswith("# GENERATED") and lines[1].startswith("# Do not edit")
    assert lines[2] == "name: stackctl-offline"
    assert "\x1b" not in text and "\u202e" not in text
    assert set(YAML(typ="safe").load(text)["services"]) == \
        set(render_compose(reg)["services"])


def test_ordinary_folder_names_are_written_as_they_are(registry_dir):
    reg = load_registry(registry_dir("offline"))
    assert sources(reg)[0] == "config/providers.yaml"


HOST_VOLUMES = {"gpu0-sim": "/gpu", "./models": "/models", "../elsewhere": "/shared",
                "/srv/llm/cache": "/cache"}


def _with_host_volumes(registry_dir, yaml_edit) -> Path:
    cfg = registry_dir("offline")
    yaml_edit(cfg / "providers.yaml",
              set_in("providers", "vllm-qwen", "container", "volumes", dict(HOST_VOLUMES)))
    return cfg


def test_host_paths_are_bind_mounts_relative_to_the_config_folder(registry_dir, yaml_edit):
    cfg = _with_host_volumes(registry_dir, yaml_edit)
    reg = load_registry(cfg)
    doc = render_compose(reg)
    mounts = doc["services"]["vllm-qwen"]["volumes"]
    # the compose file lives in ../compose: ./models of the config folder is ../config/models
    assert mounts == ["gpu0-sim:/gpu", "../config/models:/models", "../elsewhere:/shared",
                      "/srv/llm/cache:/cache"]
    for mount in mounts[1:]:
        source = mount.split(":")[0]
        assert (reg.output_dir / source).resolve() == \
            (cfg / next(k for k, v in HOST_VOLUMES.items() if mount.endswith(v))).resolve()
    # only named volumes are declared: a path there is a volume name Compose refuses
    assert set(doc["volumes"]) == {"gpu0-sim", "prometheus-data", "alertmanager-data",
                                   "pushgateway-data"}


def test_kubernetes_mounts_host_paths_as_host_path_volumes(registry_dir, yaml_edit):
    cfg = _with_host_volumes(registry_dir, yaml_edit)
    reg = load_registry(cfg)
    deployment = render_kubernetes(reg)["provider-vllm-qwen.yaml"][0]
    pod = deployment["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["gpu0-sim"] == {"name": "gpu0-sim", "emptyDir": {}}
    assert volumes["host-1"]["hostPath"]["path"] == str((cfg / "models").resolve())
    assert volumes["host-3"]["hostPath"]["path"] == "/srv/llm/cache"
    mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    assert mounts == {"gpu0-sim": "/gpu", "host-1": "/models", "host-2": "/shared",
                      "host-3": "/cache"}


@pytest.mark.parametrize("edit, where", [
    (("providers", "llama_cpp", "1llm"), "providers.1llm"),
    (("providers", "llama_cpp", "x" * 64), "providers." + "x" * 64),
    (("providers", "llama_cpp", "redis_"), "providers.redis_"),
    (("providers", "vllm-dolphin", "vllm_qwen"), "providers.vllm_qwen"),
])
def test_generate_for_kubernetes_refuses_names_it_cannot_write(registry_dir, yaml_edit,
                                                               edit, where):
    from tests.registry_edits import rename

    cfg = registry_dir("offline")
    yaml_edit(cfg / "providers.yaml", rename(*edit))
    old = edit[1]
    text = (cfg / "model-mappings.yaml").read_text()
    (cfg / "model-mappings.yaml").write_text(text.replace(f"provider: {old}\n",
                                                          f"provider: {edit[2]}\n"))
    r = _generate(cfg, "--target", "kubernetes")
    assert r.exit_code == 1, r.output
    assert "Traceback" not in r.output and r.exception is None or isinstance(r.exception,
                                                                             SystemExit)
    located = [ln for ln in r.output.splitlines() if "providers.yaml:" in ln
               and f"error: {where}:" in ln]
    assert located, r.output
    assert not (cfg.parent / "compose" / "kubernetes").exists()
    # the compose target takes the same name
    assert _generate(cfg).exit_code == 0


def _generate(cfg: Path, *args: str):
    from click.testing import CliRunner

    return CliRunner().invoke(cli, ["generate", "-C", str(cfg), *args])
