"""What the resident scheduler knows between two decisions, and nothing else: each member's
residency, the requests it holds and which groups are changing. No I/O, no asyncio: the
daemon (daemon.py) feeds it events and performs what `schedule` decides; tests drive it
with fake time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from stackctl.switching.policy import MemberState
from stackctl.switching.scheduler import (
    LOADED,
    SERVABLE,
    Decision,
    GroupSpec,
    Held,
    Residency,
    Snapshot,
    schedule,
)

Reply = Callable[[dict], None]
GO: dict = {"go": True}
FAILED_BACKOFF = 30.0  # seconds a member that failed to load is not tried again


@dataclass
class Waiting:
    held: Held
    group: str
    model: str
    reply: Reply


class Book:
    """`members`: member → group of the on-demand groups; `models`: model or alias → the
    member that serves it; `fallback`: model → what answers when it cannot be loaded."""

    def __init__(self, specs: dict[str, GroupSpec], models: dict[str, str],
                 fallback: dict[str, str | None], clock: Callable[[], float]):
        self.specs, self.models, self.fallback, self.clock = specs, models, fallback, clock
        self.group_of = {m: g for g, spec in specs.items() for m in spec.members}
        self.residency: dict[str, Residency] = {m: Residency() for m in self.group_of}
        self.waiting: dict[str, Waiting] = {}  # by request id, in arrival order
        self.moving: dict[str, frozenset[str]] = {}  # group → members a running change moves
        self.failed_until: dict[str, float] = {}  # member → no new load before then
        self.served = 0  # requests answered at once (their member was loaded), not probes

    # -- events ---------------------------------------------------------------------------
    def want(self, model: str, rid: str, reply: Reply, waited: float = 0.0,
             demand: bool = True) -> str | None:
        """A request for `model` arrived `waited` seconds ago (held at the gateway by a
        switch before it asked): answered now (its member is loaded, or it is not the
        scheduler's), or held; returns the group to decide about, if any. Only `demand`
        counts as its member asked (not a switch's confirmation requests)."""
        member = self.models.get(model)
        if member is None:
            reply(GO)
            return None
        now, group = self.clock(), self.group_of[member]
        r = self.residency[member]
        if demand:
            self.residency[member] = r.asked(now - waited)
        if r.state in SERVABLE and member not in self.moving.get(group, ()):
            self.served += demand
            reply(GO)
            return None
        if self.failed_until.get(member, 0.0) > now:
            reply({"divert": self.fallback.get(model)})
            return None
        self.waiting[rid] = Waiting(Held(rid, member, now), group, model, reply)
        return group

    def recover(self, member: str) -> None:
        """Requests are inside `member` while it sleeps: hold one for it (answered by
        nobody) so that `schedule` loads it."""
        rid = f"stuck-{member}"
        if rid not in self.waiting:
            now = self.clock()
            self.waiting[rid] = Waiting(Held(rid, member, now), self.group_of[member],
                                        "", lambda doc: None)

    def drop(self, rid: str) -> None:
        """The client went away while held."""
        self.waiting.pop(rid, None)

    def observed(self, group: str, states: dict[str, MemberState]) -> None:
        """The group as the engine shows it now; a member found loaded that was not is
        loaded from now on (its residency starts)."""
        now = self.clock()
        for member, state in states.items():
            if member not in self.residency:
                continue
            r = self.residency[member]
            since = now if state in LOADED and r.state not in LOADED else r.since
            self.residency[member] = replace(r, state=state, since=since)

    def failed(self, member: str) -> None:
        """Loading `member` failed (rolled back): its held requests go to the fallback,
        and it is not tried again for a while."""
        self.failed_until[member] = self.clock() + FAILED_BACKOFF
        for rid, w in list(self.waiting.items()):
            if w.held.member == member:
                del self.waiting[rid]
                w.reply({"divert": self.fallback.get(w.model)})

    # -- deciding -------------------------------------------------------------------------
    def snapshot(self, group: str, serving: dict[str, int] | None = None) -> Snapshot:
        """`serving`: requests in flight per member, read from the engines just now (else
        0: the gateway does not report completions)."""
        spec, moving = self.specs[group], self.moving.get(group, frozenset())
        counts = serving or {}
        # a member a change is moving serves no one until it is over
        return Snapshot({m: replace(self.residency[m], state="stopped") if m in moving
                         else replace(self.residency[m], serving=counts.get(m, 0))
                         for m in spec.members},
                        tuple(w.held for w in self.waiting.values() if w.group == group),
                        self.clock())

    def decide(self, group: str, serving: dict[str, int] | None = None) -> Decision:
        """`schedule`'s decision for `group`, its releases and rejections already answered."""
        decision = schedule(self.specs[group], self.snapshot(group, serving))
        for rid in decision.release:
            self._answer(rid, GO)
        for rej in decision.reject:
            w = self.waiting.get(rej.id)
            if w is not None:
                self._answer(rej.id, {
                    "reject": True, "retry_after": rej.retry_after,
                    "message": f"{w.model}: {self.specs[group].max_queue} requests are "
                               f"already waiting for {w.held.member} to load; retry in "
                               f"{rej.retry_after}s"})
        return decision

    def _answer(self, rid: str, reply: dict) -> None:
        w = self.waiting.pop(rid, None)
        if w is not None:
            w.reply(reply)

    def held_by_member(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for w in self.waiting.values():
            out[w.held.member] = out.get(w.held.member, 0) + 1
        return out

    def release_all(self, members: Iterable[str] | None = None) -> None:
        """Answer every held request (of `members`) by its fallback rule: the scheduler is
        stopping; the gateway decides as it did without one."""
        chosen = None if members is None else set(members)
        for rid, w in list(self.waiting.items()):
            if chosen is None or w.held.member in chosen:
                del self.waiting[rid]
                w.reply({"divert": self.fallback.get(w.model)})
