"""What stackctl tells the monitoring stack and asks of it: a switch's record pushed to the
Pushgateway, and the alerts Prometheus has firing (for `status`).

Both are best effort with short timeouts: monitoring is an observer, so a switch never waits
on it or fails because of it, and `status` without Prometheus simply shows no alerts.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from urllib.parse import quote

from stackctl.monitoring.switch_counts import GroupCounts, counts_metrics
from stackctl.registry.load import Registry

SWITCH_JOB = "stackctl_switch"
# switch's timing names → the `phase` label the rules and dashboards use
PHASES = {"total": "total", "stop": "stop", "start": "start", "ready": "health",
          "routable": "route"}


def pushgateway_url(reg: Registry) -> str | None:
    pg = reg.stack.monitoring.pushgateway
    return f"http://127.0.0.1:{pg.host_port}" if pg.enabled and pg.host_port else None


def prometheus_url(reg: Registry) -> str | None:
    prom = reg.stack.monitoring.prometheus
    return f"http://127.0.0.1:{prom.host_port}" if prom.enabled and prom.host_port else None


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def switch_started(group: str, now: float | None = None) -> str:
    """Pushed as a switch begins: the GPU-group alert holds off while a switch is under way
    (a real vLLM load takes longer than the alert's `for`)."""
    g = _label(group)
    return ("# TYPE stackctl_switch_in_progress gauge\n"
            f'stackctl_switch_in_progress{{gpu_group="{g}"}} 1\n'
            "# TYPE stackctl_switch_started_timestamp_seconds gauge\n"
            f'stackctl_switch_started_timestamp_seconds{{gpu_group="{g}"}} '
            f"{time.time() if now is None else now:.3f}\n")


def switch_metrics(group: str, members: list[str], active: str | None,
                   timings: dict[str, float], success: bool, rolled_back: bool,
                   now: float | None = None, counts: GroupCounts | None = None,
                   loaded: list[str] | None = None) -> str:
    """The Prometheus text exposition of one finished switch of `group` (pure).

    The Pushgateway replaces a group's previous push: its record is gauges; the counters
    (`counts`: switches by reason, their durations) are cumulative in the state folder
    (switch_counts.py) and pushed whole each time. `loaded`: the members active after it
    (a load keeps co-residents beside `active`; default: `active` alone).
    """
    loaded = [active] if loaded is None and active else loaded or []
    g = _label(group)
    lines = [
        "# TYPE stackctl_switch_in_progress gauge",
        f'stackctl_switch_in_progress{{gpu_group="{g}"}} 0',
        "# TYPE stackctl_switch_last_timestamp_seconds gauge",
        f'stackctl_switch_last_timestamp_seconds{{gpu_group="{g}"}} '
        f"{time.time() if now is None else now:.3f}",
        "# TYPE stackctl_switch_success gauge",
        f'stackctl_switch_success{{gpu_group="{g}"}} {int(success)}',
        "# TYPE stackctl_switch_rolled_back gauge",
        f'stackctl_switch_rolled_back{{gpu_group="{g}"}} {int(rolled_back)}',
        "# TYPE stackctl_switch_duration_seconds gauge",
    ]
    lines += [f'stackctl_switch_duration_seconds{{gpu_group="{g}",phase="{PHASES[k]}"}} {v:.3f}'
              for k, v in timings.items() if k in PHASES]
    lines.append("# TYPE stackctl_gpu_group_active gauge")
    lines += [f'stackctl_gpu_group_active{{gpu_group="{g}",provider="{_label(m)}"}} '
              f"{int(m in loaded)}" for m in members]
    if counts is not None:
        lines += counts_metrics(g, counts)
    return "\n".join(lines) + "\n"


def push_switch(url: str, group: str, body: str, timeout: float = 0.5,
                replace: bool = True) -> str | None:
    """PUT the group's record, replacing its last one (`replace`), or POST it, replacing only
    the series it names; None on success, else why not."""
    # here: switch imports this module, and requests (~100 ms, measured) only once it is done
    import requests

    where = f"{url}/metrics/job/{SWITCH_JOB}/gpu_group/{quote(group, safe='')}"
    try:
        r = requests.request("PUT" if replace else "POST", where, data=body.encode(),
                             timeout=timeout,
                             headers={"Content-Type": "text/plain; version=0.0.4"})
    except requests.RequestException as exc:
        if _refused(exc):
            return f"the Pushgateway at {url} {REFUSED}"
        return f"the Pushgateway at {url} did not answer ({type(exc).__name__})"
    return None if r.ok else f"the Pushgateway at {url} answered {r.status_code}"


REFUSED = "refused the connection (nothing listens: it does not run)"


def _refused(exc: BaseException) -> bool:
    """requests' ConnectionError → urllib3's MaxRetryError → its reason, raised while
    handling the socket's ConnectionRefusedError."""
    reason = getattr(exc.args[0] if exc.args else None, "reason", None)
    return isinstance(getattr(reason, "__context__", None), ConnectionRefusedError)


class SwitchReport:
    """A switch's record on the Pushgateway (a no-op without one): `started` goes out on a
    background thread while the switch stops the old member; `finished` waits at most
    `timeout` once the switch is done. Neither ever raises."""

    def __init__(self, url: str | None, group: str, members: list[str],
                 timeout: float = 0.5):
        self.url, self.group, self.members, self.timeout = url, group, members, timeout
        self._start: threading.Thread | None = None
        self.problem: str | None = None

    @property
    def refused(self) -> bool:
        """Not pushed because nothing listens at the address: the Pushgateway does not run."""
        return self.problem is not None and self.problem.endswith(REFUSED)

    def started(self) -> None:
        if self.url is None:
            return
        # POST: the last switch's record (active member, durations) stays on the dashboards
        body = switch_started(self.group)
        self._start = threading.Thread(target=self._push, args=(body, False), daemon=True)
        self._start.start()

    def finished(self, active: str | None, timings: dict[str, float], success: bool,
                 rolled_back: bool, counts: GroupCounts | None = None,
                 loaded: list[str] | None = None) -> None:
        if self.url is None:
            return
        if self._start is not None:
            self._start.join(self.timeout)  # the final record must land after the first
        self._push(switch_metrics(self.group, self.members, active, timings, success,
                                  rolled_back, counts=counts, loaded=loaded))

    def _push(self, body: str, replace: bool = True) -> None:
        assert self.url is not None
        self.problem = push_switch(self.url, self.group, body, self.timeout,
                                   replace) or self.problem


@dataclass(frozen=True)
class Alert:
    name: str
    severity: str
    summary: str
    since: str
    labels: dict[str, str]


def firing_alerts(url: str, timeout: float = 0.8) -> list[Alert] | None:
    """Alerts Prometheus has firing, most severe first; None when it does not answer."""
    import requests  # here: see push_switch

    try:
        r = requests.get(f"{url}/api/v1/alerts", timeout=timeout)
        data = r.json() if r.ok else None
    except (requests.RequestException, ValueError):
        return None
    if not isinstance(data, dict) or data.get("status") != "success":
        return None
    rank = {"critical": 0, "warning": 1, "info": 2}
    out = []
    for a in data.get("data", {}).get("alerts", []):
        if a.get("state") != "firing":
            continue
        labels = dict(a.get("labels", {}))
        out.append(Alert(name=labels.pop("alertname", "?"),
                         severity=labels.pop("severity", "none"),
                         summary=a.get("annotations", {}).get("summary", ""),
                         since=a.get("activeAt", ""), labels=labels))
    return sorted(out, key=lambda a: (rank.get(a.severity, 3), a.name, a.since))
