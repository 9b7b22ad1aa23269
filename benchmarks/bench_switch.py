"""`stackctl switch` overhead: switch wall time minus the target container's own
start-to-ready time (from its own log), and failed requests under load.

Run: python benchmarks/bench_switch.py [--switches N]   (needs the engine and local images)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

from common import median, offline_copy, stackctl, verdict

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from stackctl.engine.envfile import read_env  # noqa: E402
from tests.integration.traffic import Traffic  # noqa: E402


def _ts(value: str) -> float:
    # Docker prints nanoseconds; Python takes microseconds
    head, _, frac = value.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{head}.{(frac + '000000')[:6]}+00:00").timestamp()


def own_start_to_ready(container: str) -> float:
    """From the container's start to the moment its server says it is ready: the stub logs
    a timestamped "ready" line (Docker's own probe would add up to one interval)."""
    info = json.loads(subprocess.run(["docker", "inspect", container], capture_output=True,
                                     text=True, check=True).stdout)[0]
    started = _ts(info["State"]["StartedAt"])
    logs = subprocess.run(["docker", "logs", container], capture_output=True, text=True)
    for line in (logs.stdout + logs.stderr).splitlines():
        if "] ready" in line:
            return _ts(line.split()[0]) - started
    raise SystemExit(f"{container} never logged that it was ready")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--switches", type=int, default=6)
    ap.add_argument("--rate", type=float, default=5.5,
                    help="client requests/s per vLLM alias during the switches (0: no load)")
    args = ap.parse_args()
    project = "stackctl-bench-sw"
    cfg = offline_copy(project)
    stackctl("up", "-C", str(cfg))
    try:
        run(cfg, project, args)
    finally:
        stackctl("down", "-C", str(cfg), "--volumes", check=False)


def run(cfg: Path, project: str, args: argparse.Namespace) -> None:
    key = read_env(cfg.parent / ".env")["LITELLM_MASTER_KEY"]
    overheads, walls = [], []
    targets = ["dolphin", "qwen"]
    models = ["qwen-coder-vllm", "dolphin-uncensored-vllm"] if args.rate > 0 else []
    with Traffic("http://127.0.0.1:4000", key, models, rate=args.rate or 1,
                 max_seconds=900) as traffic:
        for i in range(args.switches):
            target = targets[i % 2]
            start = time.perf_counter()
            out = stackctl("switch", target, "-C", str(cfg)).stdout
            wall = time.perf_counter() - start
            print("  " + out.strip().splitlines()[-1])
            member = "vllm-dolphin" if target == "dolphin" else "vllm-qwen"
            own = own_start_to_ready(f"{project}-{member}-1")
            walls.append(wall)
            overheads.append(wall - own)
            time.sleep(2)
    print(f"switch wall: median {median(walls):.2f}s runs {[round(w, 2) for w in walls]}")
    print(f"overhead (wall - target's own start-to-ready): runs {[round(o, 2) for o in overheads]}")
    print(verdict("switch overhead median", median(overheads), 0.5, "s"))
    failed = traffic.failures()
    print(f"requests during the switches: {len(traffic.answers)}, failed: {len(failed)}")
    print(verdict("failed requests", len(failed), 0))


if __name__ == "__main__":
    main()
