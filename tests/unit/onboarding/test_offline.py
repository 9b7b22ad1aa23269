"""The offline example as the package ships it."""

from __future__ import annotations

from stackctl.onboarding.files import monitoring_dirs
from stackctl.onboarding.offline import FILES, offline_texts, packaged
from stackctl.onboarding.yamltext import load_text
from stackctl.registry.checks import MONITORING_FILES
from tests.paths import CONFIGS, REPO


def test_the_packaged_copy_is_the_example():
    """`init` writes what examples/offline/config holds: edit both (cp examples/offline/
    config/*.yaml stackctl/onboarding/offline/)."""
    assert packaged() == {n: (CONFIGS["offline"] / n).read_text() for n in FILES}


def test_it_is_package_data():
    assert '"onboarding/offline/*.yaml"' in (REPO / "pyproject.toml").read_text()


def test_written_elsewhere_it_validates_strictly(tmp_path, check_dir):
    target = tmp_path / "config"
    target.mkdir()
    for name, text in offline_texts(monitoring_dirs(target)).items():
        (target / name).write_text(text)
    assert check_dir(target) == ([], [])


def test_without_monitoring_folders_their_services_are_off(tmp_path, check_dir):
    texts = offline_texts(None)
    mon = load_text(texts["stack.yaml"])["monitoring"]
    assert "config_dir" not in mon
    assert all(mon[key]["enabled"] is False for key in MONITORING_FILES)
    assert mon["alertmanager"]["image"].startswith("stackctl-local/")
    target = tmp_path / "config"
    target.mkdir()
    for name, text in texts.items():
        (target / name).write_text(text)
    assert check_dir(target) == ([], [])
