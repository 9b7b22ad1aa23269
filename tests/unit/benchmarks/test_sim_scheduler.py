"""benchmarks/sim_scheduler.py: a short trace through the scheduler and the policies it
replaces, in one simulation; on one GPU the scheduler must switch less than switching on
every request, answer every request it does not reject with the model asked, and more of
them than the manual switch with fallbacks does."""

from __future__ import annotations

import pytest

SEED, MODELS, MINUTES, RESIDENCY = 3, 3, 10, 20.0


def run(sim, policy, trace, memory_gib=None):
    spec = sim.group(MODELS, sim.STUB, memory_gib, RESIDENCY)
    return sim.Sim(spec, sim.STUB, policy).run(trace)


def test_on_one_gpu_the_scheduler_switches_less_and_answers_more_with_the_model_asked(sim):
    trace = sim.steady(SEED, MODELS, minutes=MINUTES)
    every = run(sim, sim.every_request, trace)
    manual = run(sim, None, trace)
    ours = run(sim, sim.schedule, trace)
    assert every.switches > 100
    assert ours.switches < every.switches, (ours.switches, every.switches)
    assert ours.answered >= manual.answered, (ours.answered, manual.answered)
    assert sim.percentile(ours.waits, 95) < sim.percentile(every.waits, 95)
    objective = sim.slo(sim.STUB, trace)
    assert sim.goodput(ours, objective) > sim.goodput(every, objective)
    # held, never diverted: each request is answered by its model, rejected, or counted
    assert ours.other == 0 and ours.failed == 0
    assert ours.answered + ours.rejected == ours.requests == len(trace)


def test_the_checks_can_fail(sim):
    trace = sim.steady(SEED, MODELS, minutes=MINUTES)
    every = run(sim, sim.every_request, trace)
    objective = sim.slo(sim.STUB, trace)
    # switching on every request answers next to nothing within the objective
    assert sim.goodput(every, objective) < 0.1 * sim.goodput(run(sim, sim.schedule, trace),
                                                            objective)
    # without min_residency on one GPU the same policy switches more, answers fewer in time
    ours, bare = run(sim, sim.schedule, trace), run(sim, sim.without_residency, trace)
    assert bare.switches > ours.switches
    assert sim.goodput(bare, objective) < sim.goodput(ours, objective)
    # today's manual switch answers the others' requests with the fallback
    manual = run(sim, None, trace)
    assert manual.switches == 0 and manual.other > 0 and sim.p95_all(manual) == float("inf")


def test_a_release_to_a_member_that_is_not_loaded_counts_as_failed(sim):
    def careless(spec, now):  # releases everything, loaded or not
        return sim.Decision(release=tuple(h.id for h in now.held))

    trace = sim.steady(SEED, MODELS, minutes=1)
    result = run(sim, careless, trace)
    assert result.failed > 0 and result.answered + result.failed == len(trace)


def test_traces_are_deterministic_and_shaped_as_described(sim):
    assert sim.steady(1, 4) == sim.steady(1, 4) != sim.steady(2, 4)
    day = sim.day(1, 6, minutes=60)
    night = [r for r in day if r.at < 300]  # 0:00–2:00 compressed
    afternoon = [r for r in day if 1500 <= r.at < 1800]  # 10:00–12:00
    assert len(afternoon) > 4 * len(night)
    assert {r.model for r in day} == set(range(6))
    bursts = sim.bursts(1, 5, minutes=10)
    assert bursts == sorted(bursts, key=lambda r: r.at)


def test_the_table_prints_every_policy_per_trace_and_profile(sim):
    trace = sim.steady(SEED, MODELS, minutes=2)
    results = sim.compare(trace, MODELS, sim.GPU, RESIDENCY)
    lines = sim.rows("steady", sim.GPU, results, sim.slo(sim.GPU, trace))
    assert [line.split()[2] for line in lines] == ["every", "manual+fallback", "scheduler,",
                                                    "lru", "scheduler,"]
    assert lines[0].endswith("1.00")
    assert "good/s" in sim.HEADER and "p95all" in sim.HEADER


