"""The facts `ps` shows, gathered once through `top`'s Sources (status, the routing state,
the switch journal, the gateway over loopback) and the gateway's request log lines (the
records `logs --requests` reads). Every source is best effort: what cannot be read is said
in `problems` and its columns stay empty."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from stackctl.docker.adapter import DockerError, EngineUnreachable
from stackctl.logs.records import parse_line
from stackctl.registry.load import Registry
from stackctl.residency.rows import Facts, PsTable, loaded_at, rows
from stackctl.switching.journal import SwitchRecord
from stackctl.top import metrics
from stackctl.top.collect import Sources

LOG_TAIL = 5000  # gateway log lines read for "last used": the recent past, read in ~50 ms


def last_used(lines: Iterable[str]) -> dict[str, float]:
    """Member → when the newest request it answered ended (deployment `model@member`)."""
    out: dict[str, float] = {}
    for text in lines:
        rec = parse_line(text)
        if rec is None or not rec.ok or not rec.deployment or "@" not in rec.deployment:
            continue
        member = rec.deployment.rsplit("@", 1)[1]
        out[member] = max(out.get(member, rec.time), rec.time)
    return out


def switched_in(records: list[SwitchRecord]) -> dict[str, float]:
    """Member → when its newest successful switch or load to it ended."""
    out: dict[str, float] = {}
    for r in records:
        if r.success and r.active and r.active == r.target:
            out[r.active] = max(out.get(r.active, r.at), r.at)
    return out


def held_counts(src: Sources) -> tuple[dict[str, float] | None, str | None]:
    """Model → requests the gateway holds now (its /metrics); (None, why) when unread."""
    headers = {"Authorization": f"Bearer {src.gateway_key}"} if src.gateway_key else {}
    try:
        code, text = src.get(f"{src.gateway_url}/metrics/", headers, src.timeout)
    except Exception as exc:  # any connection error: the gateway does not answer
        return None, f"the gateway's /metrics did not answer ({type(exc).__name__})"
    if code != 200:
        return None, f"the gateway's /metrics answered {code}"
    return metrics.read(text, 0.0).held, None


def collect(reg: Registry, src: Sources, log_lines: Callable[[], Iterable[str]],
            pins: set[str]) -> PsTable:
    problems: list[str] = []
    try:
        st = src.status()
    except (EngineUnreachable, DockerError) as exc:
        st = None
        problems.append(f"{exc}: members' states are unknown")
    now = src.clock()
    counts, why = held_counts(src) if st is None or st.gateway.healthy else \
        (None, "the gateway does not answer")
    if why:
        problems.append(f"requests waiting not known: {why}")
    used: dict[str, float] = {}
    if st is not None:
        try:
            used = last_used(log_lines())
        except (DockerError, OSError) as exc:
            problems.append(f"last used not known: the gateway's log was not read ({exc})")
    facts = Facts(now=now, status=st, held_models=set((src.routing() or {}).get("hold", {})),
                  held_counts=counts, last_used=used,
                  loaded_at=loaded_at(st, switched_in(src.switches()), now), pins=pins)
    return PsTable(project=reg.stack.project, taken_at=now, engine=st is not None,
                   metrics=counts is not None, rows=rows(reg, facts), problems=problems)
