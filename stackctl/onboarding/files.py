"""Where `init` writes: the registry files as one set (store/writer.py: all new files or
none), an existing registry refused unless --force and then backed up first, and the
monitoring folders the new stack.yaml points at."""

from __future__ import annotations

import os
import shutil
from datetime import datetime
from pathlib import Path

import stackctl
from stackctl.errors import PlanError
from stackctl.onboarding.stackfile import MonitoringDirs
from stackctl.store.writer import write_set

REGISTRY_FILES = ("providers.yaml", "model-mappings.yaml", "stack.yaml")
# inside the config folder, where `stackctl add` keeps its backups too (same IDs: the UTC
# time, -2 on a tie), so one folder holds every backup of the registry
BACKUPS = ".backups"
ID_FORMAT = "%Y%m%dT%H%M%SZ"


def existing(folder: Path) -> list[Path]:
    return [folder / n for n in REGISTRY_FILES if os.path.lexists(folder / n)]


def backup(folder: Path, now: datetime) -> Path:
    """Copy the registry files into BACKUPS/<UTC time>/ (whole or absent: copied to a
    staging folder, renamed when complete); return that folder."""
    root = folder / BACKUPS
    name, n = now.strftime(ID_FORMAT), 1
    while (root / name).exists():
        n += 1
        name = f"{now.strftime(ID_FORMAT)}-{n}"
    staging = root / f".{name}.tmp"
    try:
        staging.mkdir(parents=True)
        for path in existing(folder):
            shutil.copy2(path, staging / path.name, follow_symlinks=False)
        staging.rename(root / name)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise PlanError(f"could not back up the registry in {root}: {exc.strerror or exc}; "
                        "nothing was changed") from None
    return root / name


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
        if (mon / "prometheus" / "alerts.yml").is_file() and dash.is_dir():
            return MonitoringDirs(os.path.relpath(mon, target), os.path.relpath(dash, target))
    return None
