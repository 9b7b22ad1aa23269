"""Shared bits for the benchmarks: an offline stack copy in tmp and medians."""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def offline_copy(project: str) -> Path:
    """examples/offline/config copied to a temp folder with its own project name."""
    root = Path(tempfile.mkdtemp(prefix="stackctl-bench-"))
    shutil.copytree(REPO / "examples/offline/config", root / "config")
    stack = root / "config" / "stack.yaml"
    stack.write_text(stack.read_text().replace("project: stackctl-offline",
                                               f"project: {project}"))
    return root / "config"


def implementations(baseline: str | None) -> dict[str, list[str]]:
    """name → command prefix: this checkout's stackctl, and with `baseline` (a git ref) that
    commit's stackctl, checked out into a temporary folder and run from there with the same
    interpreter, so both are measured side by side in one run."""
    impls = {"current": [sys.executable, "-m", "stackctl"]}
    if baseline:
        where = Path(tempfile.mkdtemp(prefix="stackctl-baseline-"))
        archive = subprocess.run(["git", "-C", str(REPO), "archive", baseline, "stackctl"],
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(where)], input=archive, check=True)
        probe = subprocess.run([sys.executable, "-c", "import stackctl; print(stackctl.__file__)"],
                               capture_output=True, text=True, cwd=where, check=True).stdout
        assert probe.startswith(str(where)), f"the baseline imports {probe.strip()}"
        # `python -m` puts the working directory first on sys.path: run it from there
        impls[baseline] = ["env", "-C", str(where), sys.executable, "-m", "stackctl"]
    return impls


def stackctl(*args: str, check: bool = True, cmd: list[str] | None = None
             ) -> subprocess.CompletedProcess:
    r = subprocess.run([*(cmd or [sys.executable, "-m", "stackctl"]), *args],
                       capture_output=True, text=True)
    if check and r.returncode != 0:
        raise SystemExit(f"stackctl {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}")
    return r


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - start


def median(values: list[float]) -> float:
    return statistics.median(values)


def verdict(name: str, value: float, target: float, unit: str = "") -> str:
    ok = "PASS" if value <= target else "FAIL"
    return f"{name}: {value:.3f}{unit} (target <= {target}{unit}) {ok}"
