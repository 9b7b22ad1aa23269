"""Where `init` writes: the registry files as one set (store/writer.py: all new files or
none), an existing registry refused unless --force and then backed up first (as `add`
does: store.registry_files.take_backup), and the monitoring folders the new stack.yaml
points at."""

from __future__ import annotations

import os
from pathlib import Path

import stackctl
from stackctl.onboarding.stackfile import MonitoringDirs
from stackctl.registry.checks import MONITORING_FILES
from stackctl.registry.load import FILES
from stackctl.store.writer import write_set


def existing(folder: Path) -> list[Path]:
    return [folder / n for n in FILES if os.path.lexists(folder / n)]


def write_registry(folder: Path, texts: dict[str, str]) -> list[Path]:
    """Write the files as one set; return those written (unchanged ones are skipped)."""
    return write_set(folder.resolve(), {folder.resolve() / n: t for n, t in texts.items()})


def monitoring_dirs(folder: Path) -> MonitoringDirs | None:
    """stackctl's monitoring/ and grafana-dashboards/, relative to the new config folder:
    the project's own (beside the config folder, as in a clone), else those of the source
    tree stackctl runs from; None when neither is there (an installed wheel)."""
    target = folder.resolve()
    for base in (target.parent, Path(stackctl.__file__).resolve().parents[1]):
        mon, dash = base / "monitoring", base / "grafana-dashboards"
        if (mon / MONITORING_FILES["prometheus"]).is_file() and dash.is_dir():
            return MonitoringDirs(os.path.relpath(mon, target), os.path.relpath(dash, target))
    return None
