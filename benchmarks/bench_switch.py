"""`stackctl switch` overhead and failed requests, against baselines measured in this run.

Overhead = switch wall time (the whole `stackctl switch` process) minus the target
container's own start-to-healthy time. That baseline is measured here, between the
switches, by doing by hand only what the target itself needs: with the group's other
member stopped, ask the engine to start the target and poll its health endpoint every
10 ms until it answers ready. The time from the container's StartedAt to the "ready" line
of its own log is printed too: the engine's start latency is the difference.

Phases: without load (the overhead target), then under an open-loop load on both vLLM
aliases (failed requests; overhead for information, as the gateway then queues).

Run: python benchmarks/bench_switch.py [--switches N] [--rate R]   (engine + local images)
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
from stackctl.ops import engine_api  # noqa: E402
from stackctl.ops.envfile import read_env  # noqa: E402
from stackctl.ops.probes import http_ok  # noqa: E402
from tests.integration.traffic import Traffic  # noqa: E402

MEMBERS = {"dolphin": ("vllm-dolphin", 8002, "dolphin-uncensored-vllm"),
           "qwen": ("vllm-qwen", 8001, "qwen-coder-vllm")}


def _ts(value: str) -> float:
    # Docker prints nanoseconds; Python takes microseconds
    head, _, frac = value.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{head}.{(frac + '000000')[:6]}+00:00").timestamp()


def log_start_to_ready(container: str) -> float:
    """StartedAt to the stub's own timestamped "ready" log line."""
    info = json.loads(subprocess.run(["docker", "inspect", container], capture_output=True,
                                     text=True, check=True).stdout)[0]
    started = _ts(info["State"]["StartedAt"])
    logs = subprocess.run(["docker", "logs", container], capture_output=True, text=True)
    ready = [line for line in (logs.stdout + logs.stderr).splitlines() if "] ready" in line]
    if not ready:
        raise SystemExit(f"{container} never logged that it was ready")
    return _ts(ready[-1].split()[0]) - started


def start_to_healthy(container: str, port: int, model: str) -> float:
    """Engine start request → first ready answer of the target's health endpoint."""
    t = time.perf_counter()
    engine_api.call("POST", f"/containers/{container}/start")
    while not http_ok(f"http://127.0.0.1:{port}/v1/models", model, timeout=0.5):
        time.sleep(0.01)
        if time.perf_counter() - t > 120:
            raise SystemExit(f"{container} did not become healthy")
    return time.perf_counter() - t


def stop(container: str) -> float:
    t = time.perf_counter()
    engine_api.call("POST", f"/containers/{container}/stop", timeout=60, t=10)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--switches", type=int, default=6)
    ap.add_argument("--rate", type=float, default=5.5,
                    help="requests/s per vLLM alias in the load phase (0: skip that phase)")
    args = ap.parse_args()
    project = "stackctl-bench-sw"
    cfg = offline_copy(project)
    stackctl("up", "-C", str(cfg))
    try:
        key = read_env(cfg.parent / ".env")["LITELLM_MASTER_KEY"]
        stackctl("switch", "dolphin", "-C", str(cfg))  # both members have a container now
        stackctl("switch", "qwen", "-C", str(cfg))
        phase(cfg, project, key, args.switches, rate=0)
        if args.rate > 0:
            phase(cfg, project, key, args.switches, rate=args.rate)
    finally:
        stackctl("down", "-C", str(cfg), "--volumes", check=False)


def phase(cfg: Path, project: str, key: str, switches: int, rate: float) -> None:
    print(f"\n== {switches} switches, " + (f"{rate} requests/s on each vLLM alias" if rate
                                            else "no load"))
    models = [m for _, _, m in MEMBERS.values()] if rate else []
    walls, logged = [], []
    own: dict[str, list[float]] = {"dolphin": [], "qwen": []}
    by_hand: dict[str, list[float]] = {"dolphin": [], "qwen": []}
    with Traffic("http://127.0.0.1:4000", key, models, rate=rate or 1,
                 max_seconds=1800) as traffic:
        for i in range(switches):
            target, back = ("dolphin", "qwen") if i % 2 == 0 else ("qwen", "dolphin")
            container, port, model = MEMBERS[target]
            name = f"{project}-{container}-1"
            # baseline: the same transition done by hand (stop the active one, start target)
            stopped = stop(f"{project}-{MEMBERS[back][0]}-1")
            own[target].append(start_to_healthy(name, *MEMBERS[target][1:]))
            by_hand[target].append(stopped + own[target][-1])
            stop(name)
            engine_api.call("POST", f"/containers/{project}-{MEMBERS[back][0]}-1/start")
            while not http_ok(f"http://127.0.0.1:{MEMBERS[back][1]}/v1/models",
                              MEMBERS[back][2]):
                time.sleep(0.05)
            time.sleep(2)  # let the gateway route back to it
            start = time.perf_counter()
            out = stackctl("switch", target, "-C", str(cfg)).stdout
            walls.append((target, time.perf_counter() - start))
            logged.append(log_start_to_ready(name))
            print(f"  {out.strip().splitlines()[-1]}  wall {walls[-1][1]:.2f}s")
            time.sleep(2)
    base = {t: median(v) for t, v in own.items() if v}
    overheads = [w - base[t] for t, w in walls]
    hand = {t: median(v) for t, v in by_hand.items() if v}
    print("target's own start-to-healthy (engine start → ready, 10 ms polls): "
          + ", ".join(f"{t} median {v:.3f}s" for t, v in base.items()))
    print(f"target's StartedAt → 'ready' log line: median {median(logged):.3f}s")
    print(f"switch wall: median {median([w for _, w in walls]):.3f}s")
    print(f"overhead per switch: {[round(o, 3) for o in overheads]}")
    print("over the same switch by hand (stop + start-to-healthy, median "
          + ", ".join(f"{t} {v:.3f}s" for t, v in hand.items()) + "): median "
          f"{median([w - hand[t] for t, w in walls]):.3f}s")
    if rate:
        print(f"overhead median under load: {median(overheads):.3f}s (for information)")
        failed = traffic.failures()
        print(f"requests during the phase: {len(traffic.answers)}, failed: {len(failed)}")
        print(verdict("failed requests", len(failed), 0))
    else:
        print(verdict("switch overhead median", median(overheads), 0.5, "s"))


if __name__ == "__main__":
    main()
