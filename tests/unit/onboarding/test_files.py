"""Which registry files are there, the one-set write and where the monitoring folders are
(the backup is `add`'s: tests/unit/store/test_registry_files.py)."""

from __future__ import annotations

import os

from stackctl.onboarding.files import existing, monitoring_dirs, write_registry
from tests.paths import REPO


def test_existing_lists_the_registry_files_there(tmp_path):
    (tmp_path / "providers.yaml").write_text("p")
    (tmp_path / "stack.yaml").write_text("s")
    (tmp_path / "other.txt").write_text("o")
    assert [p.name for p in existing(tmp_path)] == ["providers.yaml", "stack.yaml"]


def test_write_registry_skips_unchanged_files(tmp_path):
    texts = {"providers.yaml": "a: 1\n", "stack.yaml": "b: 2\n"}
    assert len(write_registry(tmp_path / "new", texts)) == 2
    (tmp_path / "new" / "stack.yaml").write_text("b: 3\n")
    assert [p.name for p in write_registry(tmp_path / "new", texts)] == ["stack.yaml"]


def test_monitoring_folders_beside_the_config_folder_first(tmp_path):
    (tmp_path / "monitoring" / "prometheus").mkdir(parents=True)
    (tmp_path / "monitoring" / "prometheus" / "alerts.yml").write_text("groups: []\n")
    (tmp_path / "grafana-dashboards").mkdir()
    dirs = monitoring_dirs(tmp_path / "config")
    assert (dirs.config_dir, dirs.dashboards_dir) == ("../monitoring", "../grafana-dashboards")


def test_else_those_of_the_source_tree(tmp_path):
    dirs = monitoring_dirs(tmp_path / "config")
    assert os.path.normpath(tmp_path / "config" / dirs.config_dir) == str(REPO / "monitoring")


def test_none_without_either(tmp_path, monkeypatch):
    monkeypatch.setattr("stackctl.onboarding.files.stackctl.__file__",
                        str(tmp_path / "site-packages" / "stackctl" / "__init__.py"))
    assert monitoring_dirs(tmp_path / "config") is None
