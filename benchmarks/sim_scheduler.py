"""The on-demand scheduler (issue 20) against the policies it replaces, on the same traces.

A discrete-event simulation: seeded request traces (Zipf popularity over 3–6 models, bursts,
a day compressed into an hour) replayed through one GPU group whose members take the
engine timings of a profile to sleep, wake, start and stop. The policy under test is
stackctl/switching/scheduler.py's `schedule`, the same pure function the resident process
will call, and its switches are policy.decide's plans. Measured in the same run:

  every request   switch to the model of the oldest request whenever it is not loaded,
                  strictly first come first served (llama-swap's default)
  manual+fallback one member stays active (`stackctl switch`, today); the others' requests
                  are answered at once by the fallback: not by the model asked
  lru, no resid.  the scheduler with min_residency 0 and no idle_sleep, blind to how often a
                  member is asked (every heat and fame 0): co-residence and
                  least-recently-used eviction on demand only
  scheduler       the scheduler as configured (min_residency 30 s, idle_sleep 10 s, rounds)

Profiles: the inference stub of the offline example (STUB_SLEEP_SECONDS 1,
STUB_WAKE_SECONDS 0.3, STUB_STARTUP_DELAY 3), and a real GPU from the vLLM sleep-mode
measurements (wake 0.26–2.58 s by model size, sleep alike, cold start ~48 s).

Measured: asked% (answered by the model asked), rejections, p50/p95 of the seconds added
before the model asked answers (of the requests it answers), p95all (over every request, one
never answered by the model asked counting as never), switches, and goodput: the requests
answered by the model asked within the objective, per second of trace. The objective is the
wait of one switch for a request whose model is not loaded: the loaded member finishes a
typical request of the trace (its median service time), the largest member sleeps, the
largest wakes, warm-up and confirm (stub ~3.4 s, gpu ~7.2 s). The verdict also gives goodput
at a tight objective (largest sleep + wake + 0.5 s: nothing to drain) for the record.

Like with like: the scheduler on one GPU (exclusive) is judged against every request and
manual+fallback on the same group; with a 24 GiB budget against LRU without residency on the
same budget. manual+fallback never holds a request, so its p95 is left out of the p95
verdict: its diverted requests count in goodput and p95all. The verdict is on the median
lead over the traces of several seeds (one seed's lead can turn on a single request); a tie
is not ahead.

The policy sees only what the resident process knows: each member's state, since, last_used,
the held requests, and `serving`: the requests in flight, which the resident process reads
from the engines at decision time when a decision would evict (--no-inflight: 0, as if it
could not); it is asked when a request is held, a change ends or at its next_at — a request
for a loaded member goes at once, a completion asks nothing. `live` mirrors the live
benchmark (bench_ondemand.py): its group's settings (min_residency 10 s, no idle_sleep,
max_queue 32), and every member started once and asleep before the trace; the other traces
begin as after `up`, the members other than the most popular stopped.

Run: python benchmarks/sim_scheduler.py [--seed N] [--seeds N] [--min-residency S]
     [--idle-sleep S] [--no-inflight]
"""

from __future__ import annotations

import argparse
import heapq
import math
import random
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from stackctl.resident.daemon import SERVING_FRESH  # noqa: E402
from stackctl.switching.policy import Activate, GroupState, SwitchPlan, decide  # noqa: E402
from stackctl.switching.scheduler import (  # noqa: E402
    SERVABLE,
    Decision,
    GroupSpec,
    Held,
    MemberSpec,
    Reject,
    Residency,
    Snapshot,
    schedule,
    state_order,
)

Policy = Callable[[GroupSpec, Snapshot], Decision]


# -- engine timings ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Profile:
    name: str
    wake_s: tuple[float, float]  # smallest .. largest member
    sleep_s: tuple[float, float]
    start_s: float  # a cold start (the model loaded from disk)
    stop_s: float
    warm_up_s: float = 0.05
    confirm_s: float = 0.1


