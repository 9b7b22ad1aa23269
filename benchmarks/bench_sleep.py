"""Restart vs sleep switching of the offline GPU group (issue 13), in one run, same stubs.

Two copies of the offline example (tests/integration/conftest.py `make_stack`: their own
project names and shifted ports, so a running `make up` is left alone), one after the other:
the first with `switch: restart` (stop the outgoing member, cold-start the target), the
second with `switch: sleep` (drain the outgoing member and put it to sleep, wake the target).
Each is brought up, switched back and forth between vllm-dolphin and vllm-qwen under an
open-loop load on both models, and taken down with its volumes (also on failure).

Per mode: the wall time of each `stackctl switch` process, its in-process `total`, the
requests for the incoming model sent during switches (answered by the target or by the
fallback, their latency), the requests for the outgoing model answered by the fallback, and
the failed requests of the whole phase. Sleep mode's overhead is the wall time minus the
stub's configured sleep + wake seconds (target <= 0.5 s); its first switch to dolphin, never
started before, is a cold start: printed, left out of the medians. Restart mode's wall is
shown against the stub's startup delay. Headline: median restart wall / median sleep wall.

Run: python benchmarks/bench_sleep.py [--switches N] [--rate R]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from common import median, verdict

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from stackctl.store.envfile import compose_value  # noqa: E402
from tests.integration.conftest import Stack, make_stack  # noqa: E402
from tests.integration.traffic import Answer, Traffic  # noqa: E402

MEMBERS = {"vllm-dolphin": "dolphin-uncensored-vllm", "vllm-qwen": "qwen-coder-vllm"}
FIRST = "vllm-qwen"  # the example's default profiles start it


@dataclass
class Switch:
    target: str
    outgoing: str
    start: float  # time.monotonic, as Traffic's answers
    end: float
    wall: float
    timings: dict[str, float]
    cold: bool = False  # sleep mode: the target had never run


@dataclass
class Phase:
    mode: str
    switches: list[Switch] = field(default_factory=list)
    answers: list[Answer] = field(default_factory=list)
    failed_switch: str | None = None
    stub: dict[str, float] = field(default_factory=dict)

    def measured(self) -> list[Switch]:
        return [s for s in self.switches if not s.cold]


def stub_seconds(stack: Stack) -> dict[str, float]:
    """The stub's configured sleep, wake and startup seconds (host environment first)."""
    from ruamel.yaml import YAML

    env = YAML().load((stack.config / "providers.yaml").read_text())[
        "providers"]["vllm-qwen"]["container"]["env"]
    delay = compose_value(stack.root / ".env", "STUB_STARTUP_DELAY") or "3"
    return {"sleep": float(env["STUB_SLEEP_SECONDS"]), "wake": float(env["STUB_WAKE_SECONDS"]),
            "startup": float(delay)}


def run_phase(mode: str, switches: int, rate: float, tmp: Path) -> Phase:
    stack = make_stack(tmp, f"stackctl-bench-sl-{mode}", switch=mode)
    phase = Phase(mode)
    print(f"== {mode}: up ({stack.project}, gateway :{stack.port('litellm')})", flush=True)
    try:
        r = stack.run("up")
        if r.returncode:
            raise SystemExit(f"stackctl up failed ({mode}):\n{r.stdout}\n{r.stderr}")
        phase.stub = stub_seconds(stack)
        started = {FIRST}
        active = FIRST
        with Traffic(stack.url, stack.key, list(MEMBERS.values()), rate=rate,
                     max_seconds=1800) as traffic:
            time.sleep(3)  # steady load before the first switch
            for i in range(switches):
                target = "vllm-dolphin" if i % 2 == 0 else "vllm-qwen"
                t0 = time.monotonic()
                r = stack.run("switch", target, "--json")
                t1 = time.monotonic()
                if r.returncode:
                    phase.failed_switch = (f"switch {i + 1} to {target} exited {r.returncode}:"
                                           f"\n{r.stdout}\n{r.stderr}")
                    print(f"  switch {i + 1} to {target} FAILED", flush=True)
                    break
                timings = json.loads(r.stdout)["timings"]
                sw = Switch(target, active, t0, t1, t1 - t0, timings,
                            cold=mode == "sleep" and target not in started)
                phase.switches.append(sw)
                started.add(target)
                active = target
                print(f"  {i + 1}. → {target:<12} wall {sw.wall:5.2f}s  total "
                      f"{timings.get('total', 0):5.2f}s" + ("  (cold start)" if sw.cold else ""),
                      flush=True)
                time.sleep(2)  # the load settles on the new member
            time.sleep(2)
        phase.answers = list(traffic.answers)
    finally:
        r = stack.run("down", "--volumes")
        if r.returncode:
            print(f"  stackctl down failed ({mode}):\n{r.stdout}\n{r.stderr}", flush=True)
    return phase


def during(phase: Phase, switches: list[Switch], which: str) -> list[tuple[Switch, Answer]]:
    """Answers for each switch's incoming (`which`="in") or outgoing model sent during it."""
    out = []
    for s in switches:
        model = MEMBERS[s.target if which == "in" else s.outgoing]
        out += [(s, a) for a in phase.answers if a.model == model and s.start <= a.t <= s.end]
    return out


