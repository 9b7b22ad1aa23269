"""Host ports: what the stack needs, who holds each one, and the check `up` runs first.

Deciding is pure: (the ports the registry needs) + (listening sockets seen on the host) +
(ports Docker publishes for running containers) → one PortStatus per needed port, each
free, ours (held by this stack's own container) or foreign (anything else: a process, or a
container of another project). The effects are two observations: `host_listeners` (psutil;
a bind probe where psutil may not list sockets) and `Docker.published_ports`.

A listener and a publication are the same holder when their address and port are equal
(docker-proxy listens exactly where Docker publishes); a publication with no listener (no
userland proxy: iptables only) still holds its port.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field

from stackctl.errors import PlanError
from stackctl.registry.catalog import monitoring_components, profile_of
from stackctl.registry.catalog import profiles as all_profiles
from stackctl.registry.checks import Checker
from stackctl.registry.load import PROVIDERS, STACK, Registry
from stackctl.registry.problems import Problem
from stackctl.registry.vocabulary import CACHE, GATEWAY, MONITORING
from stackctl.targets.compose_plan import services_of

State = Literal["free", "ours", "foreign"]
WILDCARD_V4, WILDCARD_V6 = "0.0.0.0", "::"


# -- facts --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Need:
    """A host port one service publishes, and the registry key that sets it."""

    service: str
    profile: str | None  # None: always on (gateway, cache)
    port: int
    address: str
    file: str
    key: str


@dataclass(frozen=True)
class Listener:
    """A listening TCP socket on the host; pid/process None when not visible to this user."""

    address: str
    port: int
    pid: int | None = None
    process: str | None = None


@dataclass(frozen=True)
class Published:
    """A host port Docker publishes for a running container (any project)."""

    container: str
    project: str | None
    service: str | None
    address: str
    port: int


class Holder(BaseModel):
    address: str = Field(description="host address the port is held on")
    pid: int | None = Field(None, description="listening process; null when not visible "
                            "(another user's process, or no userland proxy)")
    process: str | None = Field(None, description="the process's name (docker-proxy for a "
                                "container's port)")
    container: str | None = Field(None, description="container publishing the port, if any")
    project: str | None = Field(None, description="that container's compose project")
    service: str | None = Field(None, description="that container's compose service")
    ours: bool = Field(False, description="the container belongs to this stack's project")


class PortStatus(BaseModel):
    port: int = Field(description="host port")
    address: str = Field(description="host address the stack publishes it on "
                         "(stack.bind_address)")
    service: str = Field(description="compose service that needs it")
    profile: str | None = Field(description="its compose profile; null: always on")
    file: str = Field(description="registry file that sets the port")
    key: str = Field(description="key path in that file")
    state: State = Field(description="free; ours: held by this stack's own container; "
                         "foreign: held by anything else")
    pid: int | None = Field(None, description="pid of the (first foreign, else own) holder; "
                            "null when free or not visible")
    process: str | None = Field(None, description="that holder's process name, when visible")
    container: str | None = Field(None, description="that holder's container, when it is one")
    holders: list[Holder] = Field(default_factory=list, description="everything holding the "
                                  "port on an address that collides with `address`")

    @property
    def holder(self) -> Holder | None:
        foreign = [h for h in self.holders if not h.ours]
        return (foreign or self.holders or [None])[0]


# -- pure core ----------------------------------------------------------------------------------

def needed_ports(reg: Registry, profiles: list[str] | None = None) -> list[Need]:
    """Every host port the services of `profiles` (None: every profile) publish, in service
    order: the gateway, the cache, each enabled provider with a container, monitoring."""
    stack, addr = reg.stack, reg.stack.bind_address
    active = all_profiles(reg) if profiles is None else profiles
    providers = reg.providers.providers
    out: list[Need] = []
    for service in services_of(reg, active):
        if service == GATEWAY:
            need = (None, stack.gateway.host_port, STACK, "gateway.host_port")
        elif service == CACHE:
            need = (None, stack.cache.host_port, STACK, "cache.host_port")
        elif service in providers:
            prov = providers[service]
            key = "container.host_port" if prov.container and prov.container.host_port \
                else "base_url"
            need = (profile_of(service, prov), prov.host_port, PROVIDERS,
                    f"providers.{service}.{key}")
        else:
            key, comp = monitoring_components(reg)[service]
            need = (MONITORING, comp.host_port, STACK, f"monitoring.{key}.host_port")
        profile, port, file, key = need
        if port is not None:
            out.append(Need(service, profile, port, addr, file, key))
    return out


def normal(address: str) -> str:
    """One spelling per address: brackets and IPv4-mapped IPv6 removed, '' → 0.0.0.0."""
    a = address.strip("[]").lower()
    if a.startswith("::ffff:") and "." in a:
        a = a.removeprefix("::ffff:")
    return {"": WILDCARD_V4, "localhost": "127.0.0.1", "*": WILDCARD_V4}.get(a, a)


def collide(a: str, b: str) -> bool:
    """Whether sockets on addresses a and b (same port) cannot both be bound. `::` may be
    dual-stack (Linux's default): it collides with every address; 0.0.0.0 with IPv4 ones."""
    a, b = normal(a), normal(b)
    if a == b or WILDCARD_V6 in (a, b):
        return True
    if a == WILDCARD_V4:
        return ":" not in b
    if b == WILDCARD_V4:
        return ":" not in a
    return False


def holders_of(listeners: list[Listener], published: list[Published], project: str
               ) -> dict[int, list[Holder]]:
    """port → its holders: each listener (with the container Docker publishes there, if
    any), then each publication no listener shows (no userland proxy)."""
    by_place = {(normal(p.address), p.port): p for p in published}
    out: dict[int, list[Holder]] = {}
    claimed: set[tuple[str, int]] = set()

    def add(address: str, port: int, pub: Published | None, pid: int | None = None,
            process: str | None = None) -> None:
        container = {"container": pub.container, "project": pub.project, "service": pub.service,
                     "ours": pub.project == project} if pub else {}
        out.setdefault(port, []).append(Holder(address=address, pid=pid, process=process,
                                               **container))

    for lst in listeners:
        place = (normal(lst.address), lst.port)
        if place in claimed:  # one socket listed twice (e.g. IPv4 and mapped IPv6)
            continue
        claimed.add(place)
        add(place[0], lst.port, by_place.get(place), lst.pid, lst.process)
    for place, pub in by_place.items():
        if place not in claimed:
            add(place[0], pub.port, pub)
    return out


def port_statuses(needs: list[Need], holders: dict[int, list[Holder]]) -> list[PortStatus]:
    """Each need with the holders whose address collides with it: foreign if any of them is
    not this stack's container, else ours if any is, else free."""
    out = []
    for n in needs:
        held = [h for h in holders.get(n.port, []) if collide(h.address, n.address)]
        state: State = "foreign" if any(not h.ours for h in held) else (
            "ours" if held else "free")
        st = PortStatus(port=n.port, address=n.address, service=n.service, profile=n.profile,
                        file=n.file, key=n.key, state=state, holders=held)
        first = st.holder
        if first:
            st.pid, st.process, st.container = first.pid, first.process, first.container
        out.append(st)
    return out


def describe(h: Holder, need_address: str | None = None, short: bool = False) -> str:
    """Who holds a port, in words: its container, process and pid, as far as visible (short:
    a container by its name alone)."""
    proc = f"{h.process or 'process'} pid {h.pid}" if h.pid else (h.process or "")
    where = f" on {h.address}" if need_address and normal(need_address) != h.address else ""
    if h.container and short:
        return h.container + where
    if h.container:
        project = f", compose project {h.project}" if h.project and not h.ours else ""
        return f"container {h.container}{project}" + (f" ({proc})" if proc else "") + where
    if proc:
        return proc + where
    return "a process this user cannot see" + where


def advice(st: PortStatus) -> str:
    """What to do about a foreign holder of `st`'s port."""
    h = st.holder
    if h and h.container:
        stop = f"stop it (`docker stop {h.container}`)"
    elif h and h.pid:
        stop = f"stop it (kill {h.pid})"
    else:
        stop = f"find it (`sudo ss -ltnp 'sport = :{st.port}'`) and stop it"
    where = f"{st.key} in {st.file}"
    if st.key.endswith(".base_url"):
        where = (f"the port of {st.key} in {st.file} (or set providers.{st.service}."
                 "container.host_port)")
    return f"{stop}, or give {st.service} another port: {where}"


def conflict_lines(statuses: list[PortStatus]) -> list[str]:
    """One line per foreign-held port: port, address, service, holder, what to do."""
    return [f"port {st.port} on {st.address} ({st.service}) is held by "
            f"{describe(st.holder, st.address) if st.holder else '?'}: {advice(st)}"
            for st in statuses if st.state == "foreign"]


def blocking(statuses: list[PortStatus], services: list[str]) -> list[PortStatus]:
    """What stops `up` of `services`: every foreign-held port, and a port held by this stack's
    container of another service that this `up` does not touch (after a port was moved to
    another service in the registry)."""
    out = []
    for st in statuses:
        stale = [h for h in st.holders if h.ours and h.service not in (st.service, *services)]
        if st.state == "foreign":
            out.append(st)
        elif stale:
            out.append(st.model_copy(update={"state": "foreign", "holders": stale,
                                             "container": stale[0].container,
                                             "pid": stale[0].pid, "process": stale[0].process}))
    return out


def registry_duplicates(reg: Registry) -> list[Problem]:
    """Two services on one host port, as `validate` reports them (file:line, key path)."""
    checker = Checker(reg)
    checker.check_ports()
    return [p for p in checker.problems if p.severity == "error"]


# -- effects ------------------------------------------------------------------------------------

def host_listeners(needs: list[Need] | None = None) -> list[Listener]:
    """Listening TCP sockets on this host, with their pid and process name where visible
    (psutil; on Linux another user's socket is listed without its pid). Where psutil may not
    list sockets at all (macOS without root) or is missing, each needed address:port is
    probed by binding it: a refusal is a listener of unknown pid."""
    try:  # here: `status` and `up` import this module, psutil costs them ~22 ms (measured)
        import psutil
    except ImportError:
        return bind_probe(needs or [])
    try:
        conns = psutil.net_connections(kind="tcp")
    except psutil.AccessDenied:
        return bind_probe(needs or [])
    names: dict[int, str | None] = {}

    def name(pid: int | None) -> str | None:
        if pid is None:
            return None
        if pid not in names:
            try:
                names[pid] = psutil.Process(pid).name()
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                names[pid] = None
        return names[pid]

    return [Listener(c.laddr.ip, c.laddr.port, c.pid, name(c.pid)) for c in conns
            if c.status == psutil.CONN_LISTEN and c.laddr]


def bind_probe(needs: list[Need]) -> list[Listener]:
    """A listener (pid unknown) at each needed address:port this process cannot bind."""
    out = []
    for address, port in dict.fromkeys((normal(n.address), n.port) for n in needs):
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((address, port))
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    out.append(Listener(address, port))
    return out


Observe = Callable[[list[Need]], list[Listener]]


def check_ports(reg: Registry, docker: Any, profiles: list[str] | None = None,
                listeners: Observe | None = None) -> list[PortStatus]:
    """Each port the services of `profiles` (None: every profile) need: free, ours or
    foreign. `listeners` observes the host's sockets (default: `host_listeners`)."""
    needs = needed_ports(reg, profiles)
    observe = listeners or host_listeners
    published = [Published(**p) for p in docker.published_ports()]
    return port_statuses(needs, holders_of(observe(needs), published, reg.stack.project))


class PortConflict(PlanError):
    """A port the stack needs is held by something else; nothing was started."""

    def __init__(self, message: str, statuses: list[PortStatus]):
        super().__init__(message)
        self.statuses = statuses


def ensure_ports_free(reg: Registry, docker: Any, services: list[str],
                      listeners: Observe | None = None) -> None:
    """Every host port `services` need is free or already held by this stack's container of
    that service; else PortConflict names each holder (port, address, pid, process,
    container) and what to do."""
    statuses = [st for st in check_ports(reg, docker, None, listeners) if st.service in services]
    bad = blocking(statuses, services)
    if bad:
        raise PortConflict(f"{len(bad)} port(s) the stack needs are taken, nothing was started:\n"
                           + "\n".join("  " + line for line in conflict_lines(bad))
                           + "\n(`stackctl ports` lists every port the stack needs)", bad)


__all__ = ["PortStatus", "Holder", "PortConflict", "check_ports", "ensure_ports_free",
           "registry_duplicates", "needed_ports", "host_listeners"]