STUB = Profile("stub", (0.3, 0.3), (1.0, 1.0), start_s=3.0, stop_s=0.5)
GPU = Profile("gpu", (0.26, 2.58), (0.26, 2.58), start_s=48.0, stop_s=2.0)


# -- traces ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Request:
    at: float
    model: int  # popularity rank at the start of the trace
    service_s: float


def zipf(n: int, s: float = 1.1) -> list[float]:
    weights = [1 / (k + 1) ** s for k in range(n)]
    return [w / sum(weights) for w in weights]


def _service(rng: random.Random) -> float:
    return min(20.0, max(0.3, rng.lognormvariate(math.log(2.0), 0.6)))


def steady(seed: int, models: int = 4, minutes: float = 30, rate: float = 0.5) -> list[Request]:
    """Poisson arrivals, Zipf popularity."""
    rng, p, t, out = random.Random(seed), zipf(models), 0.0, []
    while (t := t + rng.expovariate(rate)) < minutes * 60:
        out.append(Request(t, rng.choices(range(models), p)[0], _service(rng)))
    return out


def bursts(seed: int, models: int = 5, minutes: float = 30) -> list[Request]:
    """A trickle (0.1/s) and bursts of 8–25 requests within 5 s for one model every ~90 s."""
    rng, p = random.Random(seed), zipf(models)
    out = steady(seed + 1, models, minutes, rate=0.1)
    t = 0.0
    while (t := t + rng.expovariate(1 / 90)) < minutes * 60:
        model = rng.choices(range(models), p)[0]
        out += [Request(t + rng.uniform(0, 5), model, _service(rng))
                for _ in range(rng.randint(8, 25))]
    return sorted(out, key=lambda r: r.at)


