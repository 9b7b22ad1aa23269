"""init --from on the legacy fixtures: the result validates with 0 errors, keeps the user's
names and comments, and every item is located in the old files."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from stackctl.onboarding.files import monitoring_dirs
from stackctl.onboarding.migrate import migrate
from stackctl.registry.problems import RegistryError
from tests.paths import FIXTURES

LEGACY, EXTRA = FIXTURES / "legacy", FIXTURES / "legacy-extra"


def write(texts: dict[str, str], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in texts.items():
        (folder / name).write_text(text)
    return folder


@pytest.mark.parametrize("fixture", [LEGACY, EXTRA], ids=["legacy", "legacy-extra"])
def test_the_result_validates(fixture, tmp_path, check_dir):
    target = tmp_path / "config"
    result = migrate(fixture, monitoring_dirs(target))
    errors, _ = check_dir(write(result.texts, target))
    assert errors == []
    for item in result.items:
        assert item.file.endswith((".yaml", ".yml")) and item.message, item
        if item.line is not None:
            source = (fixture / Path(item.file).name).read_text().splitlines()
            assert item.line <= len(source)


def test_before_and_after(tmp_path, check_dir):
    """The figures of the note: the old files as they are, then migrated."""
    old = tmp_path / "old"
    shutil.copytree(LEGACY, old)
    errors, warnings = check_dir(old)
    assert (len(errors), len(warnings)) == (12, 13)  # 13: no monitoring folder beside it
    result = migrate(LEGACY, monitoring_dirs(tmp_path / "new"))
    errors, warnings = check_dir(write(result.texts, tmp_path / "new"))
    assert (len(errors), len(warnings)) == (0, 12)  # the routing the gateway cannot enforce


def test_names_and_comments_are_kept():
    result = migrate(LEGACY, None)
    old = (LEGACY / "providers.yaml").read_text()
    new = result.texts["providers.yaml"]
    for line in old.splitlines():
        if line.strip().startswith("#"):
            assert line in new, line  # every comment line of the old file
    for name in ("ollama_gpu", "llamacpp_bindings", "llamacpp_server", "vllm-main", "vllm-alt",
                 "remote_ollama", "together", "byo_openai"):
        assert f"\n  {name}:\n" in new
    mappings = result.texts["model-mappings.yaml"]
    assert '"mistral:7b-instruct":' in mappings and "fallback: null" in mappings
    assert re.search(r"fallback: tinyllama-q4 +# a provider where a model belongs", mappings)


def test_default_profiles_start_what_ran_and_one_gpu_member():
    result = migrate(LEGACY, None)
    assert result.default_profiles == ["ollama_gpu", "llamacpp_bindings", "llamacpp_server",
                                       "vllm-main"]
    stack = result.texts["stack.yaml"]
    assert "gpu0:" in stack and "memory_gib: 12" in stack
    assert "enabled: false" in stack  # no monitoring folders given: those services are off


def test_the_report_of_the_legacy_fixture():
    items = {(i.kind, i.path): i for i in migrate(LEGACY, None).items}
    item = items[("changed", "exact_matches.mistral-vllm.fallback")]
    assert (item.file.endswith("legacy/model-mappings.yaml"), item.line) == (True, 34)
    assert item.message == "provider 'ollama_gpu' → its model 'mistral:7b-instruct'"
    assert items[("changed", "providers.vllm-main.gpu_memory_utilization")].line == 72
    assert items[("changed", "providers.vllm-alt.status")].message.startswith("disabled → active")
    assert items[("dropped", "providers.llamacpp_bindings.service_file")].line == 47
    assert items[("dropped", "routing_rules")].line == 144
    assert ("dropped", "patterns[1]") in items  # vllm-alt is enabled: its patterns stay


def test_extra_fixture_items():
    result = migrate(EXTRA, None)
    paths = {(i.kind, i.path) for i in result.items}
    assert ("changed", "providers.Desk-Ollama") in paths
    assert ("dropped", "providers.desk-ollama.port_note") in paths
    assert ("dropped", "exact_matches.old-model") in paths
    assert any(i.file.endswith("litellm-unified.yaml") and i.line == 1 for i in result.items)
    assert "desk-ollama" in result.texts["model-mappings.yaml"]
    assert "Desk-Ollama" not in result.texts["model-mappings.yaml"].replace(
        "# upper case", "")


@pytest.mark.parametrize(("files", "where", "words"), [
    ({"providers.yaml": "providers:\n\tx: 1\n", "model-mappings.yaml": "{}\n"},
     "providers.yaml:2:1", "indented with a tab"),
    ({"providers.yaml": "providers: {}\n", "model-mappings.yaml": "a: [\n"},
     "model-mappings.yaml:2", "invalid YAML"),
    ({"providers.yaml": "providers: {}\n"}, "model-mappings.yaml", "file not found"),
    ({"providers.yaml": "- a\n", "model-mappings.yaml": "{}\n"},
     "providers.yaml:1", "expected a mapping"),
])
def test_unreadable_old_files_are_located(tmp_path, files, where, words):
    write(files, tmp_path / "old")
    with pytest.raises(RegistryError) as exc:
        migrate(tmp_path / "old", None)
    text = str(exc.value)
    assert where in text and words in text, text
