"""benchmarks/sim_scheduler.py: a short trace through the scheduler and the policies it
replaces, in one simulation; the scheduler must halve the switches of switching on every
request, and answer every request it does not reject with the model asked."""

from __future__ import annotations

SEED, MODELS, MINUTES, RESIDENCY = 3, 3, 10, 20.0


def run(sim, policy, trace, memory_gib=None):
    spec = sim.group(MODELS, sim.STUB, memory_gib, RESIDENCY)
    return sim.Sim(spec, sim.STUB, policy).run(trace)


def test_the_scheduler_switches_at_most_half_as_often_as_every_request(sim):
    trace = sim.steady(SEED, MODELS, minutes=MINUTES)
    every = run(sim, sim.every_request, trace)
    ours = run(sim, sim.schedule, trace)
    assert every.switches > 100
    assert ours.switches * 2 <= every.switches, (ours.switches, every.switches)
    # held, never diverted: each request is answered by its model, rejected, or counted
    assert ours.other == 0 and ours.failed == 0
    assert ours.answered + ours.rejected == ours.requests == len(trace)


def test_the_checks_can_fail(sim):
    trace = sim.steady(SEED, MODELS, minutes=MINUTES)
    every = run(sim, sim.every_request, trace)
    # without min_residency the same policy switches far more than half as often
    assert run(sim, sim.without_residency, trace).switches * 2 > every.switches
    # today's manual switch answers the others' requests with the fallback
    manual = run(sim, None, trace)
    assert manual.switches == 0 and manual.other > 0


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


def test_the_table_prints_every_policy_per_trace_and_profile(sim, capsys):
    trace = sim.steady(SEED, MODELS, minutes=2)
    lines = sim.rows("steady", sim.GPU, sim.compare(trace, MODELS, sim.GPU, RESIDENCY))
    assert [line.split()[2] for line in lines] == ["every", "manual+fallback", "scheduler,",
                                                    "lru", "scheduler,"]
    assert lines[0].endswith("1.00")