def day(seed: int, models: int = 6, minutes: float = 60) -> list[Request]:
    """24 hours of traffic in `minutes`: quiet nights, a busy afternoon, and popularity that
    moves on every 6 hours (the coding model by day, the chat model at night)."""
    rng, p, out, t, span = random.Random(seed), zipf(models), [], 0.0, minutes * 60
    peak = 0.9
    while True:
        t += rng.expovariate(peak)  # thinning: accept with rate(t) / peak
        if t >= span:
            return out
        hour = 24 * t / span
        if rng.random() < (0.05 + 0.85 * math.sin(math.pi * hour / 24) ** 2) / peak:
            rank = rng.choices(range(models), p)[0]
            out.append(Request(t, (rank + int(hour // 6)) % models, _service(rng)))


def live(seed: int, models: int = 3, minutes: float = 5, rate: float = 5.0) -> list[Request]:
    """The live benchmark on the real stack (benchmarks/bench_ondemand.py against stub vLLM
    members): Poisson arrivals at 5/s, popularity 0.85/0.12/0.03 that rotates among the
    three models every minute, requests of ~30–60 ms."""
    rng, p, t, out = random.Random(seed), [0.85, 0.12, 0.03], 0.0, []
    while (t := t + rng.expovariate(rate)) < minutes * 60:
        rank = rng.choices(range(models), p)[0]
        out.append(Request(t, (rank + int(t // 60)) % models, rng.uniform(0.03, 0.06)))
    return out


TRACES = {"steady": steady, "bursts": bursts, "day": day, "live": live}


# -- the group ---------------------------------------------------------------------------------

FOOTPRINTS = [9.0, 7.0, 12.0, 14.0, 5.0, 8.0]  # GiB, by popularity rank
LIVE_GIB = 10.8  # each stub vLLM member of the live benchmark: two fit in 24 GiB, not three
GPU_GIB = 24.0


def group(models: int, profile: Profile, memory_gib: float | None,
          min_residency: float, footprints: list[float] | None = None,
          max_queue: int = 10, idle_sleep: float | None = None) -> GroupSpec:
    fps = footprints or FOOTPRINTS
    lo, hi = min(FOOTPRINTS), max(FOOTPRINTS)
    members = {}
    for i in range(models):
        share = (fps[i] - lo) / (hi - lo)
        wake = profile.wake_s[0] + share * (profile.wake_s[1] - profile.wake_s[0])
        # what the resident process measures as its last load: the change that loads it,
        # the largest member's sleep before its wake, warm-up and confirm
        load = profile.sleep_s[1] + wake + profile.warm_up_s + profile.confirm_s
        members[f"m{i}"] = MemberSpec(fps[i] if memory_gib else None, load_s=load)
    return GroupSpec("gpu0", members, mode="sleep", memory_gib=memory_gib,
                     min_residency=min_residency, max_queue=max_queue, idle_sleep=idle_sleep)


def every_request(spec: GroupSpec, now: Snapshot) -> Decision:
    """llama-swap's default: strictly first come first served; the oldest request's model is
    switched in whenever it is not the loaded one."""
    state = {m: now.of(m).state for m in spec.members}
    release = []
    for h in now.held:
        if state[h.member] not in SERVABLE:
            break
        release.append(h.id)
    rest = now.held[len(release):]
    counts: dict[str, int] = {}
    reject = []
    for h in rest:
        counts[h.member] = counts.get(h.member, 0) + 1
        if counts[h.member] > spec.max_queue:
            reject.append(Reject(h.id, 1))
    if not rest:
        return Decision(tuple(release))
    group_ = GroupState(spec.name, dict(state_order(spec, now)), spec.mode, spec.level)
    return Decision(tuple(release), tuple(reject),
                    switch=decide(group_, Activate(rest[0].member)))


def without_residency(spec: GroupSpec, now: Snapshot) -> Decision:
    """Co-residence and least-recently-used eviction, nothing else: the scheduler with no
    min_residency and no idle_sleep (it evicts on demand only), blind to how often a member
    is asked (every heat and fame 0)."""
    cold = replace(now, members={m: replace(r, heat=0.0, fame=0.0)
                                 for m, r in now.members.items()})
    return schedule(replace(spec, min_residency=0.0, idle_sleep=None), cold)


# -- the simulation ----------------------------------------------------------------------------

@dataclass
class Member:
    seen: Residency = field(default_factory=Residency)  # state, since, last_used
    ends: list[float] = field(default_factory=list)  # its requests in flight: when they end

    @property
    def state(self) -> str:
        return self.seen.state

    @state.setter
    def state(self, value: str) -> None:
        self.seen = replace(self.seen, state=value)  # type: ignore[arg-type]

    def residency(self, inflight: bool) -> Residency:
        """What the resident process knows: state, since, last_used; the
        requests in flight only when it reads them from the engines at decision time
        (`inflight`), else 0 — the gateway reports no completions."""
        return replace(self.seen, serving=len(self.ends) if inflight else 0)


@dataclass
class Result:
    requests: int = 0
    answered: int = 0  # by the model asked
    other: int = 0  # by another model (a fallback)
    rejected: int = 0
    failed: int = 0  # never answered, or sent to a member that was not loaded
    waits: list[float] = field(default_factory=list)
    switches: int = 0
    minutes: float = 1.0


class Sim:
    """One trace through one group under one policy (None: manual + fallback)."""

    def __init__(self, spec: GroupSpec, profile: Profile, policy: Policy | None,
                 footprints: list[float] | None = None, inflight: bool = False,
                 started: bool = False):
        self.spec, self.profile, self.policy = spec, profile, policy
        self.footprints, self.inflight = footprints or FOOTPRINTS, inflight
        self.members = {m: Member() for m in spec.members}
        if started:  # each started once, then put to sleep (else stopped, as after `up`)
            for m in self.members.values():
                m.state = "asleep"
        first = next(iter(spec.members))  # the most popular is loaded, as after `up`
        self.members[first].state = "awake"
        self.held: list[Held] = []
        self.service: dict[str, float] = {}
        self.events: list[tuple[float, int, str, object]] = []
        self.seq = 0
        self.busy = False  # a switch (or a put-away) is under way: one at a time
        self.timers: set[float] = set()
        self.result = Result()
        self.now = 0.0

    def push(self, at: float, kind: str, data: object = None) -> None:
        self.seq += 1
        heapq.heappush(self.events, (at, self.seq, kind, data))

    def run(self, trace: list[Request]) -> Result:
        names = list(self.spec.members)
        for i, r in enumerate(trace):
            self.push(r.at, "arrive", (f"q{i}", names[r.model % len(names)], r.service_s))
        while self.events:
            self.now, _, kind, data = heapq.heappop(self.events)
            getattr(self, kind)(data)
        self.result.requests = len(trace)
        self.result.failed += len(self.held)
        self.result.minutes = (trace[-1].at if trace else 60) / 60
        return self.result

    def arrive(self, data: object) -> None:
        rid, member, service = data  # type: ignore[misc]
        m = self.members[member]
        m.seen = m.seen.asked(self.now)
        # a request for a loaded member goes to it at once; the resident process is not
        # asked (the gateway holds only the others)
        if m.state in SERVABLE:
            self.serve(member, service, self.now)
            return
        if self.policy is None:  # manual: the active member, or the fallback at once
            self.result.other += 1
            return
        self.held.append(Held(rid, member, self.now))
        self.service[rid] = service
        self.step()

    def serve(self, member: str, service: float, arrived: float) -> None:
        m = self.members[member]
        m.ends.append(self.now + service)
        self.result.answered += 1
        self.result.waits.append(self.now - arrived)
        self.push(self.now + service, "done", member)

    def done(self, member: object) -> None:
        self.members[member].ends.remove(self.now)  # type: ignore[index]
        # the resident process hears of no completion: it is not asked

    def timer(self, at: object) -> None:
        self.timers.discard(at)  # type: ignore[arg-type]
        self.step()

    def step(self) -> None:
        assert self.policy is not None
        snap = Snapshot({n: m.residency(self.inflight) for n, m in self.members.items()},
                        tuple(self.held), self.now)
        d = self.policy(self.spec, snap)
        by_id = {h.id: h for h in self.held}
        for r in d.reject:
            self.held.remove(by_id[r.id])
            self.result.rejected += 1
        for rid in d.release:
            h = by_id[rid]
            self.held.remove(h)
            if self.members[h.member].state not in SERVABLE:
                self.result.failed += 1  # the policy sent it to a member that cannot answer
                continue
            self.serve(h.member, self.service.pop(rid), h.arrived)
        if self.busy:
            return
        if d.switch is not None:
            self.switch(d.switch)
        elif d.put_away:
            for a in d.put_away:
                self.members[a.member].state = "asleep" if a.verb == "sleep" else "stopped"  # type: ignore[index]
            self.busy = True
            self.push(self.now + sum(self._between(self.profile.sleep_s, a.member)
                                     for a in d.put_away), "settled", None)
        elif d.next_at is not None and d.next_at > self.now and d.next_at not in self.timers:
            self.timers.add(d.next_at)
            self.push(d.next_at, "timer", d.next_at)
        if d.switch is None and d.waiting_for is not None and self.inflight:
            # kept by requests in flight: the resident process reads them again soon
            again = self.now + SERVING_FRESH
            if again not in self.timers:
                self.timers.add(again)
                self.push(again, "timer", again)

    def _between(self, span: tuple[float, float], member: str) -> float:
        fp = [self.footprints[int(m[1:])] for m in self.spec.members]
        lo, hi = (min(fp), max(fp)) if max(fp) > min(fp) else (min(FOOTPRINTS), max(FOOTPRINTS))
        share = (self.footprints[int(member[1:])] - lo) / (hi - lo)
        return span[0] + share * (span[1] - span[0])

    def switch(self, plan: SwitchPlan) -> None:
        p, t = self.profile, self.now
        outgoing = plan.sleep + plan.stop
        # a sleep or a stop first lets the member's requests finish (drain)
        t = max([t, *[e for m in outgoing for e in self.members[m].ends]])
        t += sum(self._between(p.sleep_s, m) for m in plan.sleep) + p.stop_s * len(plan.stop)
        for m in plan.sleep:
            self.members[m].state = "asleep"
        for m in plan.stop:
            self.members[m].state = "stopped"
        if not plan.noop:
            self.result.switches += 1
            t += (self._between(p.wake_s, plan.target) if plan.wake
                  else p.start_s) + p.warm_up_s
        self.busy = True
        self.push(t + p.confirm_s, "switched", plan.target)

    def switched(self, target: object) -> None:
        m = self.members[target]  # type: ignore[index]
        m.seen = replace(m.seen, state="awake", since=self.now)
        self.settled(None)

    def settled(self, _: object) -> None:
        self.busy = False
        self.step()


# -- the table ---------------------------------------------------------------------------------

def percentile(values: list[float], q: int) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def p95_all(r: Result) -> float:
    """The 95th percentile over every request, one never answered by the model asked
    (rejected, answered by the fallback, failed) counting as never (inf); nearest rank."""
    rank = math.ceil(0.95 * r.requests)
    return sorted(r.waits)[rank - 1] if 0 < rank <= len(r.waits) else math.inf


def slo(profile: Profile, trace: list[Request]) -> float:
    """The latency objective: the wait of one switch for a request whose model is not
    loaded — the loaded member finishes a typical request of the trace (its median service
    time: the drain), the largest member sleeps, the largest wakes, warm-up and confirm."""
    drain = statistics.median(r.service_s for r in trace) if trace else 0.0
    return drain + profile.sleep_s[1] + profile.wake_s[1] + profile.warm_up_s + \
        profile.confirm_s


def tight(profile: Profile) -> float:
    """A stricter objective, to show how the goodput verdict depends on it: one switch with
    nothing to drain — the largest sleep + the largest wake + 0.5 s."""
    return profile.sleep_s[1] + profile.wake_s[1] + 0.5


def goodput(r: Result, objective: float) -> float:
    """Requests answered by the model asked within the objective, per second of trace."""
    return sum(1 for w in r.waits if w <= objective) / (r.minutes * 60)


def compare(trace: list[Request], models: int, profile: Profile,
            min_residency: float, footprints: list[float] | None = None,
            inflight: bool = False, max_queue: int = 10,
            started: bool = False, idle_sleep: float | None = None) -> dict[str, Result]:
    exclusive = group(models, profile, None, min_residency, footprints, max_queue, idle_sleep)
    budget = group(models, profile, GPU_GIB, min_residency, footprints, max_queue, idle_sleep)
    runs: dict[str, tuple[GroupSpec, Policy | None]] = {
        "every request": (exclusive, every_request),
        "manual+fallback": (exclusive, None),
        EXCL: (exclusive, schedule),
        f"lru no resid., {GPU_GIB:g}G": (budget, without_residency),
        BUDGETED: (budget, schedule),
    }
    return {name: Sim(spec, profile, policy, footprints, inflight, started).run(trace)
            for name, (spec, policy) in runs.items()}


EXCL, BUDGETED = "scheduler, excl.", f"scheduler, {GPU_GIB:g}G"
# like with like: each scheduler row against the policies on the same group
RIVALS = {EXCL: ("every request", "manual+fallback"),
          BUDGETED: (f"lru no resid., {GPU_GIB:g}G",)}
HOLDING = ("every request", f"lru no resid., {GPU_GIB:g}G")  # hold requests, never divert

HEADER = (f"{'trace':<7} {'profile':<7} {'policy':<19} {'reqs':>5} {'asked%':>7} {'rej':>4} "
          f"{'fail':>4} {'good/s':>6} {'good%':>6} {'p50 s':>6} {'p95 s':>6} {'p95all':>6} "
          f"{'sw':>5} {'sw/min':>6} {'vs every':>8}")


def rows(trace_name: str, profile: Profile, results: dict[str, Result],
         objective: float) -> list[str]:
    every = results["every request"].switches or 1
    out = []
    for name, r in results.items():
        asked = 100 * r.answered / r.requests if r.requests else 0
        good = goodput(r, objective)
        all95 = p95_all(r)
        out.append(f"{trace_name:<7} {profile.name:<7} {name:<19} {r.requests:>5} "
                   f"{asked:>6.1f}% {r.rejected:>4} {r.failed:>4} {good:>6.3f} "
                   f"{100 * good * r.minutes * 60 / (r.requests or 1):>5.1f}% "
                   f"{percentile(r.waits, 50):>6.2f} {percentile(r.waits, 95):>6.2f} "
                   f"{'never' if all95 == math.inf else f'{all95:.2f}':>6} "
                   f"{r.switches:>5} {r.switches / r.minutes:>6.2f} "
                   f"{r.switches / every:>8.2f}")
    return out


def margins(results: dict[str, Result], objective: float,
            strict: float | None = None) -> dict[str, dict[str, float]]:
    """Each scheduler row's lead over its closest rival on the same group, positive when
    ahead: goodput minus the best rival's; the lowest p95 (answered by the model asked) of
    the rivals that hold requests minus its own (manual+fallback never holds: it answers
    with another model instead, which goodput and p95 all count); the same for p95 all
    (never against never: 0); with `strict`, goodput at that objective too."""
    def lead(ours: float, best: float) -> float:
        # inf - inf is a tie, not nan; the same wait summed in another order is a tie too
        return 0.0 if math.isclose(ours, best, abs_tol=1e-9) else best - ours
    out = {}
    for ours, rivals in RIVALS.items():
        r = results[ours]
        out[ours] = {
            "goodput": goodput(r, objective) - max(goodput(results[x], objective)
                                                   for x in rivals),
            "p95": lead(percentile(r.waits, 95),
                        min(percentile(results[x].waits, 95) for x in rivals if x in HOLDING)),
            "p95 all": lead(p95_all(r), min(p95_all(results[x]) for x in rivals)),
        }
        if strict is not None:
            out[ours]["tight"] = goodput(r, strict) - max(goodput(results[x], strict)
                                                          for x in rivals)
    return out


def ahead(runs: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, bool]]:
    """Ahead where the median lead over the runs (one per seed) is positive: a tie is not
    ahead. One seed's lead can turn on a single request; the median of several cannot."""
    return {ours: {what: statistics.median(run[ours][what] for run in runs) > 0
                   for what in runs[0][ours]}
            for ours in runs[0]}


YES = {True: "yes", False: "NO"}


def verdict(trace_name: str, profile: Profile,
            runs: list[dict[str, dict[str, float]]]) -> list[str]:
    """One line per scheduler row: ahead of its rivals on goodput and p95 (the acceptance),
    then p95 over every request and goodput at the tight objective (for the record), each
    with its median lead and the runs it was ahead in."""
    def say(ours: str, what: str) -> str:
        leads = [run[ours][what] for run in runs]
        return (f"{YES[statistics.median(leads) > 0]} ({statistics.median(leads):+.3g}, "
                f"{sum(x > 0 for x in leads)}/{len(leads)})")
    return [f"{trace_name:<7} {profile.name:<4} {ours:<16} vs {', '.join(RIVALS[ours])}: "
            f"ahead on goodput {say(ours, 'goodput')}, p95 {say(ours, 'p95')}; "
            f"p95all {say(ours, 'p95 all')}, goodput at {tight(profile):.2f} s "
            f"{say(ours, 'tight')}"
            for ours in runs[0]]


MODELS = {"steady": 4, "bursts": 5, "day": 6, "live": 3}
# the live benchmark's group: 3 members of 10.8 GiB, min_residency 10 s, max_queue 32
FOOTPRINTS_OF = {"live": [LIVE_GIB] * 3}
RESIDENCY_OF = {"live": 10.0}
QUEUE_OF = {"live": 32}
IDLE_OF: dict[str, float | None] = {"live": None}
# every member started once and put to sleep before the trace, as bench_ondemand.py does (a
# cold start is not what it measures); the other traces begin as after `up`: the others stopped
STARTED = {"live"}

LEGEND = """\
asked%: answered by the model asked; rej: 429 past the queue cap (10 per model); fail: never
answered; good/s (goodput): requests answered by the model asked within the objective, per
second of trace, good% the same as a share of the requests; the objective is the wait of one
switch: the trace's median service time (draining the loaded member's request) + the largest
member's sleep + wake + warm-up + confirm (stub {stub:.2f} s, gpu {gpu:.2f} s on steady);
p50/p95: seconds added before the model asked answers, of the requests it answers; p95all:
over every request, one not answered by the model asked counting as never; sw: members
loaded; vs every: switches / every request's. Like with like: each scheduler row is judged
against the policies on the same group (exclusive: every request, manual+fallback; a {gib:g}
GiB budget: lru without residency); manual+fallback never holds a request, so its p95 (0) is
left out of the p95 verdict — its diverted requests count in goodput and p95all. The table
is seed {seed}'s traces; each verdict is on the median lead (goodput: over the best rival; p95:
under the best rival's) over the traces of {seeds} seeds from {seed}, with the runs ahead."""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=20, help="the table's traces")
    ap.add_argument("--seeds", type=int, default=5,
                    help="the verdict: median leads over the traces of seeds SEED..SEED+N-1")
    ap.add_argument("--min-residency", type=float, default=30.0,
                    help="seconds a serving member stays loaded (the scheduler's; live: 10; "
                         "stackctl/switching/design.md gives 20-60)")
    ap.add_argument("--idle-sleep", type=float, default=10.0,
                    help="seconds idle before the scheduler puts a member to sleep (live: "
                         "none, as the live benchmark's group; 0: never)")
    ap.add_argument("--no-inflight", dest="inflight", action="store_false",
                    help="the policy knows no requests in flight (serving 0), as if the "
                         "resident process could not read them from the engines")
    args = ap.parse_args(argv)
    print(HEADER)
    verdicts, summary, objectives = [], [], {}
    for name, make in TRACES.items():
        behind = []
        for profile in (STUB, GPU):
            runs = []
            for seed in range(args.seed, args.seed + max(1, args.seeds)):
                trace = make(seed, MODELS[name])
                objective = slo(profile, trace)
                results = compare(trace, MODELS[name], profile,
                                  RESIDENCY_OF.get(name, args.min_residency),
                                  FOOTPRINTS_OF.get(name), args.inflight,
                                  QUEUE_OF.get(name, 10), name in STARTED,
                                  IDLE_OF.get(name, args.idle_sleep or None))
                if seed == args.seed:
                    objectives[name, profile.name] = objective
                    print("\n".join(rows(name, profile, results, objective)))
                runs.append(margins(results, objective, tight(profile)))
            verdicts += verdict(name, profile, runs)
            behind += [f"{profile.name} {ours.split(', ')[1]} {what}"
                       for ours, v in ahead(runs).items()
                       for what in ("goodput", "p95") if not v[what]]
        summary.append(f"{name}: the scheduler ahead on goodput and p95 at both profiles: "
                       f"{YES[not behind]}" + (f" (not ahead: {'; '.join(behind)})"
                                               if behind else ""))
        print()
    print(LEGEND.format(stub=objectives["steady", "stub"], gpu=objectives["steady", "gpu"],
                        gib=GPU_GIB, seed=args.seed, seeds=max(1, args.seeds)))
    print()
    print("\n".join(verdicts))
    print()
    print("\n".join(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
