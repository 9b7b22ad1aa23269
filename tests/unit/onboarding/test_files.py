"""Backups, the one-set write and where the monitoring folders are."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pytest

from stackctl.errors import PlanError
from stackctl.onboarding.files import backup, existing, monitoring_dirs, write_registry
from tests.paths import REPO

NOW = datetime(2026, 12, 6, 17, 0, 0, tzinfo=UTC)


def test_backup_copies_the_registry_files_whole(tmp_path):
    (tmp_path / "providers.yaml").write_text("p")
    (tmp_path / "stack.yaml").write_text("s")
    (tmp_path / "other.txt").write_text("o")
    assert [p.name for p in existing(tmp_path)] == ["providers.yaml", "stack.yaml"]
    first, second = backup(tmp_path, NOW), backup(tmp_path, NOW)
    assert first.name == "20261206T170000Z" and second.name == "20261206T170000Z-2"
    assert sorted(p.name for p in first.iterdir()) == ["providers.yaml", "stack.yaml"]
    assert (first / "providers.yaml").read_text() == "p"
    assert not [p for p in first.parent.iterdir() if p.name.endswith(".tmp")]


def test_a_failed_backup_leaves_nothing(tmp_path, monkeypatch):
    (tmp_path / "providers.yaml").write_text("p")

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("stackctl.onboarding.files.shutil.copy2", full)
    with pytest.raises(PlanError, match="No space left on device; nothing was changed"):
        backup(tmp_path, NOW)
    assert list((tmp_path / ".backups").iterdir()) == []


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
