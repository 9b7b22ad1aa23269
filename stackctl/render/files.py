"""The set of generated files: render all, compare with what is on disk, write."""

from __future__ import annotations

import difflib
import hashlib
from dataclasses import dataclass
from pathlib import Path

from ..registry.load import MAPPINGS, PROVIDERS, STACK, Registry
from .compose import render_compose
from .litellm import render_litellm
from .text import to_yaml

COMPOSE_FILE = "compose.yaml"
LITELLM_FILE = "litellm/config.yaml"


@dataclass(frozen=True)
class Generated:
    path: Path
    text: str

    def current(self) -> str | None:
        return self.path.read_text(encoding="utf-8") if self.path.exists() else None

    def is_stale(self) -> bool:
        return self.current() != self.text

    def diff(self, label: str) -> str:
        old = (self.current() or "").splitlines(keepends=True)
        return "".join(difflib.unified_diff(old, self.text.splitlines(keepends=True),
                                            f"{label} (on disk)", f"{label} (from registry)"))


def render_all(reg: Registry) -> list[Generated]:
    sources = [f"{reg.config_dir.name}/{n}" for n in (PROVIDERS, MAPPINGS, STACK)]
    out = reg.output_dir
    litellm = to_yaml(render_litellm(reg), sources)
    digest = hashlib.sha256(litellm.encode()).hexdigest()[:16]
    return [
        Generated(out / COMPOSE_FILE, to_yaml(render_compose(reg, digest), sources)),
        Generated(out / LITELLM_FILE, litellm),
    ]


def write_all(files: list[Generated]) -> list[Path]:
    """Write the stale files (atomically, via a temporary sibling); return those written."""
    written = []
    for f in files:
        if f.is_stale():
            f.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = f.path.with_suffix(f.path.suffix + ".tmp")
            tmp.write_text(f.text, encoding="utf-8")
            tmp.replace(f.path)
            written.append(f.path)
    return written
