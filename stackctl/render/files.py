"""The set of generated files: render them all, and compare each with what is on disk
(stackctl/store/generated.py writes them)."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

from stackctl.registry.catalog import monitoring_components
from stackctl.registry.load import Registry
from stackctl.registry.vocabulary import (
    ALERTMANAGER_FILE,
    COMPOSE_FILE,
    KUBERNETES_DIR,
    LITELLM_FILE,
    PROMETHEUS_FILE,
    RELAY_FILE,
    SWARM_FILE,
)
from stackctl.render.alertmanager import relay_text, relayed, render_alertmanager
from stackctl.render.callbacks import callback_files
from stackctl.render.compose import render_compose
from stackctl.render.kubernetes import kubernetes_texts
from stackctl.render.litellm import render_litellm
from stackctl.render.prometheus import render_prometheus
from stackctl.render.swarm import swarm_text
from stackctl.render.text import sources, to_yaml


@dataclass(frozen=True)
class Generated:
    path: Path
    text: str

    def current(self) -> str | None:
        """The text on disk; None when absent or not a regular file of ours (a symlink is
        never followed: it could lead outside the folder, and --check prints diffs)."""
        if self.path.is_symlink() or not self.path.is_file():
            return None
        try:
            return self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return None

    def is_stale(self) -> bool:
        return self.current() != self.text

    def diff(self, label: str) -> str:
        old = (self.current() or "").splitlines(keepends=True)
        return "".join(difflib.unified_diff(old, self.text.splitlines(keepends=True),
                                            f"{label} (on disk)", f"{label} (from registry)"))


def render_all(reg: Registry, targets: tuple[str, ...] = ("compose",)) -> list[Generated]:
    """The compose set (the gateway's config and callbacks in it serve every target), plus
    the Swarm stack file for "swarm" and a kustomize folder for "kubernetes"."""
    files = _compose_set(reg)
    if "swarm" in targets:
        files.append(Generated(reg.output_dir / SWARM_FILE, swarm_text(reg)))
    if "kubernetes" in targets:
        folder = reg.output_dir / KUBERNETES_DIR
        files += [Generated(folder / name, text)
                  for name, text in sorted(kubernetes_texts(reg).items())]
    return files


def _compose_set(reg: Registry) -> list[Generated]:
    names = sources(reg)
    out = reg.output_dir
    files = [
        Generated(out / COMPOSE_FILE, to_yaml(render_compose(reg), names)),
        Generated(out / LITELLM_FILE, to_yaml(render_litellm(reg), names)),
    ]
    files += [Generated(out / path, text) for path, text in callback_files(reg).items()]
    running = monitoring_components(reg)
    if "prometheus" in running:
        files.append(Generated(out / PROMETHEUS_FILE, to_yaml(render_prometheus(reg), names)))
    if "alertmanager" in running:
        files.append(Generated(out / ALERTMANAGER_FILE,
                               to_yaml(render_alertmanager(reg), names)))
        if relayed(reg):
            files.append(Generated(out / RELAY_FILE, relay_text()))
    return files
