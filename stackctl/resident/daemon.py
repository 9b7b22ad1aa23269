"""The resident scheduler's event loop: the gateway's questions and the commands come in on
two unix sockets, `schedule` decides (through the Book), and one worker thread performs the
decisions with the same run loop and Effects as `stackctl switch`. See design.md.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stackctl.errors import PlanError
from stackctl.registry.catalog import deployments, on_demand_groups
from stackctl.registry.load import Registry
from stackctl.render.litellm import gateway_aliases
from stackctl.residency.client import ChangeOptions, LocalClient, compose_effects
from stackctl.residency.names import resolve
from stackctl.residency.pins import pinned_members, pins_path, read_pins
from stackctl.resident.book import Book
from stackctl.resident.paths import short
from stackctl.resident.process import fingerprint
from stackctl.store.lock import Busy, state_dir
from stackctl.switching import routing
from stackctl.switching.loop import SwitchFailed, SwitchOptions, ensure_active, put_away_member
from stackctl.switching.members import group_members, members_of, resolve_member
from stackctl.switching.policy import GroupState, SwitchPlan
from stackctl.switching.scheduler import (
    LOADED,
    GroupSpec,
    Held,
    Residency,
    Snapshot,
    group_spec,
    load_plan,
    preload,
    schedule,
)
from stackctl.targets.base import SwitchOutcome

if TYPE_CHECKING:
    from stackctl.docker.adapter import Docker
    from stackctl.residency.client import EffectsMaker
    from stackctl.switching.effects import Effects

OBSERVE_EVERY = 10.0  # seconds between two looks at the groups (a change made elsewhere)
LOCK_WAIT = 120.0  # seconds a change waits for a concurrent up/switch to end
READ_TIMEOUT = 5.0  # seconds a client may take to send its one line
SERVING_FRESH = 0.5  # seconds a reading of the members' requests in flight is used


class Lines:
    """A Ui that keeps a report's result lines: the switch command prints them."""

    verbose = False

    def __init__(self) -> None:
        self.lines: list[str] = []

    def result(self, text: str) -> None:
        self.lines.append(text)

    def progress(self, text: str) -> None:
        pass

    def detail(self, text: str) -> None:
        pass

    def rich(self, *objects: Any, **kwargs: Any) -> None:
        pass


def states_after(plan: SwitchPlan) -> dict[str, str]:
    """The members a successful plan changed, as they are after it."""
    out = {m: "asleep" for m in plan.sleep} | {m: "stopped" for m in plan.stop}
    out[plan.target] = "awake" if plan.mode == "sleep" else "running"
    return out


def log(text: str) -> None:
    now = time.time()  # milliseconds: the log times changes of a second or two
    sys.stderr.write(time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(now))
                     + f".{int(now % 1 * 1000):03d} " + text + "\n")
    sys.stderr.flush()


def asked_models(reg: Registry, group_of: dict[str, str]) -> dict[str, str]:
    """Model or alias → the on-demand member that serves it: the names the gateway asks
    about (every deployment of the model is on an on-demand member)."""
    deps = deployments(reg)
    out = {model: ds[0].provider for model, ds in deps.items()
           if ds and all(d.provider in group_of for d in ds)}
    for alias, model in gateway_aliases(reg, deps).items():
        if model in out:
            out[alias] = out[model]
    return out


def build_book(reg: Registry, clock: Callable[[], float] = time.monotonic) -> Book:
    pins = frozenset(pinned_members(reg, read_pins(pins_path(state_dir(), reg.stack.project))))
    specs = {g: group_spec(reg, g, pins=pins) for g in on_demand_groups(reg)}
    group_of = {m: g for g, spec in specs.items() for m in spec.members}
    ask = routing.routing_state(reg, set(group_of)).get("ask", {})
    fallback = {name: entry["fallback"] for name, entry in ask.items()}
    return Book(specs, asked_models(reg, group_of), fallback, clock)


