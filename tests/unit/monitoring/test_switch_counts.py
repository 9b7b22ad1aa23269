"""Switch counters: cumulative in the state folder, pushed whole with every switch record."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from stackctl.monitoring.client import switch_metrics
from stackctl.monitoring.switch_counts import (
    GroupCounts,
    count,
    counts_path,
    load,
)


def test_counts_add_by_reason_with_rollback_once_more_and_a_duration_histogram():
    c = GroupCounts().add("demand", 0.3, False).add("manual", 45.0, True)
    assert c.switches == {"demand": 1, "idle": 0, "manual": 1, "rollback": 1}
    assert (c.count, c.sum) == (2, 45.3)
    assert c.buckets == [1, 1, 1, 1, 1, 1, 2, 2, 2, 2]  # <=0.5 … <=600


def test_the_file_accumulates_per_group_and_survives_garbage(tmp_path):
    path = counts_path(tmp_path, "p")
    assert path.name == "p.switch-counts.json"
    count(path, "gpu0", "manual", 1.0, False)
    got, problem = count(path, "gpu0", "idle", 2.0, False)
    assert problem is None and got.switches["manual"] == got.switches["idle"] == 1
    count(path, "gpu1", "demand", 1.0, False)
    assert set(load(path).groups) == {"gpu0", "gpu1"}
    path.write_text("{not json")
    assert load(path).groups == {}  # counted again from 0: a reset rate() handles


def test_an_unwritable_folder_is_said_not_raised(tmp_path):
    got, problem = count(tmp_path / "missing" / "p.json", "g", "manual", 1.0, False)
    assert got.count == 1 and problem and "not written" in problem


def test_pushed_text_carries_the_counters_and_the_histogram():
    counts = GroupCounts().add("demand", 0.4, False)
    text = switch_metrics("gpu0", ["a", "b"], "a", {"total": 0.4}, True, False,
                          now=100.0, counts=counts, loaded=["a", "b"])
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for fam in text_string_to_metric_families(text) for s in fam.samples}
    assert samples[("stackctl_switches_total", (("gpu_group", "gpu0"), ("reason", "demand")))] == 1
    assert samples[("stackctl_switches_total", (("gpu_group", "gpu0"), ("reason", "idle")))] == 0
    assert samples[("stackctl_switch_seconds_bucket", (("gpu_group", "gpu0"), ("le", "0.5")))] == 1
    assert samples[("stackctl_switch_seconds_count", (("gpu_group", "gpu0"),))] == 1
    # a load keeps its co-resident: both are active
    assert samples[("stackctl_gpu_group_active", (("gpu_group", "gpu0"), ("provider", "b")))] == 1


def test_without_counts_the_record_is_as_before():
    text = switch_metrics("gpu0", ["a", "b"], "a", {"total": 1.0}, True, False, now=1.0)
    assert "stackctl_switches_total" not in text
    assert 'stackctl_gpu_group_active{gpu_group="gpu0",provider="b"} 0' in text
