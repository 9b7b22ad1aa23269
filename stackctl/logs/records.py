"""`logs`: the stack's service logs, and one record per request through the gateway.

The gateway prints one line per request (`stackctl-request {json}`, written by the callback
in incontainer/trace_callback.py, generated beside its config). Deciding is pure and tested as
data: `parse_line` turns a log line into a `RequestRecord`, `RequestFilter` keeps the
requests asked for, `last` keeps the newest N, `format_record` aligns one text line. Doing
goes through the Docker adapter: `request_records` reads (and follows) the gateway
container's log, `service_lines` the services' logs through Compose.
"""

from __future__ import annotations

import json
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing
from datetime import UTC, datetime, tzinfo
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from stackctl.errors import PlanError
from stackctl.hints import did_you_mean
from stackctl.incontainer.trace_callback import PREFIX
from stackctl.registry.catalog import deployments
from stackctl.registry.load import Registry
from stackctl.registry.vocabulary import GATEWAY
from stackctl.render.compose import render_compose

# -- records --------------------------------------------------------------------------------

class RequestRecord(BaseModel):
    """One request through the gateway, as its callback logged it (no content, no key)."""

    model_config = ConfigDict(extra="ignore")

    time: float = Field(description="when the request ended (answer complete or failed), "
                        "seconds since the epoch")
    call_id: str | None = Field(None, description="LiteLLM's call id (the x-litellm-call-id "
                                "response header)")
    status: Literal["success", "failure"]
    model: str | None = Field(None, description="the model the client asked for")
    model_group: str | None = Field(None, description="the model group that answered (or, "
                                    "for a failure, was tried first)")
    deployment: str | None = Field(None, description="the deployment that answered: "
                                   "`model@provider` (the x-litellm-model-id header)")
    fallback: bool = Field(False, description="answered by another model than the one asked, "
                           "down its fallback chain")
    attempted_fallbacks: int = Field(0, description="fallback hops taken (0: none)")
    attempted_retries: int = Field(0, description="retries within a model group")
    latency_ms: float | None = Field(None, description="from the gateway receiving the "
                                     "request to its end")
    upstream_ms: float | None = Field(None, description="the answering deployment's own call")
    tokens_in: int | None = None
    tokens_out: int | None = None
    cache_hit: bool = Field(False, description="answered from the gateway's Redis cache")
    stream: bool = False
    http_status: int | None = Field(None, description="the status the gateway answered with")
    error: str | None = Field(None, description="the exception's class, for a failure")

    @property
    def ok(self) -> bool:
        return self.status == "success"

    def at(self) -> datetime:
        return datetime.fromtimestamp(self.time, tz=UTC)

    def as_json(self) -> dict[str, Any]:
        """The record as printed by --json: `time` in ISO 8601 UTC, millisecond precision."""
        doc = self.model_dump(mode="json")
        doc["time"] = self.at().isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return doc


def parse_line(text: str) -> RequestRecord | None:
    """The record a gateway log line carries, or None: the line is not a request line (Docker
    or Compose may prefix it with a timestamp or `service  | `), or it is malformed."""
    at = text.find(PREFIX)
    if at < 0:
        return None
    try:
        doc = json.loads(text[at + len(PREFIX):])
        return RequestRecord.model_validate(doc) if isinstance(doc, dict) else None
    except ValueError:  # not JSON, or not a record (pydantic's ValidationError is one)
        return None


class RequestFilter(BaseModel):
    """Which requests to show."""

    models: tuple[str, ...] = Field((), description="keep a request if it asked for one of "
                                    "these, or was answered by one of these (model group or "
                                    "deployment id); empty: all")
    errors_only: bool = Field(False, description="only requests that failed")
    since: float | None = Field(None, description="only requests that ended at or after this "
                                "time (seconds since the epoch)")

    def matches(self, rec: RequestRecord) -> bool:
        if self.errors_only and rec.ok:
            return False
        if self.since is not None and rec.time < self.since:
            return False
        if self.models:
            names = {rec.model, rec.model_group, rec.deployment}
            if rec.deployment and "@" in rec.deployment:
                names.add(rec.deployment.rsplit("@", 1)[0])
            return any(m in names for m in self.models)
        return True


