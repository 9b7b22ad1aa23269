"""`status`: what runs, how healthy it is, what it serves; all probes in parallel."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, Literal

import requests
from pydantic import BaseModel, Field

from stackctl.docker.adapter import Docker
from stackctl.docker.models import ContainerState, by_service
from stackctl.health.probes import Probe, cache_password, host_probe, redis_ping
from stackctl.monitoring.client import firing_alerts, prometheus_url
from stackctl.registry.catalog import (
    exclusive_groups,
    group_settings,
    monitoring_components,
    on_demand_groups,
    profile_of,
    sleep_members,
)
from stackctl.registry.gpu_memory import may_run_together
from stackctl.registry.load import Registry
from stackctl.registry.vocabulary import CACHE, GATEWAY, MONITORING
from stackctl.resident import process
from stackctl.switching.vllm import EngineError, VllmEngine
from stackctl.targets.compose_up import gateway_for


class ServiceStatus(BaseModel):
    name: str
    role: str = Field(description="gateway, cache, provider or monitoring")
    profile: str | None = Field(description="compose profile; null: always on")
    state: str = Field(description="Docker state, or 'absent' when no container exists")
    health: str = Field(description="healthy, unhealthy, starting or none (no healthcheck)")
    port: int | None = Field(description="host port on 127.0.0.1")
    latency_ms: float | None = Field(description="probe round trip; null when not probed/failed")
    models: list[str] = Field(default_factory=list, description="models the server lists")
    standby: bool = Field(False, description="a member of a GPU group whose other member is "
                          "active, kept stopped (restart mode) or asleep (sleep mode) by "
                          "`switch` so that it comes back quickly")
    sleep: Literal["awake", "asleep"] | None = Field(None, description="a running member of a "
                                                     "sleep-mode group, as its engine says "
                                                     "(/is_sleeping); null: not asked or no "
                                                     "answer")
    ready: bool = Field(False, description="running and healthy, or Docker's first healthcheck "
                        "is still due and the same check sent from the host passes (what `up` "
                        "and `switch` wait for)")
    restarts: int = Field(0, description="times Docker's restart policy restarted it (it died)")
    up_seconds: float | None = Field(None, description="seconds since it (re)started; null: "
                                     "not running")

    @property
    def ok(self) -> bool:
        return self.standby or self.ready


class GatewayStatus(BaseModel):
    url: str
    healthy: bool
    models: list[str] = Field(default_factory=list)
    latency_ms: float | None = None


class GroupStatus(BaseModel):
    active: str | None = Field(description="member whose container runs (and is awake); "
                               "null: none")
    members: list[str]
    mode: Literal["restart", "sleep"] = Field("restart", description="how `switch` moves it")
    running: list[str] = Field(default_factory=list, description="members whose container "
                               "runs: more than one only after an interrupted switch, or "
                               "asleep in sleep mode")
    asleep: list[str] = Field(default_factory=list, description="running members whose "
                              "engine sleeps (sleep mode)")

    @property
    def awake(self) -> list[str]:
        """Members that hold the GPU: at most one, or an interrupted switch left them."""
        return [m for m in self.running if m not in self.asleep]


class AlertStatus(BaseModel):
    name: str
    severity: str
    summary: str
    since: str = Field(description="when it became active (RFC 3339)")
    labels: dict[str, str] = Field(default_factory=dict)


class SchedulerStatus(BaseModel):
    pid: int | None = Field(description="the resident scheduler's supervisor; null: it does "
                            "not run (`stackctl up` starts it)")


class StackStatus(BaseModel):
    project: str
    gateway: GatewayStatus
    services: list[ServiceStatus]
    gpu_groups: dict[str, GroupStatus]
    scheduler: SchedulerStatus | None = Field(None, description="stacks with an on-demand "
                                              "GPU group only")
    alerts: list[AlertStatus] | None = Field(None, description="alerts firing in Prometheus, "
                                             "most severe first; null: Prometheus not running")
    healthy: bool = Field(description="gateway up and every present container healthy")

    @property
    def exit_code(self) -> int:
        """0 healthy, 1 degraded, 3 gateway down (2 is click's usage error)."""
        if not self.gateway.healthy:
            return 3
        return 0 if self.healthy else 1


def _timed(fn: Callable[[], Any]) -> tuple[Any, float | None]:
    start = time.perf_counter()
    try:
        value = fn()
    except Exception:
        return None, None
    return value, round((time.perf_counter() - start) * 1000, 1)


def _http_json(url: str, timeout: float) -> Any:
    r = requests.get(url, timeout=timeout)
    if not r.ok:
        raise ValueError(f"{url} answered {r.status_code}")
    return r.json() or {}


def _redis_ping(port: int, password: str | None, timeout: float) -> bool:
    """An authenticated PING (the stack's password from .env) must get PONG."""
    if not redis_ping(port, password, timeout=timeout):
        raise ConnectionError("no PONG")
    return True


def _provider_probe(kind: str, port: int, timeout: float) -> Callable[[], list[str]]:
    def probe() -> list[str]:
        if kind == "ollama":
            tags = _http_json(f"http://127.0.0.1:{port}/api/tags", timeout)
            return [m["name"] for m in tags.get("models", [])]
        data = _http_json(f"http://127.0.0.1:{port}/v1/models", timeout)
        return [m["id"] for m in data.get("data", [])]
    return probe


def collect_status(reg: Registry, docker: Docker, timeout: float = 0.8,
                   probe: Probe | None = None) -> StackStatus:
    """`probe(service)`: the host-side healthcheck (default: the one `up` and `switch` use)."""
    states = by_service(docker.containers())
    providers = reg.providers.providers
    rows: list[tuple[str, str, str | None, int | None, Callable[[], Any] | None]] = []
    rows.append((GATEWAY, "gateway", None, reg.stack.gateway.host_port, None))
    if reg.stack.cache.enabled:
        port, password = reg.stack.cache.host_port, cache_password(reg)
        rows.append((CACHE, "cache", None, port,
                     (lambda p=port: _redis_ping(p, password, timeout) and []) if port else None))
    for name, prov in providers.items():
        if prov.enabled and prov.container:
            port = prov.host_port
            rows.append((name, "provider", profile_of(name, prov), port,
                         _provider_probe(prov.type, port, timeout) if port else None))
    for name, (_, comp) in monitoring_components(reg).items():
        rows.append((name, "monitoring", MONITORING, comp.host_port, None))

    gw = gateway_for(reg)
    prom = prometheus_url(reg)
    prom_state = states.get("prometheus")
    with ThreadPoolExecutor(max_workers=len(rows) + 3) as pool:
        live = pool.submit(_timed, lambda: gw.live(timeout) or None)
        listed = pool.submit(_timed, lambda: gw.models(timeout))
        alerts = pool.submit(firing_alerts, prom, timeout) if (
            prom and prom_state is not None and prom_state.running) else None
        futures, pending = {}, {}
        check = host_probe(reg) if probe is None else probe
        for name, _, _, _, listing in rows:
            st = states.get(name)
            if listing is not None and st is not None and st.running:
                futures[name] = pool.submit(_timed, listing)
            if st is not None and st.running and st.health == "starting":
                # restarted by switch or up a moment ago: Docker's next check is still due
                pending[name] = pool.submit(check, name)
        sleepy = {m: pool.submit(_is_sleeping, m, providers[m].host_port)
                  for m in sleep_members(reg)
                  if providers[m].host_port and states.get(m) and states[m].running}
        results = {n: f.result() for n, f in futures.items()}
        asleep = {m: f.result() for m, f in sleepy.items()}
        passed = {n for n, f in pending.items() if f.result()}
        (alive, gw_latency), (gw_models, _) = live.result(), listed.result()

    groups = {}
    for g, members in exclusive_groups(reg).items():
        up = [m for m in members if states.get(m) and states[m].running]
        group = GroupStatus(active=None, members=members, running=up,
                            mode=group_settings(reg, g).switch,
                            asleep=[m for m in up if asleep.get(m) is True])
        group.active = next(iter(group.awake), None)
        groups[g] = group
    standby = {m for g in groups.values() if g.active for m in g.members if m != g.active}
    services = [_service(name, role, profile, port, states.get(name), results.get(name),
                         standby=name in standby, host_check_passed=name in passed,
                         sleep=asleep.get(name, "?"))
                for name, role, profile, port, _ in rows]
    gateway = GatewayStatus(url=gw.url, healthy=bool(alive), models=gw_models or [],
                            latency_ms=gw_latency)
    present_ok = all(s.ok for s in services if s.state != "absent")
    core_ok = all(s.state != "absent" for s in services if s.profile is None)
    # several awake only as `load` leaves them within a memory budget
    exclusive = all(may_run_together(reg, name, g.awake) for name, g in groups.items())
    firing = alerts.result() if alerts else None
    # on demand, the scheduler is part of the stack: without it nothing is loaded on demand
    scheduler = SchedulerStatus(pid=process.running(reg.stack.project)) \
        if on_demand_groups(reg) else None
    return StackStatus(project=reg.stack.project, gateway=gateway, services=services,
                       gpu_groups=groups, scheduler=scheduler,
                       healthy=gateway.healthy and present_ok and core_ok and exclusive
                       and (scheduler is None or scheduler.pid is not None),
                       alerts=None if firing is None else [
                           AlertStatus(**vars(a)) for a in firing])


def _is_sleeping(member: str, port: int) -> bool | None:
    try:
        return VllmEngine(member, f"http://127.0.0.1:{port}").is_sleeping(timeout=0.8)
    except EngineError:
        return None


def _service(name: str, role: str, profile: str | None, port: int | None,
             st: ContainerState | None, probed: tuple[Any, float | None] | None,
             standby: bool, host_check_passed: bool, sleep: bool | None | str = "?"
             ) -> ServiceStatus:
    """`sleep`: its engine's /is_sleeping (None: no answer; "?": not asked)."""
    value, latency = probed if probed else (None, None)
    up = None
    if st is not None and st.running and st.started_at is not None:
        up = round((datetime.now(UTC) - st.started_at).total_seconds(), 1)
    return ServiceStatus(
        name=name, role=role, profile=profile,
        state=st.state if st else "absent", health=st.health if st else "none",
        port=port, latency_ms=latency, models=value if isinstance(value, list) else [],
        standby=standby and st is not None and (not st.running or sleep is True),
        sleep=None if sleep in ("?", None) else "asleep" if sleep else "awake",
        ready=st is not None and (st.ready or host_check_passed),
        restarts=st.restarts if st else 0, up_seconds=up)


__all__ = ["collect_status", "StackStatus"]
