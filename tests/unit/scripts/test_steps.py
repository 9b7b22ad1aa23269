"""scripts/step.py, the step runner of `make up` / `make test`: one line per step, the whole
output in a log file, the log's tail and path on failure (fake commands, no Docker)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.paths import REPO

STEP = REPO / "scripts" / "step.py"


@pytest.fixture(scope="module")
def step():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("step", STEP)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(tmp_path: Path, *args: str, stdlib_only: bool = False) -> subprocess.CompletedProcess:
    # -S: no site-packages, so no rich: what the first step of a fresh machine runs with
    python = [sys.executable, "-S"] if stdlib_only else [sys.executable]
    env = {k: v for k, v in os.environ.items() if k != "STEP_LOG_DIR"}
    env["PYTHONIOENCODING"] = "utf-8"
    return subprocess.run([*python, str(STEP), *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)


def test_success_prints_one_line_and_logs_everything(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "ok.log"
    r = run(tmp_path, "install", "--log", str(log), "--",
            "sh", "-c", "for i in $(seq 300); do echo pip noise $i; done")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [r.stdout.strip()]
    assert r.stdout.startswith("✓ install  ")
    text = log.read_text()
    assert "pip noise 1\n" in text and "pip noise 300\n" in text


def test_failure_shows_the_last_lines_and_the_log_path(tmp_path: Path) -> None:
    r = run(tmp_path, "docker engine", "--",
            "sh", "-c", "for i in $(seq 50); do echo line$i; done; exit 3", stdlib_only=True)
    assert r.returncode == 3
    out = r.stdout.splitlines()
    assert out[0].startswith("✗ docker engine failed (exit 3) after ")
    assert [line.strip() for line in out[1:-1]] == [f"line{i}" for i in range(31, 51)]
    assert out[-1] == "  full log: .logs/docker-engine.log"
    assert "line1\n" in (tmp_path / ".logs" / "docker-engine.log").read_text()


def test_detail_lines_name_the_outcome(tmp_path: Path) -> None:
    r = run(tmp_path, "engine", "--detail", "[ensure-docker] ", "--",
            "sh", "-c", "echo '[ensure-docker] apt-get install'; echo apt noise; "
                        "echo '[ensure-docker] ready: engine 20.10'")
    assert r.returncode == 0
    assert r.stdout.strip().endswith("(ready: engine 20.10)")
    assert "apt noise" not in r.stdout


def test_tee_passes_the_output_through_and_adds_nothing_on_success(tmp_path: Path) -> None:
    r = run(tmp_path, "up", "--tee", "--", "sh", "-c", "echo stack is up; echo try: curl")
    assert r.returncode == 0
    assert r.stdout.splitlines() == ["stack is up", "try: curl"]
    r = run(tmp_path, "up", "--tee", "--", "sh", "-c", "echo oops; exit 1")
    assert r.returncode == 1
    assert r.stdout.splitlines()[0] == "oops"
    assert "full log: .logs/up.log" in r.stdout


def test_a_step_ends_when_its_command_exits_though_a_daemon_it_started_holds_the_pipe(
        tmp_path: Path) -> None:
    # what `make engine` does when it starts dockerd: CI once waited 88 minutes for EOF
    r = run(tmp_path, "engine", "--", "sh", "-c", "echo started; sleep 120 & echo ready")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("✓ engine  ")
    assert (tmp_path / ".logs" / "engine.log").read_text().endswith("started\nready\n")


def test_a_missing_command_is_a_clear_failure(tmp_path: Path) -> None:
    r = run(tmp_path, "x", "--", str(tmp_path / "no-such-tool"))
    assert r.returncode == 127
    assert "cannot run" in r.stdout and "Traceback" not in r.stderr


def test_a_long_step_says_it_is_still_running_when_not_on_a_terminal(
    step, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(step, "HEARTBEAT_FIRST", 0.1)
    rc = step.run("compiling", ["sh", "-c", "sleep 0.5"], tmp_path / "c.log")
    out = capsys.readouterr().out.splitlines()
    assert rc == 0
    assert out[0].startswith("… compiling (still running, 0s)")
    assert out[-1].startswith("✓ compiling  0.")


def test_elapsed_reads_as_minutes_and_seconds(step) -> None:  # type: ignore[no-untyped-def]
    assert step.elapsed(5.26, precise=True) == "5.3s"
    assert step.elapsed(192) == "3m12s"
    assert step.slug("install: venv + pip install -e '.[dev]'") == "install-venv-pip-install-e-dev"