def last(records: Iterable[RequestRecord], n: int | None) -> list[RequestRecord]:
    """The newest `n` records, oldest first (all when n is None)."""
    return list(records) if n is None else list(deque(records, maxlen=n))


# -- --since ----------------------------------------------------------------------------------

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)([smhd]))+")


def parse_since(text: str, now: float) -> float:
    """`--since` as seconds since the epoch. Accepts what `docker logs --since` does:
    a duration back from now (`90s`, `10m`, `1h30m`, `2d`), a date or time in local time
    (`2026-11-29`, `2026-11-29 14:05`, `2026-11-29T14:05:30`), one with a zone (`…Z`,
    `…+01:00`), or seconds since the epoch. ValueError says what would be right."""
    s = text.strip()
    if _DURATION.fullmatch(s):
        seconds = sum(float(n) * _UNITS[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)([smhd])", s))
        return now - seconds
    if re.fullmatch(r"\d{9,}(\.\d+)?", s):
        return float(s)
    try:
        when = datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is neither a duration (e.g. 10m, 1h30m, 2d) nor a time "
                         "(e.g. 2026-11-29T14:05, 2026-11-29 14:05:30Z)") from None
    return when.timestamp()  # a time without a zone is local time


def docker_since(t: float) -> str:
    """A time for Docker's --since: seconds since the epoch (no time zone to misread)."""
    return f"{t:.6f}"


# -- text ------------------------------------------------------------------------------------

class Widths(BaseModel):
    """Column widths of the text lines: the longest names the registry can produce, so lines
    printed one by one (while following) still line up."""

    model: int = 12
    deployment: int = 20


def widths_for(reg: Registry) -> Widths:
    deps = deployments(reg)
    names = list(deps) + [a for m in reg.mappings.exact_matches.values() for a in m.aliases]
    ids = [f"{d.public}@{d.provider}" for members in deps.values() for d in members]
    return Widths(model=min(max(map(len, names), default=12), 40),
                  deployment=min(max(map(len, ids), default=20), 48))


def format_record(rec: RequestRecord, widths: Widths, tz: tzinfo | None = None) -> str:
    """One aligned line: local time, model asked → deployment that answered, flags (FALLBACK,
    cached, retried, stream), HTTP status, latency, tokens in/out or the error's class."""
    when = datetime.fromtimestamp(rec.time, tz=tz)
    stamp = when.strftime("%Y-%m-%d %H:%M:%S.") + f"{when.microsecond // 1000:03d}"
    arrow = "→" if rec.ok else "✗"
    target = rec.deployment or rec.model_group or "-"
    flags = []
    if rec.fallback:
        flags.append("FALLBACK" + (f"×{rec.attempted_fallbacks}"
                                   if rec.attempted_fallbacks > 1 else ""))
    if rec.cache_hit:
        flags.append("cached")
    if rec.attempted_retries:
        flags.append(f"retried×{rec.attempted_retries}")
    if rec.stream:
        flags.append("stream")
    status = str(rec.http_status) if rec.http_status is not None else ("ok" if rec.ok else "ERR")
    latency = f"{rec.latency_ms:.0f} ms" if rec.latency_ms is not None else "- ms"
    if rec.ok:
        tail = f"tokens {_n(rec.tokens_in)}→{_n(rec.tokens_out)}"
    else:
        tail = rec.error or "error"
    return (f"{stamp}  {(rec.model or '-'):<{widths.model}}  {arrow} "
            f"{target:<{widths.deployment}}  {' '.join(flags) or '-':<17} {status:>3} "
            f"{latency:>9}  {tail}")


def _n(value: int | None) -> str:
    return "?" if value is None else str(value)


# -- names the user typed -----------------------------------------------------------------------

def known_services(reg: Registry) -> list[str]:
    """The stack's compose services, as the generated compose file names them."""
    return list(render_compose(reg)["services"])


