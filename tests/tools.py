"""External command-line tools some tests run (promtool, kubectl, tmux)."""

from __future__ import annotations

import os
import shutil

import pytest

# the Debian package that ships each tool (`make engine` installs them)
DEBIAN_PACKAGE = {"promtool": "prometheus", "kubectl": "kubernetes-client"}


def require_tool(name: str) -> str:
    """The tool's path; skip without it, or fail under STACKCTL_REQUIRE_TOOLS=1 (CI)."""
    path = shutil.which(name)
    if path is None:
        msg = f"{name} is not on PATH (Debian: apt-get install {DEBIAN_PACKAGE.get(name, name)})"
        if os.environ.get("STACKCTL_REQUIRE_TOOLS") == "1":
            pytest.fail(msg + " and STACKCTL_REQUIRE_TOOLS=1")
        pytest.skip(msg)
    return path
