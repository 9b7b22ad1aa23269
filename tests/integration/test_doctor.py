"""Issue 10 on the real engine: `doctor` on a healthy machine with a running stack exits 0 and
counts the stack's own ports as ours; with the engine "stopped" (DOCKER_HOST at a socket
where nothing listens, as a stopped engine looks to the CLI) it fails naming the fix, and
the other checks still run."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(shared_stack):
    # the session's shared stack (conftest.py): its default profiles run
    return shared_stack


def test_healthy_machine_exits_0_and_counts_its_own_ports(stack):
    r = stack.run("doctor", timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = {line.split(":", 1)[0][2:]: line for line in r.stdout.splitlines()
             if line[:1] in "✓!✗"}
    assert list(lines) == ["engine", "compose", "nvidia", "disk", "registry", "ports", "images",
                           "models", "env"]
    assert lines["engine"].startswith("✓ engine: Docker Engine ")
    assert lines["compose"].startswith("✓ compose: Docker Compose v2.")
    assert lines["images"].startswith("✓ images: all 4 image(s)")
    # llama.cpp's GGUF is in its volume (a missing one is named here, not found at `up`)
    assert lines["models"].startswith("✓ models:"), lines["models"]
    # litellm, redis, llama_cpp, ollama and vllm-qwen run (the default profiles): their
    # ports are the stack's own, not conflicts
    assert lines["ports"].startswith("✓ ports:") and "5 used by this stack" in lines["ports"], \
        lines["ports"]
    assert lines["env"].startswith("✓ env:") and "mode 0600" in lines["env"]
    assert stack.key not in r.stdout  # the secret's name, never its value

    doc = json.loads(stack.run("doctor", "--json", timeout=120).stdout)
    assert doc["ok"] is True
    assert {c["name"]: c["status"] for c in doc["checks"]}["ports"] == "ok"


def test_engine_stopped_fails_naming_the_fix(stack, tmp_path):
    nowhere = f"unix://{tmp_path}/nothing.sock"
    env = {**os.environ, "DOCKER_HOST": nowhere}
    r = subprocess.run([sys.executable, "-m", "stackctl", "doctor", "-C", str(stack.config)],
                       capture_output=True, text=True, timeout=120, cwd=stack.root, env=env)
    assert r.returncode == 1, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("✗ engine: no Docker engine answers")
    assert nowhere in lines[0]
    assert lines[1].startswith("    fix: start one: scripts/ensure-docker.sh")
    assert f"DOCKER_HOST (now {nowhere})" in lines[1]
    assert "Traceback" not in r.stdout + r.stderr
    # the checks that need no engine still ran
    assert any(line.startswith("✓ compose:") for line in lines)
    assert any(line.startswith("✓ registry:") for line in lines)
    assert any(line.startswith("✓ env:") for line in lines)
    assert lines[-1].endswith("1 failed")