class Daemon:
    """One stack's scheduler. `docker` makes the adapter, `effects` the Effects of a change
    (compose_effects; tests inject theirs)."""

    def __init__(self, reg: Registry, docker: Callable[[], Docker],
                 effects: EffectsMaker | None = None, book: Book | None = None,
                 observe_every: float = OBSERVE_EVERY,
                 in_flight: Callable[[str], int] | None = None):
        self.reg, self._docker = reg, docker
        self.in_flight = in_flight or self._engine_in_flight
        self.effects = effects or compose_effects
        self.book = book or build_book(reg)
        self.members = members_of(reg)
        self.observe_every = observe_every
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="change")
        self.to_preload = {g: preload(spec) for g, spec in self.book.specs.items()}
        self.changes = 0  # changes performed (switches and put-aways)
        self.commands = 0  # `switch` commands waiting for the change under way
        self.serving: dict[str, tuple[float, dict[str, int]]] = {}  # group → (when, counts)
        self.reading: set[str] = set()  # groups whose serving counts are being read
        self.fingerprint = fingerprint(reg.config_dir)
        self._adapter: Docker | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._tick_pending = False
        self.loop: asyncio.AbstractEventLoop | None = None

    def docker(self) -> Docker:
        if self._adapter is None:
            self._adapter = self._docker()
        return self._adapter

    # -- serving --------------------------------------------------------------------------
    async def run(self, gateway_path: Path, control_path: Path, stop: asyncio.Event) -> None:
        self.loop = asyncio.get_running_loop()
        for g in self.book.specs:  # what runs now, before the first question is answered
            self._observed(g, await self.loop.run_in_executor(self.pool, self._observe, g))
        servers = []
        for path, handler, mode in ((gateway_path, self._gateway_client, 0o666),
                                    (control_path, self._control_client, 0o600)):
            path.unlink(missing_ok=True)
            with short(path) as where:
                servers.append(await asyncio.start_unix_server(handler, path=where))
            # the gateway may run as another user than stackctl; the control socket is
            # the user's alone (it switches the GPU)
            os.chmod(path, mode)
        log(f"scheduler of {self.reg.stack.project!r} serving: groups "
            f"{', '.join(self.book.specs) or '(none on demand)'}; pid {os.getpid()}")
        self._tick()
        watcher = asyncio.ensure_future(self._watch())
        try:
            await stop.wait()
        finally:
            watcher.cancel()
            for server in servers:
                server.close()
            self.book.release_all()  # the gateway decides without us, as it did before
            for path in (gateway_path, control_path):
                path.unlink(missing_ok=True)
            self.pool.shutdown(wait=False, cancel_futures=True)
            log("scheduler stopped")

    async def _watch(self) -> None:
        """Every few seconds, the groups no change is under way in, as the engine shows them
        (a `switch` or `up` made elsewhere), and the pins (`stackctl pin`); then decide
        again (idle members)."""
        assert self.loop is not None
        while True:
            await asyncio.sleep(self.observe_every)
            self._read_pins()
            for g in self.book.specs:
                if g in self.book.moving:
                    continue
                try:
                    states = await self.loop.run_in_executor(self.pool, self._observe, g)
                except Exception as exc:  # the engine away for a moment: next round
                    log(f"could not read group {g}: {exc}")
                    continue
                if g not in self.book.moving:
                    self._observed(g, states)
            self._tick()

    def _read_pins(self) -> None:
        pins = pinned_members(self.reg, read_pins(pins_path(state_dir(), self.reg.stack.project)))
        for g, spec in self.book.specs.items():
            if {m for m, ms in spec.members.items() if ms.pinned} != pins & set(spec.members):
                self.book.specs[g] = dataclasses.replace(spec, members={
                    m: dataclasses.replace(ms, pinned=m in pins)
                    for m, ms in spec.members.items()})
                log(f"pins of group {g}: {', '.join(sorted(pins & set(spec.members))) or 'none'}")

    def _observe(self, group: str) -> dict[str, str]:
        """The group's states, and which sleeping members hold requests (`stuck`)."""
        opts = SwitchOptions(member=next(iter(self.book.specs[group].members)))
        states = dict(self.effects(self.reg, self.docker(), opts, log).observe(group).members)
        for member, state in list(states.items()):
            if state == "asleep":
                try:
                    if self.in_flight(member):
                        states[member] = "stuck"
                except Exception:  # cannot say: as asleep
                    pass
        return states

    def _engine_in_flight(self, member: str) -> int:
        from stackctl.switching.vllm import VllmEngine

        m = self.members[member]
        return VllmEngine(m.name, m.url).in_flight() if m.url else 0

    def _observed(self, group: str, states: dict[str, Any]) -> None:
        """A sleeping member that holds requests (one reached it as it fell asleep and
        the change that would have woken it to answer them was cut short: the scheduler
        was killed) is loaded as if they were held here: they are answered, not lost."""
        for member in [m for m, s in states.items() if s == "stuck"]:
            states[member] = "asleep"
            log(f"{member} sleeps with requests inside: loading it to answer them")
            self.book.recover(member)
        self.book.observed(group, states)

    async def _gateway_client(self, reader: asyncio.StreamReader,
                              writer: asyncio.StreamWriter) -> None:
        """One request's question: `{"v": 1, "model", "id", "stream", "waited", "probe"}` →
        one answer line, when its member is loaded (go), it cannot be (divert) or past the
        queue (reject).
        The gateway closes the connection when it stops waiting: the request is dropped."""
        assert self.loop is not None
        rid = None
        try:
            msg = json.loads(await asyncio.wait_for(reader.readline(), READ_TIMEOUT))
            model, rid = str(msg["model"]), str(msg["id"])
            # seconds held by a switch before asking (none from a hook older than `waited`)
            waited = float(msg.get("waited", 0.0))
            if not 0.0 <= waited <= 3600.0:  # NaN included
                waited = 0.0
            demand = msg.get("probe") is not True  # a switch's confirmation is not
            answer: asyncio.Future[dict] = self.loop.create_future()

            def reply(doc: dict) -> None:
                if not answer.done():
                    answer.set_result(doc)

            if self.book.want(model, rid, reply, waited, demand) is not None:
                self._tick_soon()
            if not answer.done():
                gone = asyncio.ensure_future(reader.read(1))
                done, _ = await asyncio.wait({answer, gone},
                                             return_when=asyncio.FIRST_COMPLETED)
                gone.cancel()
                if answer not in done:
                    self.book.drop(rid)
                    self._tick_soon()
                    return
            writer.write(json.dumps(answer.result()).encode() + b"\n")
            await writer.drain()
        except (TimeoutError, ValueError, KeyError, TypeError, OSError):
            if rid is not None:
                self.book.drop(rid)
        finally:
            writer.close()

    # -- deciding -------------------------------------------------------------------------
    def _tick_soon(self) -> None:
        """Decide once for every arrival of the same loop turn (a burst is one round)."""
        if not self._tick_pending and self.loop is not None:
            self._tick_pending = True
            self.loop.call_soon(self._tick)

    def _tick(self) -> None:
        self._tick_pending = False
        wake_at: list[float] = []
        for g in self.book.specs:
            counts = self._serving_now(g)
            decision = self.book.decide(g, counts)
            if decision.next_at is not None:
                wake_at.append(decision.next_at)
            if counts is not None and decision.waiting_for is not None:
                # kept by requests in flight: look again soon, they end
                wake_at.append(self.book.clock() + SERVING_FRESH)
            if g in self.book.moving or self.pool_busy or self.commands or g in self.reading:
                continue
            if decision.switch is not None and decision.evict and counts is None:
                self._count_serving(g)  # what the members evicted are serving, first
            elif decision.switch is not None:
                self._change(g, "demand", decision.switch)
            elif decision.put_away:
                self._change(g, "idle", decision.put_away[0].member)
            elif (member := self._next_preload(g)) is not None:
                self._change(g, "preload", member)
        if wake_at and self.loop is not None:
            if self._timer is not None:
                self._timer.cancel()
            delay = max(0.05, min(wake_at) - self.book.clock())
            self._timer = self.loop.call_later(delay, self._tick)

    def _serving_now(self, group: str) -> dict[str, int] | None:
        read = self.serving.get(group)
        return read[1] if read and self.book.clock() - read[0] < SERVING_FRESH else None

    def _count_serving(self, group: str) -> None:
        """Read the loaded members' requests in flight from their engines (min_residency
        protects a member serving requests), then decide again."""
        assert self.loop is not None
        loaded = [m for m in self.book.specs[group].members
                  if self.book.residency[m].state in LOADED]
        self.reading.add(group)

        def read() -> dict[str, int]:
            counts = {}
            for m in loaded:
                try:
                    counts[m] = self.in_flight(m)
                except Exception:  # cannot say: serving nothing we know of
                    counts[m] = 0
            return counts

        def done(future: Any) -> None:
            self.reading.discard(group)
            try:
                self.serving[group] = (self.book.clock(), future.result())
            except Exception:
                self.serving[group] = (self.book.clock(), {})
            self._tick()

        self.loop.run_in_executor(self.pool, read).add_done_callback(done)

    @property
    def pool_busy(self) -> bool:
        return bool(self.book.moving)  # one change at a time, whatever its group

    def _next_preload(self, group: str) -> str | None:
        wanted = self.to_preload.get(group, [])
        while wanted and self.book.residency[wanted[0]].state in LOADED:
            wanted.pop(0)
        return wanted.pop(0) if wanted else None

    # -- doing ----------------------------------------------------------------------------
    def _change(self, group: str, cause: str, what: SwitchPlan | str) -> None:
        """Perform a load (the plan `schedule` made, or a preload) or a put-away in the
        worker thread; the group's questions wait meanwhile; decide again when it ends."""
        assert self.loop is not None
        spec = self.book.specs[group]
        if isinstance(what, SwitchPlan):
            plan, member = what, what.target
            moving = frozenset([member, *plan.sleep, *plan.stop])
        else:
            plan, member, moving = None, what, frozenset(spec.members)
        self.book.moving[group] = moving
        known = {m: self.book.residency[m] for m in spec.members}
        held = [w.held.arrived for w in self.book.waiting.values() if w.held.member == member]
        now = self.book.clock()

        def asked(m: str) -> str:
            r = self.book.residency[m]
            return (f"{m} (asked {now - r.last_used:.1f}s ago, {r.heat_at(now):.1f} lately, "
                    f"{r.fame_at(now):.1f} over minutes)"
                    if r.last_used else f"{m} (never asked)")
        log(f"{cause}: {'putting away' if cause == 'idle' else 'loading'} {member}"
            + (f" ({len(held)} held, the first for {now - min(held):.2f}s)" if held else "")
            + (f"; evicting {', '.join(map(asked, plan.sleep + plan.stop))}"
               f"{'; keeping ' + ', '.join(map(asked, plan.keep)) if plan.keep else ''}"
               if plan is not None and (plan.sleep or plan.stop) else ""))
        future = self.loop.run_in_executor(
            self.pool, self._perform, group, spec, cause, member, plan, known)
        future.add_done_callback(lambda f: self._changed(group, member, cause, f))

    def _perform(self, group: str, spec: GroupSpec, cause: str, member: str,
                 plan: SwitchPlan | None, known: dict[str, Residency]
                 ) -> tuple[bool | None, dict[str, str]]:
        opts = SwitchOptions(member=member, lock_wait=LOCK_WAIT,
                             cause="idle" if cause == "idle" else "demand",
                             reason=f"scheduler: {cause}")
        effects = self._told(self.effects(self.reg, self.docker(), opts, log), group)
        ok: bool | None = True
        try:
            if cause == "idle":
                done = put_away_member(effects, opts).plan
                return True, {done.member: "asleep" if done.verb == "sleep" else "stopped"}
            else:
                def choose(state: GroupState, target: str) -> SwitchPlan:
                    """The plan decided on, unless the engine shows the group otherwise:
                    then decided again on what it shows, with what the scheduler knows of
                    each member's use (least recently used first out)."""
                    if plan is not None and dict(state.members) == {
                            m: r.state for m, r in known.items()}:
                        return plan
                    log(f"group {group} is not as expected: "
                        + ", ".join(f"{m} {s}" for m, s in state.members.items()))
                    now = Snapshot({m: dataclasses.replace(
                        r, state=state.members.get(m, "stopped")) for m, r in known.items()},
                        (Held("command", target, 0.0),), self.book.clock())
                    again = schedule(spec, now).switch
                    if again is not None and again.target == target:
                        return again
                    return load_plan(spec, state, target)

                result = ensure_active(effects, opts, choose=choose)
                log(f"{member} loaded in {result.timings.get('total', 0.0):.2f}s ("
                    + ", ".join(f"{k} {v:.2f}s" for k, v in result.timings.items()
                                if k != "total") + ")")
                # its held requests go as soon as it is over: no second look first
                return True, states_after(result.plan)
        except SwitchFailed as exc:
            log(f"{member}: {exc}")
            ok = False
        except (Busy, PlanError) as exc:
            log(f"{member} not loaded: {exc}")
            ok = None
        except Exception as exc:  # the engine away: the next look at the group tells
            log(f"{member}: {type(exc).__name__}: {exc}")
            ok = None
        return ok, dict(effects.observe(group).members)

    def _told(self, effects: Effects, group: str) -> Effects:
        """`effects`, telling this loop when the change routes members again: from then on
        their requests go (the change's own confirmation requests among them), while the
        rest of the change goes on."""
        if group not in self.book.specs:
            return effects
        loop, routed = self.loop, self._routed
        assert loop is not None

        class Told:
            def __getattr__(self, name: str) -> Any:
                return getattr(effects, name)

            def route(self, active: str | None, held: str | None = None,
                      keep: frozenset[str] = frozenset()) -> None:
                effects.route(active, held, keep)
                loop.call_soon_threadsafe(routed, group, active, keep)

        return Told()  # type: ignore[return-value]

    def _routed(self, group: str, active: str | None, keep: frozenset[str]) -> None:
        serving = {m for m in (active, *keep) if m is not None}
        if group in self.book.moving:
            self.book.moving[group] = self.book.moving[group] - serving
        mode = self.book.specs[group].mode
        self.book.observed(group, {m: "awake" if mode == "sleep" else "running"
                                   for m in serving})
        held = [w.held for w in self.book.waiting.values() if w.held.member in serving]
        if held:
            log(f"{len(held)} held request(s) go, the first after "
                f"{self.book.clock() - min(h.arrived for h in held):.2f}s")
        self._tick()

    def _changed(self, group: str, member: str, cause: str, future: Any) -> None:
        self.book.moving.pop(group, None)
        self.changes += 1
        try:
            ok, states = future.result()
        except Exception as exc:
            log(f"could not read group {group} after the change: {exc}")
            ok, states = None, None
        if states:
            self._observed(group, states)
        if ok is False and cause != "idle":
            self.book.failed(member)
        elif ok is None:
            self.book.release_all([member])  # not loaded now: the fallback, not a hang
        self._tick()

    # -- commands -------------------------------------------------------------------------
    async def _control_client(self, reader: asyncio.StreamReader,
                              writer: asyncio.StreamWriter) -> None:
        """`{"op": "ping" | "state" | "switch", …}` → progress lines `{"say": …}`, then one
        answer with `ok`."""
        try:
            msg = json.loads(await asyncio.wait_for(reader.readline(), READ_TIMEOUT))
            op = msg.get("op")
            if op == "ping":
                answer = {"ok": True, "pid": os.getpid(), "project": self.reg.stack.project,
                          "config_dir": str(self.reg.config_dir),
                          "groups": list(self.book.specs), "changes": self.changes,
                          "fingerprint": self.fingerprint}
            elif op == "state":
                answer = {"ok": True, "members": self.state()}
            elif op in ("switch", "load", "unload"):
                answer = await self._command(op, msg, writer)
            else:
                answer = {"ok": False, "error": f"unknown op {op!r}"}
            writer.write(json.dumps(answer).encode() + b"\n")
            await writer.drain()
        except (TimeoutError, ValueError, TypeError, AttributeError, OSError):
            pass
        finally:
            writer.close()

    def state(self) -> dict[str, dict]:
        held = self.book.held_by_member()
        now = self.book.clock()
        return {m: {"group": g, "state": r.state, "waiting": held.get(m, 0),
                    "idle_s": round(now - max(r.since, r.last_used), 1),
                    "loaded_s": round(now - r.since, 1) if r.state in LOADED else None}
                for m, g in self.book.group_of.items()
                for r in [self.book.residency[m]]}

    async def _command(self, op: str, msg: dict, writer: asyncio.StreamWriter) -> dict:
        """`stackctl switch`, `load` or `unload` through the scheduler: what the command
        would run itself, performed here (no start-up of its own; and the scheduler knows
        the group as it leaves it), after the change under way."""
        assert self.loop is not None
        try:
            if op == "switch":
                opts = SwitchOptions(member=str(msg["member"]), lock_wait=msg.get("lock_wait"),
                                     timeout=float(msg.get("timeout", 300)),
                                     routable_timeout=float(msg.get("routable_timeout", 30)))
                group, member = resolve_member(self.members, opts.member)
                opts.member = member
            else:
                change = ChangeOptions.model_validate(msg["options"])
                group, member = resolve(self.reg, self.members, change.model)
        except (PlanError, ValueError, KeyError, TypeError) as exc:
            return {"ok": False, "error": str(exc), "restored": True, "kind": "plan"}
        self.commands += 1  # no new change starts meanwhile: a command is not starved
        try:
            while self.pool_busy:  # after the change under way (its own group's included)
                await asyncio.sleep(0.02)
        finally:
            self.commands -= 1
        on_demand = group in self.book.specs
        if on_demand:
            self.book.moving[group] = frozenset(group_members(self.members, group))
        loop = self.loop

        def say(text: str) -> None:
            line = json.dumps({"say": text}).encode() + b"\n"
            loop.call_soon_threadsafe(writer.write, line)

        def told(reg: Registry, docker: Docker, opts: SwitchOptions,
                 say: Callable[[str], None]) -> Effects:
            return self._told(self.effects(reg, docker, opts, say), group)

        def residency() -> tuple[dict, dict[str, str] | None]:
            client = LocalClient(self.reg, self.docker, say, effects=told)
            try:
                done = getattr(client, op)(change)
            except SwitchFailed as exc:
                answer = {"ok": False, "error": str(exc), "restored": exc.restored}
            except (Busy, PlanError) as exc:
                answer = {"ok": False, "error": str(exc), "restored": True, "kind": "plan"}
            else:
                answer = {"ok": True, "change": done.model_dump(mode="json")}
            opts = SwitchOptions(member=member)
            return answer, dict(told(self.reg, self.docker(), opts, log).observe(group).members) \
                if on_demand else None

        def work() -> tuple[dict, dict[str, str] | None]:
            if op != "switch":
                return residency()
            effects = told(self.reg, self.docker(), opts, say)
            try:
                outcome = SwitchOutcome(ensure_active(effects, opts), dry_run=False)
            except SwitchFailed as exc:
                answer = {"ok": False, "error": str(exc), "restored": exc.restored}
            except (Busy, PlanError) as exc:
                answer = {"ok": False, "error": str(exc), "restored": True, "kind": "plan"}
            else:
                lines = Lines()
                outcome.show(lines)
                # the group as the plan left it: the command is answered without another
                # look at the engine (the next regular look confirms it)
                return {"ok": True, "result": outcome.result.model_dump(mode="json"),
                        "document": outcome.document(), "lines": lines.lines}, \
                    states_after(outcome.result.plan)
            return answer, dict(effects.observe(group).members) if on_demand else None

        try:
            answer, states = await loop.run_in_executor(self.pool, work)
        except Exception as exc:
            answer, states = {"ok": False, "error": f"{type(exc).__name__}: {exc}",
                              "restored": False, "engine": True}, None
        finally:
            if on_demand:
                self.book.moving.pop(group, None)
        if states and on_demand:
            self._observed(group, states)
        self.changes += 1
        self._tick()
        return answer
