"""The stack's .env: secrets live here, created on first use, never printed."""

from __future__ import annotations

import os
from pathlib import Path


def read_env(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    if not path.exists():
        return out
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            out[key.strip()] = value.strip().strip("'\"")
    return out


def ensure_secrets(path: Path, names: list[str]) -> list[str]:
    """Add a random value for each missing name (file mode 0600); return the names added."""
    current = read_env(path)
    missing = [n for n in names if not current.get(n)]
    if missing:
        import secrets

        lines = [f"{n}=sk-{secrets.token_urlsafe(24)}" for n in missing]
        existing = path.read_text(encoding="utf-8") if path.exists() else \
            "# Secrets for the stack (created by stackctl). Keep out of version control.\n"
        if existing and not existing.endswith("\n"):
            existing += "\n"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(existing + "\n".join(lines) + "\n", encoding="utf-8")
        os.chmod(path, 0o600)
    return missing
