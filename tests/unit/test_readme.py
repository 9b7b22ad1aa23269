"""The README stays true: its command help is generated (cog) and its JSON example parses."""

from __future__ import annotations

import json
import re
import subprocess
import sys

from tests.paths import REPO


def test_command_help_in_readme_is_current():
    r = subprocess.run([sys.executable, "-m", "cogapp", "--check", "README.md"], cwd=REPO,
                       capture_output=True, text=True)
    assert r.returncode == 0, "README command help is stale: run `cog -r README.md`\n" + r.stderr


def test_readme_starts_with_the_two_commands():
    text = (REPO / "README.md").read_text()
    first_block = re.search(r"```sh\n(.*?)```", text, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in first_block.splitlines() if line.strip()]
    assert commands == ["make up", "make test"]


def test_status_json_example_has_the_documented_keys():
    text = (REPO / "README.md").read_text()
    block = text.split("### `stackctl status --json`", 1)[1]
    doc = json.loads(re.search(r"```json\n(.*?)```", block, re.S).group(1))
    assert {"gateway", "services", "gpu_groups", "healthy"} <= set(doc)
    assert {"url", "healthy", "models"} <= set(doc["gateway"])
    assert {"name", "profile", "state", "health", "port", "models"} <= set(doc["services"][0])
    assert set(doc["gpu_groups"]["gpu0"]) == {"active", "members", "mode", "running", "asleep"}
