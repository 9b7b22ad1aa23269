"""One `Snapshot` from the stack's sources: what `status` gathers (containers, GPU groups,
sleep states, alerts), the gateway's /metrics, the routing state (held models: a switch
under way) and the switch journal.

The sources are injected (`Sources`): tests and the benchmark feed fakes, live.py the real
ones. `Collector` keeps the readings of the last `WINDOW` seconds (`History`), so that rates
and quantiles cover a minute, like the dashboards' `rate(...[1m])`, whatever the refresh;
the figures come from Prometheus when it runs, else from the gateway's /metrics at most
every METRICS_EVERY seconds (design.md: what a read costs the gateway).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from stackctl.docker.adapter import DockerError, EngineUnreachable
from stackctl.registry.catalog import exclusive_groups, group_settings, models_of_provider
from stackctl.registry.gpu_memory import footprint, may_run_together
from stackctl.registry.load import Registry
from stackctl.switching.journal import SwitchRecord
from stackctl.top import metrics, prom
from stackctl.top.snapshot import (
    AlertView,
    GatewayView,
    GroupView,
    MemberState,
    MemberView,
    ModelView,
    Snapshot,
    SwitchView,
)

if TYPE_CHECKING:  # the type only: the fakes build one without importing requests
    from stackctl.targets.compose_status import ServiceStatus, StackStatus

WINDOW = 60.0  # seconds of readings the figures cover (the dashboards' rate(...[1m]))
METRICS_EVERY = 5.0  # seconds between two reads of the gateway's /metrics (see Collector)
SWITCHES_SHOWN = 5

HttpGet = Callable[[str, dict[str, str], float], tuple[int, str]]  # url, headers, timeout


@dataclass
class Sources:
    """Where a Snapshot comes from. `status()` raises EngineUnreachable when no engine
    answers; `get` raises on a connection error; `routing()` is the routing state file's
    document ({} without one); `switches()` the journal, newest first."""

    status: Callable[[], StackStatus]
    get: HttpGet
    routing: Callable[[], dict[str, Any]]
    switches: Callable[[], list[SwitchRecord]]
    clock: Callable[[], float]
    gateway_url: str
    gateway_key: str | None = None
    prometheus_url: str | None = None  # asked for the figures when it runs (prom.py)
    timeout: float = 0.8


@dataclass
class Figures:
    """One read of the model figures (the gateway's /metrics or Prometheus), kept until
    the next read."""

    at: float
    source: Literal["gateway", "prometheus"] | None
    window_s: float | None
    models: list[ModelView]
    gateway: GatewayView
    waiting: dict[str, float] = field(default_factory=dict)  # member → queued (Prometheus)


@dataclass
class History:
    """What a Collector keeps between refreshes."""

    readings: deque[metrics.Reading] = field(default_factory=deque)  # oldest first
    last: Figures | None = None


class Collector:
    """Collects Snapshots: the states every refresh; the model figures from Prometheus
    every refresh when it runs, else from the gateway's /metrics at most every
    `metrics_every` seconds (rendering /metrics costs the gateway tens of ms of a worker's
    event loop: benchmarks/bench_top.py), over the last `window` seconds."""

    def __init__(self, reg: Registry, sources: Sources, window: float = WINDOW,
                 metrics_every: float = METRICS_EVERY):
        self.reg, self.sources = reg, sources
        self.window, self.metrics_every = window, metrics_every
        self.history = History()

    def collect(self) -> Snapshot:
        return collect(self.reg, self.sources, self.history, self.window, self.metrics_every)


def collect(reg: Registry, src: Sources, history: History, window: float = WINDOW,
            metrics_every: float = 0.0) -> Snapshot:
    """A Snapshot now. `history` keeps the gateway's readings of the last `window` seconds
    and the last figures, reused while younger than `metrics_every` seconds and the
    gateway is up."""
    banners: list[str] = []
    st: StackStatus | None = None
    engine_problem = None
    try:
        st = src.status()
    except EngineUnreachable as exc:
        engine_problem = str(exc)
        text = str(exc)
        banners.append(text[:1].upper() + text[1:] + ". Members' states are unknown.")
    except DockerError as exc:
        engine_problem = str(exc)
        banners.append(f"Docker did not answer: {exc}")
    now = src.clock()

    last = history.last
    if (last is not None and last.source == "gateway" and now - last.at < metrics_every
            and st is not None and st.gateway.healthy):
        figures = last
    else:
        figures = history.last = _figures(src, st, history.readings, now, window)
    gateway = figures.gateway
    if figures is last:  # liveness is `status`'s, fresh; the rest as last read
        gateway = gateway.model_copy(update={"up": True})
    if not gateway.up:
        banners.append(f"Gateway down: {gateway.url} does not answer; no request figures "
                       "(`stackctl up` starts it, `stackctl logs gateway` says why).")
    elif gateway.problem:
        banners.append(f"No request figures: {gateway.problem}.")

    held = set((src.routing() or {}).get("hold", {}))
    groups = _groups(reg, st, held, figures.waiting)
    for g in groups:
        awake = [m.name for m in g.members if m.state == "awake"]
        if not may_run_together(reg, g.name, awake):  # `load` within a budget is fine
            banners.append(f"GPU group {g.name}: {len(awake)} members awake "
                           f"({', '.join(awake)}); it must be one: `stackctl switch MEMBER`.")
    return Snapshot(
        taken_at=now, project=reg.stack.project, engine=st is not None,
        engine_problem=engine_problem, gateway=gateway, groups=groups, models=figures.models,
        figures_from=figures.source, window_s=figures.window_s,
        figures_age_s=round(now - figures.at, 1) if figures.source else None,
        switches=[SwitchView(**r.model_dump())
                  for r in src.switches()[:SWITCHES_SHOWN]],
        alerts=None if st is None or st.alerts is None else [
            AlertView(name=a.name, severity=a.severity, summary=a.summary) for a in st.alerts],
        banners=banners)


def _figures(src: Sources, st: StackStatus | None, readings: deque[metrics.Reading],
             now: float, window: float) -> Figures:
    found = _from_prometheus(src, st)
    if found is not None:
        models, in_flight, waiting = found
        gateway = GatewayView(url=src.gateway_url, up=bool(st and st.gateway.healthy),
                              metrics=True, in_flight=in_flight)
        return Figures(now, "prometheus", prom.WINDOW,
                       [ModelView(**vars(f)) for f in models], gateway, waiting)
    gateway, reading = _gateway(src, st, now)
    if reading is None:
        return Figures(now, None, None, [], gateway)
    while readings and readings[0].at < now - window:
        readings.popleft()
    before = readings[0] if readings else None
    readings.append(reading)
    return Figures(now, "gateway", round(now - before.at, 1) if before is not None else None,
                   [ModelView(**vars(f)) for f in metrics.figures(reading, before)], gateway)


def _from_prometheus(src: Sources, st: StackStatus | None
                     ) -> tuple[list[metrics.ModelFigures], float | None, dict[str, float]] | None:
    """The figures from Prometheus when it runs (it answered `status`'s alerts query) and
    every query answers; else None: the gateway's /metrics then."""
    if src.prometheus_url is None or st is None or st.alerts is None:
        return None
    try:
        return prom.figures(src.get, src.prometheus_url, src.timeout)
    except prom.PrometheusError:
        return None


def _gateway(src: Sources, st: StackStatus | None, now: float
             ) -> tuple[GatewayView, metrics.Reading | None]:
    """The gateway's view and its /metrics reading (None when it has none). /metrics is the
    one request top adds to what `status` sends: it tells liveness too."""
    headers = {"Authorization": f"Bearer {src.gateway_key}"} if src.gateway_key else {}
    try:
        code, text = src.get(f"{src.gateway_url}/metrics/", headers, src.timeout)
    except Exception as exc:  # any connection error: the gateway does not answer
        up = bool(st and st.gateway.healthy)
        return GatewayView(url=src.gateway_url, up=up, problem=f"the gateway's /metrics did "
                           f"not answer ({type(exc).__name__})"), None
    if code != 200:
        why = {401: "the gateway's /metrics refused the master key (401)",
               404: "the gateway has no /metrics (404): its config lacks the prometheus "
                    "callback"}.get(code, f"the gateway's /metrics answered {code}")
        return GatewayView(url=src.gateway_url, up=True, problem=why), None
    reading = metrics.read(text, now)
    return GatewayView(url=src.gateway_url, up=True, metrics=True,
                       in_flight=reading.in_flight), reading


def member_state(svc: ServiceStatus | None, asleep: bool) -> MemberState:
    if svc is None or svc.state != "running":
        return "stopped"
    if asleep:
        return "asleep"
    return "awake" if svc.ready else "loading"


def _groups(reg: Registry, st: StackStatus | None, held: set[str],
            waiting: dict[str, float]) -> list[GroupView]:
    providers = reg.providers.providers
    services = {s.name: s for s in st.services} if st is not None else {}
    out = []
    for group, names in exclusive_groups(reg).items():
        settings = group_settings(reg, group)
        observed = st.gpu_groups.get(group) if st is not None else None
        members = []
        for name in names:
            served = models_of_provider(reg, name)
            state: MemberState = "unknown" if st is None else member_state(
                services.get(name), observed is not None and name in observed.asleep)
            members.append(MemberView(
                name=name, state=state, model=next(iter(served), None),
                footprint_gib=footprint(providers[name], settings.memory_gib).gib,
                held=any(m in held for m in served), waiting=waiting.get(name)))
        used = None
        if settings.memory_gib is not None and st is not None:
            loaded = [m.footprint_gib for m in members if m.state in ("awake", "loading")]
            used = None if None in loaded else round(sum(x for x in loaded if x), 2)
        out.append(GroupView(name=group, mode=settings.switch, members=members,
                             memory_gib=settings.memory_gib, used_gib=used,
                             switching_to=next((m.name for m in members if m.held), None)))
    return out