def fmt(values: list[float]) -> str:
    return "[" + " ".join(f"{v:.2f}" for v in values) + "]"


def report(phases: dict[str, Phase]) -> None:
    rows: list[tuple[str, dict[str, str]]] = []

    def row(name: str, get: Callable[[Phase], str]) -> None:
        rows.append((name, {m: get(p) for m, p in phases.items()}))

    def walls(p: Phase) -> list[float]:
        return [s.wall for s in p.measured()]

    def totals(p: Phase) -> list[float]:
        return [s.timings.get("total", 0.0) for s in p.measured()]

    row("switches measured", lambda p: f"{len(p.measured())} of {len(p.switches)}")
    row("switch wall, median", lambda p: f"{median(walls(p)):.3f}s" if walls(p) else "-")
    row("switch wall, all", lambda p: fmt(walls(p)))
    row("in-process total, median", lambda p: f"{median(totals(p)):.3f}s" if totals(p) else "-")
    for key in ("drain", "sleep", "wake", "warm", "stop", "start", "ready", "routable"):
        row(f"  {key}, median", lambda p, k=key: (
            f"{median([s.timings[k] for s in p.measured()]):.3f}s"
            if p.measured() and all(k in s.timings for s in p.measured()) else "-"))
    row("cold start (excluded) wall/total", lambda p: ", ".join(
        f"{s.wall:.2f}s/{s.timings.get('total', 0):.2f}s" for s in p.switches if s.cold) or "-")

    def incoming(p: Phase) -> tuple[int, int, list[float]]:
        got = [a for s, a in during(p, p.measured(), "in") if a.ok]
        target = [a for a in got if a.deployment.endswith("@" + _target_of(p, a))]
        return len(target), len(got) - len(target), sorted(a.latency for a in got)

    row("incoming: by target / fallback", lambda p: "{} / {}".format(*incoming(p)[:2]))
    row("incoming latency median / max", lambda p: (
        f"{median(incoming(p)[2]):.2f}s / {max(incoming(p)[2]):.2f}s" if incoming(p)[2] else "-"))

    def outgoing(p: Phase) -> str:
        got = [(s, a) for s, a in during(p, p.measured(), "out") if a.ok]
        fb = sum(not a.deployment.endswith("@" + s.outgoing) for s, a in got)
        return f"{fb} of {len(got)}"

    row("outgoing: by fallback", outgoing)
    row("failed requests (whole phase)", lambda p: f"{sum(not a.ok for a in p.answers)} "
        f"of {len(p.answers)}")

    width = max(len(n) for n, _ in rows) + 2
    cols = list(phases)
    cw = max(24, *(len(v) + 2 for _, vals in rows for v in vals.values()))
    print("\n" + "".ljust(width) + "".join(c.ljust(cw) for c in cols))
    for name, vals in rows:
        print(name.ljust(width) + "".join(vals.get(c, "").ljust(cw) for c in cols))
    print()

    if "restart" in phases and walls(phases["restart"]):
        p = phases["restart"]
        print(f"restart: wall median {median(walls(p)):.3f}s vs the stub's startup delay "
              f"{p.stub['startup']:g}s: {median(walls(p)) - p.stub['startup']:+.3f}s")
    if "sleep" in phases and walls(phases["sleep"]):
        p = phases["sleep"]
        base = p.stub["sleep"] + p.stub["wake"]
        over = [w - base for w in walls(p)]
        print(f"sleep: overhead = wall - (stub sleep {p.stub['sleep']:g}s + wake "
              f"{p.stub['wake']:g}s) {fmt(over)}")
        print(verdict("sleep-mode switch overhead (wall), median", median(over), 0.5, "s"))
        print(f"sleep: in-process total overhead {fmt([t - base for t in totals(p)])}, "
              f"median {median(totals(p)) - base:.3f}s")
    for p in phases.values():
        print(verdict(f"{p.mode}: failed requests", sum(not a.ok for a in p.answers), 0))
    if all(m in phases and walls(phases[m]) for m in ("restart", "sleep")):
        ratio = median(walls(phases["restart"])) / median(walls(phases["sleep"]))
        print(f"HEADLINE restart wall / sleep wall (medians): {ratio:.2f}x")


def _target_of(p: Phase, a: Answer) -> str:
    return next(s.target for s in p.switches if s.start <= a.t <= s.end)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--switches", type=int, default=6)
    ap.add_argument("--rate", type=float, default=5, help="requests/s per model")
    args = ap.parse_args()
    os.environ.setdefault("STUB_STARTUP_DELAY", "3")
    tmp = Path(tempfile.mkdtemp(prefix="stackctl-bench-sleep-"))
    phases: dict[str, Phase] = {}
    t = time.monotonic()
    for mode in ("restart", "sleep"):
        phases[mode] = run_phase(mode, args.switches, args.rate, tmp)
    report(phases)
    print(f"run time {time.monotonic() - t:.0f}s")
    failed = [p.failed_switch for p in phases.values() if p.failed_switch]
    for f in failed:
        print(f"\nFAILED {f}")
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
