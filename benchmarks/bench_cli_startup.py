"""CLI start-up time: `stackctl --help` against a bare `python -c "import click"`.

    python benchmarks/bench_cli_startup.py [--runs N]

Runs each command N times (default 21, at least 15), interleaved so machine noise hits all of
them alike, and prints the median wall time of each, the ratio --help / import click (target
<= 2) and the time of `stackctl validate` on the shipped registry. Always exits 0; the verdict
is the PASS/FAIL line.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET_RATIO = 2.0
MIN_RUNS = 15


def stackctl_cmd() -> list[str]:
    """The console script installed beside this interpreter (no version-manager shim, so it
    is compared with the same interpreter as the baseline), else the one on PATH."""
    beside = Path(sys.executable).with_name("stackctl")
    if beside.exists():
        return [str(beside)]
    exe = shutil.which("stackctl")
    if exe:
        return [exe]
    code = ("import sys; from stackctl.cli import main; "
            "sys.argv = ['stackctl', *sys.argv[1:]]; main()")
    return [sys.executable, "-c", code]


def time_once(cmd: list[str]) -> float:
    start = time.perf_counter()
    p = subprocess.run(cmd, check=False, cwd=REPO, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, env=os.environ.copy())
    elapsed = time.perf_counter() - start
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {p.returncode}: {p.stderr.decode()[-500:]}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21)
    runs = max(MIN_RUNS, parser.parse_args().runs)

    base = stackctl_cmd()
    commands = {
        "python -c 'import click'": [sys.executable, "-c", "import click"],
        "stackctl --help": base + ["--help"],
        "stackctl validate": base + ["validate", "-C", str(REPO / "config")],
    }
    samples: dict[str, list[float]] = {name: [] for name in commands}
    try:
        for cmd in commands.values():  # warm-up: file cache, .pyc files
            time_once(cmd)
        for _ in range(runs):
            for name, cmd in commands.items():
                samples[name].append(time_once(cmd))
    except (OSError, RuntimeError) as exc:
        print(f"benchmark could not run: {exc}")
        print("FAIL: no measurement")
        return 0

    print(f"{runs} runs each, interleaved; median (min-max) wall time")
    medians = {}
    for name, values in samples.items():
        medians[name] = statistics.median(values)
        print(f"  {name:<28} {medians[name] * 1000:7.1f} ms "
              f"({min(values) * 1000:.1f}-{max(values) * 1000:.1f})")
    ratio = medians["stackctl --help"] / medians["python -c 'import click'"]
    print(f"  ratio --help / import click: {ratio:.2f} (target <= {TARGET_RATIO:g})")
    verdict = "PASS" if ratio <= TARGET_RATIO else "FAIL"
    print(f"{verdict}: stackctl --help start-up is {ratio:.2f}x a bare `import click`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
