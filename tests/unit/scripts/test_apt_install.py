"""scripts/apt-install.sh and scripts/ensure-docker.sh as `make` runs them for root and for
another user, with fake commands on PATH (APT_DRY_RUN prints what would run as root)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.paths import REPO


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    """A PATH of its own: `id` says who runs; nothing else unless a test adds it."""
    path = tmp_path / "bin"
    path.mkdir()
    return path


def fake(bin_dir: Path, name: str, script: str) -> None:
    (bin_dir / name).write_text("#!/bin/sh\n" + script + "\n")
    (bin_dir / name).chmod(0o755)


def as_user(bin_dir: Path, uid: int) -> None:
    fake(bin_dir, "id", f'case "$1" in -u) echo {uid};; *) echo alice;; esac')


def run(script: str, bin_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["/bin/bash", str(REPO / "scripts" / script), *args],
                          env={"PATH": str(bin_dir), "HOME": str(bin_dir.parent), **env},
                          capture_output=True, text=True, timeout=60)


def test_prometheus_is_installed_without_its_service_running(bin_dir, tmp_path):
    # promtool comes with Debian's prometheus, whose service would hold the stack's port 9090
    as_user(bin_dir, 0)
    policy = tmp_path / "policy-rc.d"
    r = run("apt-install.sh", bin_dir, "prometheus", APT_DRY_RUN="1", APT_POLICY_RC=str(policy))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    write = next(i for i, line in enumerate(lines) if "exit 101" in line and str(policy) in line)
    install = next(i for i, line in enumerate(lines) if "install -y" in line)
    remove = lines.index(f"run: rm -f {policy}")
    assert write < install < remove  # no service may start while apt runs
    assert "run: /etc/init.d/prometheus stop" in lines  # this PATH has no systemctl
    assert not any(line.startswith("run: sudo") for line in lines)


def test_another_user_installs_through_sudo_or_is_told_how(bin_dir, tmp_path):
    as_user(bin_dir, 1000)
    policy = str(tmp_path / "policy-rc.d")
    r = run("apt-install.sh", bin_dir, "wrk", APT_DRY_RUN="1", APT_POLICY_RC=policy)
    assert r.returncode == 1 and "needs root and there is no sudo" in r.stderr
    assert "apt-get install wrk" in r.stderr
    fake(bin_dir, "sudo", 'exec "$@"')
    r = run("apt-install.sh", bin_dir, "wrk", APT_DRY_RUN="1", APT_POLICY_RC=policy)
    assert r.returncode == 0, r.stderr
    assert all(line.startswith("run: sudo ") for line in r.stdout.splitlines())


def test_ensure_docker_tells_a_user_without_socket_access_how_to_get_it(bin_dir):
    # the engine runs, but this user is not in the docker group: starting a second dockerd
    # (through sudo) would not help
    as_user(bin_dir, 1000)
    for tool in ("dockerd", "mmdebstrap"):
        fake(bin_dir, tool, "exit 0")
    fake(bin_dir, "docker", 'case "$1" in --version) echo "Docker version 20.10";; *) '
         'echo "permission denied while trying to connect to the Docker daemon socket" >&2; '
         'exit 1;; esac')
    for tool in ("dirname",):
        os.symlink(shutil.which(tool), bin_dir / tool)
    r = run("ensure-docker.sh", bin_dir)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "alice may not use its socket: sudo usermod -aG docker alice" in r.stderr
    assert "starting" not in r.stdout
