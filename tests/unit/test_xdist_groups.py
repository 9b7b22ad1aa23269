"""`make test` runs on pytest-xdist workers and relies on `--dist loadgroup` to keep the
modules that share a stack on one worker: were the groups ignored (pytest 9.2 with xdist 3.8
does so silently), two workers would bring the shared stack up at once and fight over it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

MODULE = '''
import os
import pytest

pytestmark = pytest.mark.xdist_group("one-stack")


@pytest.mark.parametrize("i", range(4))
def test_records_its_worker(i):
    with open("workers.txt", "a") as fh:
        fh.write(os.environ["PYTEST_XDIST_WORKER"] + "\\n")
'''


def test_a_group_of_modules_runs_on_one_worker(tmp_path: Path) -> None:
    for name in ("test_a.py", "test_b.py"):
        (tmp_path / name).write_text(MODULE)
    r = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                        "-n", "2", "--dist", "loadgroup", "test_a.py", "test_b.py"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    workers = (tmp_path / "workers.txt").read_text().split()
    assert len(workers) == 8 and len(set(workers)) == 1, workers
