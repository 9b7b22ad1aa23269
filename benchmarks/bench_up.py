"""Time-to-healthy of `stackctl up` vs plain `docker compose up --wait` on the same generated
file, interleaved in one run; and `stackctl status` wall time with two services stopped.

Run: python benchmarks/bench_up.py [--runs N]   (needs the engine and the local images)
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from common import median, offline_copy, stackctl, timed, verdict


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    cfg = offline_copy("stackctl-bench-up")
    root = cfg.parent
    stackctl("generate", "-C", str(cfg))
    stackctl("up", "-C", str(cfg))  # creates .env, warms the page cache
    stackctl("down", "-C", str(cfg))
    compose = ["docker", "compose", "-f", str(root / "compose/compose.yaml"), "--env-file",
               str(root / ".env"), "--profile", "llamacpp", "--profile", "ollama",
               "--profile", "vllm-qwen"]
    ours, plain = [], []
    for _ in range(args.runs):
        ours.append(timed([sys.executable, "-m", "stackctl", "up", "-C", str(cfg)]))
        stackctl("down", "-C", str(cfg))
        plain.append(timed(compose + ["up", "-d", "--wait"]))
        subprocess.run(compose + ["down"], check=True, capture_output=True)
    print(f"stackctl up (health-gated + gateway model check): median {median(ours):.2f}s "
          f"runs {[round(x, 2) for x in ours]}")
    print(f"docker compose up --wait:                         median {median(plain):.2f}s "
          f"runs {[round(x, 2) for x in plain]}")
    print(verdict("ratio up/compose", median(ours) / median(plain), 1.1))

    stackctl("up", "-C", str(cfg))
    project = "stackctl-bench-up"
    for svc in ("ollama", "llama_cpp"):
        subprocess.run(["docker", "stop", f"{project}-{svc}-1"], check=True, capture_output=True)
    walls = []
    for _ in range(9):
        start = time.perf_counter()
        r = stackctl("status", "-C", str(cfg), "--json", check=False)
        walls.append(time.perf_counter() - start)
        assert r.returncode == 1, r.stdout
    print(f"stackctl status, two services stopped: runs {[round(x, 3) for x in walls]}")
    print(verdict("status median", median(walls), 1.5, "s"))
    stackctl("down", "-C", str(cfg), "--volumes")


if __name__ == "__main__":
    main()
