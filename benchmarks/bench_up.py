"""Time-to-healthy of `stackctl up` vs plain `docker compose up --wait` on the same generated
file, interleaved in one run; and `stackctl status` wall time with two services stopped
(with `--baseline REF`, that commit's `status` too, interleaved with this one).

Run: python benchmarks/bench_up.py [--runs N] [--baseline REF]   (engine + local images)
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from common import implementations, median, offline_copy, stackctl, timed, verdict


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3, help="up vs compose runs (0: skip)")
    ap.add_argument("--status-runs", type=int, default=9)
    ap.add_argument("--baseline", help="git ref whose `status` is measured beside this one")
    args = ap.parse_args()
    cfg = offline_copy("stackctl-bench-up")
    stackctl("generate", "-C", str(cfg))
    if args.runs:
        compare_up(cfg, args.runs)
    compare_status(cfg, args)


def compare_up(cfg: Path, runs: int) -> None:
    root = cfg.parent
    stackctl("up", "-C", str(cfg))  # creates .env, warms the page cache
    stackctl("down", "-C", str(cfg))
    compose = ["docker", "compose", "-f", str(root / "compose/compose.yaml"), "--env-file",
               str(root / ".env"), "--profile", "llamacpp", "--profile", "ollama",
               "--profile", "vllm-qwen"]
    ours, plain = [], []
    for _ in range(runs):
        ours.append(timed([sys.executable, "-m", "stackctl", "up", "-C", str(cfg)]))
        stackctl("down", "-C", str(cfg))
        plain.append(timed(compose + ["up", "-d", "--wait"]))
        subprocess.run(compose + ["down"], check=True, capture_output=True)
    print(f"stackctl up (health-gated + gateway model check): median {median(ours):.2f}s "
          f"runs {[round(x, 2) for x in ours]}")
    print(f"docker compose up --wait:                         median {median(plain):.2f}s "
          f"runs {[round(x, 2) for x in plain]}")
    print(verdict("ratio up/compose", median(ours) / median(plain), 1.1))


def compare_status(cfg: Path, args: argparse.Namespace) -> None:
    stackctl("up", "-C", str(cfg))
    project = "stackctl-bench-up"
    for svc in ("ollama", "llama_cpp"):
        subprocess.run(["docker", "stop", f"{project}-{svc}-1"], check=True, capture_output=True)
    impls = implementations(args.baseline)
    walls: dict[str, list[float]] = {name: [] for name in impls}
    for _ in range(args.status_runs):
        for name, cmd in impls.items():
            start = time.perf_counter()
            r = stackctl("status", "-C", str(cfg), "--json", check=False, cmd=cmd)
            walls[name].append(time.perf_counter() - start)
            assert r.returncode == 1, (name, r.stdout, r.stderr)  # degraded
    for name, runs in walls.items():
        print(f"stackctl status ({name}), two services stopped: median {median(runs):.3f}s "
              f"runs {[round(x, 3) for x in runs]}")
    print(verdict("status median", median(walls["current"]), 1.0, "s"))
    stackctl("down", "-C", str(cfg), "--volumes")


if __name__ == "__main__":
    main()
