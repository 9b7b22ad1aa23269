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


def test_install_comes_before_the_first_stackctl_command():
    text = (REPO / "README.md").read_text()
    install = text.index("pip install -e .")
    first = min(m.start() for m in re.finditer(r"`stackctl \w", text))
    assert install < first


def test_add_your_own_model_commands_run_on_the_shipped_registry(registry_dir):
    """Every `stackctl add` line of the guide, in order, on a copy of config/: each edit is
    accepted and the registry validates after them all."""
    from click.testing import CliRunner

    from stackctl.cli import cli

    text = (REPO / "README.md").read_text()
    guide = text.split("## Add your own model", 1)[1].split("\n## ", 1)[0]
    lines = [line.split("  #")[0].strip() for line in re.findall(r"^stackctl add .*$", guide, re.M)]
    lines.append(re.sub(r"\s+", " ", re.search(r"`(stackctl add provider openai_compatible"
                                                r"[^`]*)`", guide).group(1)))
    assert len(lines) == 4
    registry_dir("shipped")
    runner = CliRunner()
    for line in lines:
        r = runner.invoke(cli, line.split()[1:], catch_exceptions=False)
        assert r.exit_code == 0, (line, r.output)
    r = runner.invoke(cli, ["validate"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