def test_goodput_counts_the_requests_answered_by_the_model_asked_in_time(sim):
    r = sim.Result(requests=5, answered=3, other=1, rejected=1, waits=[0.0, 2.0, 9.0],
                   minutes=1.0)
    assert sim.goodput(r, 2.0) == 2 / 60
    assert sim.p95_all(r) == float("inf")  # 2 of 5 never answered by the model asked
    trace = [sim.Request(0, 0, 1.0), sim.Request(1, 0, 3.0), sim.Request(2, 0, 2.0)]
    assert sim.slo(sim.STUB, trace) == 2.0 + 1.0 + 0.3 + 0.05 + 0.1


def test_the_verdict_is_computed_and_can_say_no(sim):
    trace = sim.steady(SEED, MODELS, minutes=MINUTES)
    results = sim.compare(trace, MODELS, sim.STUB, RESIDENCY)
    objective = sim.slo(sim.STUB, trace)
    lead = sim.margins(results, objective)[sim.EXCL]
    assert lead["p95"] > 0 and sim.ahead([sim.margins(results, objective)])[sim.EXCL]["p95"]
    # the exclusive scheduler's row swapped for switching on every request's: behind
    worse = {**results, sim.EXCL: results["every request"]}
    behind = sim.margins(worse, objective, sim.tight(sim.STUB))
    assert behind[sim.EXCL]["goodput"] < 0 and behind[sim.EXCL]["p95"] == 0  # even: a tie
    assert sim.ahead([behind])[sim.EXCL] == {"goodput": False, "p95": False,
                                             "p95 all": False, "tight": False}
    assert "ahead on goodput NO" in sim.verdict("steady", sim.STUB, [behind])[0]


def test_the_verdict_goes_by_the_median_lead_over_seeds_and_a_tie_is_not_ahead(sim):
    runs = [{sim.EXCL: {"goodput": g, "p95": p}} for g, p in ((0.1, -1.0), (-0.01, 2.0),
                                                              (0.02, 0.5))]
    assert sim.ahead(runs)[sim.EXCL] == {"goodput": True, "p95": True}
    tie = [{sim.EXCL: {"goodput": 0.0, "p95": 0.0}}] * 3
    assert sim.ahead(tie)[sim.EXCL] == {"goodput": False, "p95": False}


def test_the_same_wait_summed_in_another_order_is_a_tie(sim):
    """Two policies that make the same changes in another order reach the same p95 up to
    the last bit (1.45 s as 1.0 + 0.3 + 0.15, or 0.3 + 0.15 + 1.0): even, not ahead."""
    trace = sim.bursts(SEED, 5, minutes=MINUTES)
    results = sim.compare(trace, 5, sim.STUB, RESIDENCY)
    lru = results[f"lru no resid., {sim.GPU_GIB:g}G"]
    results[sim.BUDGETED] = sim.replace(lru, waits=[w + 1e-13 for w in lru.waits])
    assert sim.percentile(results[sim.BUDGETED].waits, 95) != sim.percentile(lru.waits, 95)
    assert sim.margins(results, sim.slo(sim.STUB, trace))[sim.BUDGETED]["p95"] == 0


def test_idle_sleep_makes_room_before_the_next_request(sim):
    """A member idle for `idle_sleep` is put to sleep: a later request for another member
    that would have had to evict it waits for a wake alone, not for a sleep and a wake as
    under LRU, which evicts on demand only (the same group, idle_sleep ignored)."""
    trace = [sim.Request(1.0, 1, 0.5), sim.Request(60.0, 2, 0.5)]  # 7 GiB, then 12 GiB
    spec = sim.group(3, sim.STUB, sim.GPU_GIB, RESIDENCY, idle_sleep=10.0)  # 9 GiB awake
    ours = sim.Sim(spec, sim.STUB, sim.schedule, started=True).run(trace)
    lru = sim.Sim(spec, sim.STUB, sim.without_residency, started=True).run(trace)
    wake = 0.3 + 0.05 + 0.1  # the stub's wake, warm-up, confirm
    assert ours.waits == pytest.approx([wake, wake])
    assert lru.waits == pytest.approx([wake, 1.0 + wake])  # 9 + 7 + 12 > 24: one sleeps first
    # before the trace every member was started once: asleep, not stopped (no cold start)
    cold = sim.Sim(spec, sim.STUB, sim.schedule).run(trace)
    assert cold.waits[0] == pytest.approx(3.0 + 0.05 + 0.1)
