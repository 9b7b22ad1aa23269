"""What a switch pushes to the Pushgateway: valid exposition, one series per phase and member."""

from prometheus_client.parser import text_string_to_metric_families

from stackctl.monitoring.client import switch_metrics


def samples(text: str) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def test_switch_record_names_active_member_phases_and_result():
    text = switch_metrics("gpu0", ["vllm-qwen", "vllm-dolphin"], "vllm-dolphin",
                          {"stop": 1.5, "start": 0.2, "ready": 3.0, "routable": 0.4,
                           "total": 5.1}, success=True, rolled_back=False, now=1700000000)
    got = samples(text)
    g = ("gpu_group", "gpu0")
    assert got[("stackctl_gpu_group_active", (g, ("provider", "vllm-dolphin")))] == 1
    assert got[("stackctl_gpu_group_active", (g, ("provider", "vllm-qwen")))] == 0
    assert got[("stackctl_switch_duration_seconds", (g, ("phase", "health")))] == 3.0
    assert got[("stackctl_switch_duration_seconds", (g, ("phase", "route")))] == 0.4
    assert got[("stackctl_switch_success", (g,))] == 1
    assert got[("stackctl_switch_rolled_back", (g,))] == 0
    assert got[("stackctl_switch_last_timestamp_seconds", (g,))] == 1700000000


def test_rolled_back_switch_keeps_previous_member_active_and_escapes_labels():
    text = switch_metrics('g"1', ["a", "b"], "a", {"total": 9.0}, success=False,
                          rolled_back=True)
    got = samples(text)
    g = ("gpu_group", 'g"1')
    assert got[("stackctl_switch_success", (g,))] == 0
    assert got[("stackctl_switch_rolled_back", (g,))] == 1
    assert got[("stackctl_gpu_group_active", (g, ("provider", "a")))] == 1


def test_a_pushgateway_that_never_answers_costs_a_switch_at_most_a_second():
    import socket
    import time

    from stackctl.monitoring.client import SwitchReport

    with socket.socket() as silent:  # accepts connections (backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        report = SwitchReport(f"http://127.0.0.1:{silent.getsockname()[1]}", "gpu0",
                              ["a", "b"], timeout=0.3)
        t = time.monotonic()
        report.started()
        report.finished("a", {"total": 1.0}, success=True, rolled_back=False)
        assert time.monotonic() - t < 1.0
    assert report.problem is not None and "did not answer" in report.problem


def test_a_refused_push_is_told_apart_from_one_that_failed():
    import socket

    from stackctl.monitoring.client import SwitchReport

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, not listening: refused
        report = SwitchReport(f"http://127.0.0.1:{port}", "gpu0", ["a"], timeout=0.3)
        report.finished("a", {"total": 1.0}, success=True, rolled_back=False)
    assert report.problem is not None and report.refused
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        report = SwitchReport(f"http://127.0.0.1:{silent.getsockname()[1]}", "gpu0", ["a"],
                              timeout=0.3)
        report.finished("a", {"total": 1.0}, success=True, rolled_back=False)
    assert report.problem is not None and not report.refused


def test_no_pushgateway_configured_is_a_silent_no_op():
    from stackctl.monitoring.client import SwitchReport

    report = SwitchReport(None, "gpu0", ["a"])
    report.started()
    report.finished("a", {}, success=True, rolled_back=False)
    assert report.problem is None