def check_services(reg: Registry, names: Iterable[str]) -> list[str]:
    """`names` if each is a service of the stack; else PlanError naming the unknown one, the
    closest services and all of them."""
    known = known_services(reg)
    names = list(dict.fromkeys(names))
    for name in names:
        if name not in known:
            hint = did_you_mean(name, known)
            raise PlanError(f"no service {name!r} in this stack"
                            + (f"; {hint}" if hint else "")
                            + f" (services: {', '.join(known)})")
    return names


def known_models(reg: Registry) -> list[str]:
    """Model names a request can ask for or be answered by: public models, aliases,
    deployment ids (`model@provider`)."""
    deps = deployments(reg)
    aliases = [a for m in reg.mappings.exact_matches.values() for a in m.aliases]
    ids = [f"{d.public}@{d.provider}" for members in deps.values() for d in members]
    return list(dict.fromkeys([*deps, *aliases, *ids]))


def model_hint(reg: Registry, model: str) -> str | None:
    """None when `model` is a name the registry knows; else a warning (with a did-you-mean)."""
    known = known_models(reg)
    if model in known:
        return None
    hint = did_you_mean(model, known)
    return f"no model {model!r} in the registry" + (f" ({hint})" if hint else "")


# -- doing: reading the logs ------------------------------------------------------------------

class RequestLogOptions(BaseModel):
    """What `logs --requests` reads."""

    filter: RequestFilter = Field(default_factory=RequestFilter)
    tail: int | None = Field(None, ge=0, description="only the newest N matching requests "
                             "of the history (then, with follow, every new one)")
    follow: bool = Field(False, description="keep reading: print requests as they end")


def gateway_container(docker: Any, follow: bool) -> tuple[str, bool]:
    """The gateway's container name and whether it runs. PlanError if it has no container,
    or (when following) it does not run."""
    found = docker.containers(service=GATEWAY)
    if not found:
        raise PlanError(f"the gateway (service {GATEWAY}) has no container: "
                        "run `stackctl up`")
    c = found[0]
    if follow and not c.running:
        raise PlanError(f"the gateway's container {c.name} is not running ({c.state}): "
                        "run `stackctl up`, or drop -f/--follow to read its last log")
    return c.name, c.running


OVERLAP = 2.0  # seconds the follow phase re-reads of the history phase (duplicates dropped)


def request_records(docker: Any, container: str, opts: RequestLogOptions,
                    clock: Callable[[], float] = time.time) -> Iterator[RequestRecord]:
    """The matching request records of the gateway's log, oldest first: the history (since
    `filter.since`, the newest `tail`), then, with `follow`, each new one as it is logged.

    Two reads: the history (`docker logs`), then `docker logs --follow` from a little before
    the history was read; records the history already held are dropped by call id."""
    flt = opts.filter
    since = docker_since(flt.since) if flt.since is not None else None
    started = clock()
    seen: set[str] = set()
    history: deque[RequestRecord] = deque(maxlen=opts.tail)
    with closing(docker.log_lines(container, since=since)) as lines:
        for text in lines:
            rec = parse_line(text)
            if rec is None:
                continue
            if rec.call_id and rec.time >= started - OVERLAP - 1:
                seen.add(rec.call_id)
            if flt.matches(rec):
                history.append(rec)
    yield from history
    if not opts.follow:
        return
    resume = started - OVERLAP
    if flt.since is not None:
        resume = max(resume, flt.since)
    with closing(docker.log_lines(container, since=docker_since(resume), follow=True)) as lines:
        for text in lines:
            rec = parse_line(text)
            if rec is None or (rec.call_id and rec.call_id in seen):
                continue
            if flt.matches(rec):
                yield rec


def service_lines(docker: Any, profiles: list[str], services: list[str], follow: bool = False,
                  since: float | None = None, tail: int | None = None,
                  timestamps: bool = False) -> Iterator[str]:
    """The services' log lines through Compose (`service-1  | …`), all services when
    `services` is empty; with `follow`, until interrupted."""
    # Compose reads .env before it asks the engine: without this, no engine and no .env
    # (no `up` yet) reports the missing variables instead of the missing engine
    docker.ping()
    with closing(docker.service_log_lines(
            profiles, services, follow=follow, tail=tail, timestamps=timestamps,
            since=docker_since(since) if since is not None else None)) as lines:
        yield from lines
