"""`stackctl switch` overhead and failed requests, against baselines measured in this run.

Overhead = switch wall time (the whole `stackctl switch` process) minus the target
container's own start-to-healthy time. That baseline is measured here, between the
switches, by doing by hand only what the target itself needs: with the group's other
member stopped, `docker start` the target and poll its health endpoint every 10 ms until it
answers ready. "By hand" is `docker stop` of the active member plus that. The time from
the container's StartedAt to the "ready" line of its own log is printed too: the engine's
start latency is the difference.

Phases: without load (the overhead target), then under an open-loop load on both vLLM
aliases (failed requests; overhead for information, as the gateway then queues).

With `--baseline REF`, that commit's `stackctl switch` takes every other switch of the
no-load phase, so both are measured in one run against the same by-hand baseline.

The offline copy is forced to restart mode (its stack.yaml `switch: sleep` becomes
`switch: restart`): this measures the stop/start baseline; bench_sleep.py compares sleep mode.

Run: python benchmarks/bench_switch.py [--switches N] [--rate R] [--baseline REF]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

from common import implementations, median, offline_copy, stackctl, verdict
from python_on_whales import docker

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from stackctl.health.probes import http_ok  # noqa: E402
from stackctl.store.envfile import read_env  # noqa: E402
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
    docker.container.start(container)
    while not http_ok(f"http://127.0.0.1:{port}/v1/models", model, timeout=0.5):
        time.sleep(0.01)
        if time.perf_counter() - t > 120:
            raise SystemExit(f"{container} did not become healthy")
    return time.perf_counter() - t


def stop(container: str) -> float:
    t = time.perf_counter()
    docker.container.stop(container, time=10)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--switches", type=int, default=12)
    ap.add_argument("--rate", type=float, default=5.5,
                    help="requests/s per vLLM alias in the load phase (0: skip that phase)")
    ap.add_argument("--baseline", help="git ref whose `switch` takes every other no-load switch")
    args = ap.parse_args()
    impls = implementations(args.baseline)
    project = "stackctl-bench-sw"
    cfg = offline_copy(project)
    stack = cfg / "stack.yaml"  # restart mode: the stop/start baseline
    stack.write_text(stack.read_text().replace("switch: sleep", "switch: restart"))
    stackctl("up", "-C", str(cfg))
    try:
        key = read_env(cfg.parent / ".env")["LITELLM_MASTER_KEY"]
        stackctl("switch", "dolphin", "-C", str(cfg))  # both members have a container now
        stackctl("switch", "qwen", "-C", str(cfg))
        phase(cfg, project, key, args.switches, rate=0, impls=impls)
        if args.rate > 0:
            phase(cfg, project, key, args.switches, rate=args.rate,
                  impls={"current": impls["current"]})
    finally:
        stackctl("down", "-C", str(cfg), "--volumes", check=False)


def phase(cfg: Path, project: str, key: str, switches: int, rate: float,
          impls: dict[str, list[str]]) -> None:
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
            docker.container.start(f"{project}-{MEMBERS[back][0]}-1")
            while not http_ok(f"http://127.0.0.1:{MEMBERS[back][1]}/v1/models",
                              MEMBERS[back][2]):
                time.sleep(0.05)
            time.sleep(2)  # let the gateway route back to it
            impl = list(impls)[(i // 2) % len(impls)]  # each does both directions
            start = time.perf_counter()
            out = stackctl("switch", target, "-C", str(cfg), cmd=impls[impl]).stdout
            walls.append((impl, target, time.perf_counter() - start))
            logged.append(log_start_to_ready(name))
            print(f"  [{impl}] {out.strip().splitlines()[-1]}  wall {walls[-1][2]:.2f}s")
            time.sleep(2)
    base = {t: median(v) for t, v in own.items() if v}
    hand = {t: median(v) for t, v in by_hand.items() if v}
    print("target's own start-to-healthy (docker start → ready, 10 ms polls): "
          + ", ".join(f"{t} median {v:.3f}s" for t, v in base.items()))
    print("the same switch by hand (docker stop + start-to-healthy): "
          + ", ".join(f"{t} median {v:.3f}s" for t, v in hand.items()))
    print(f"target's StartedAt → 'ready' log line: median {median(logged):.3f}s")
    for impl in impls:
        mine = [(t, w) for i, t, w in walls if i == impl]
        overheads = [w - base[t] for t, w in mine]
        print(f"[{impl}] switch wall: median {median([w for _, w in mine]):.3f}s; overhead over "
              f"the target's own start {[round(o, 3) for o in overheads]} median "
              f"{median(overheads):.3f}s; over the same switch by hand: median "
              f"{median([w - hand[t] for t, w in mine]):.3f}s")
    overheads = [w - hand[t] for i, t, w in walls if i == "current"]
    if rate:
        failed = traffic.failures()
        print(f"requests during the phase: {len(traffic.answers)}, failed: {len(failed)}")
        print(verdict("failed requests", len(failed), 0))
    else:
        print(verdict("switch overhead over the by-hand switch, median", median(overheads),
                      0.5, "s"))

if __name__ == "__main__":
    main()
