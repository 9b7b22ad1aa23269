"""`stackctl reload` under a steady load through the gateway: failed requests and the
longest gap between two answers during each reload, medians over the reloads. Target: 0
failed requests.

Each reload adds or removes an alias (a real change of the gateway's config). The gap is
measured on answer times, so it shows how long clients waited while the workers changed.

Run: python benchmarks/bench_reload.py [--reloads N] [--rate R]   (engine + local images)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from common import median, offline_copy, stackctl, verdict

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from stackctl.store.envfile import read_env  # noqa: E402
from tests.integration.traffic import Traffic  # noqa: E402

MODEL = "qwen-coder-vllm"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reloads", type=int, default=5)
    ap.add_argument("--rate", type=float, default=6.0, help="requests/s through the gateway")
    args = ap.parse_args()
    cfg = offline_copy("stackctl-bench-reload")
    stackctl("up", "-C", str(cfg))
    mappings = cfg / "model-mappings.yaml"
    original = mappings.read_text()
    try:
        key = read_env(cfg.parent / ".env")["LITELLM_MASTER_KEY"]
        failed, gaps, walls = [], [], []
        with Traffic("http://127.0.0.1:4000", key, [MODEL], rate=args.rate,
                     max_seconds=3600) as traffic:
            for i in range(args.reloads):
                traffic.wait_answered(MODEL, time.monotonic(), count=10)
                alias = f"    aliases: [alias-{i}]\n" if i % 2 == 0 else ""
                mappings.write_text(original.replace("    provider: llama_cpp\n",
                                                     "    provider: llama_cpp\n" + alias, 1))
                start = time.monotonic()
                out = stackctl("reload", "-C", str(cfg), "--yes", "-q").stdout.strip()
                end = time.monotonic()
                traffic.wait_answered(MODEL, end, count=10)
                window = sorted(a.t + a.latency for a in traffic.answers
                                if start - 2 <= a.t + a.latency <= end + 2)
                during = [a for a in traffic.answers if start <= a.t <= end]
                failed.append(sum(not a.ok for a in during))
                gaps.append(max(b - a for a, b in zip(window, window[1:], strict=False)))
                walls.append(end - start)
                print(f"  reload {i + 1}: {out}  requests during it {len(during)}, failed "
                      f"{failed[-1]}, longest gap {gaps[-1]:.2f}s")
            print(f"requests: {len(traffic.answers)}, failed overall: {len(traffic.failures())}")
        print(f"reload wall: median {median(walls):.1f}s; longest gap between answers: "
              f"median {median(gaps):.2f}s, runs {[round(g, 2) for g in gaps]}")
        print(verdict("failed requests during reloads, median", median(failed), 0))
    finally:
        mappings.write_text(original)
        stackctl("down", "-C", str(cfg), "--volumes", check=False)


if __name__ == "__main__":
    main()
