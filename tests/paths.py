"""Where things are in the repository, for every test: one definition instead of one
`Path(__file__).parents[n]` per module (which breaks when a module moves)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]  # the repository's root
GOLDEN = REPO / "tests" / "golden"  # renderer output per registry: golden/<registry>/...
FIXTURES = REPO / "tests" / "fixtures"
# the two registries the repository ships, by the names the tests give them
CONFIGS = {"shipped": REPO / "config", "offline": REPO / "examples" / "offline" / "config"}
