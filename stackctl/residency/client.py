"""The one interface `ps`, `load`, `unload`, `pin` and `unpin` talk to: `ResidencyClient`.

Without a scheduler `client_for` answers with `LocalClient`, which does the work in the
command's own process: it reads the stack like `status`/`top`, and changes a group through the switching
run loop (`loop.ensure_active`, `loop.put_away_member`) with the local engine's Effects,
under the stack lock — the same single owner as `stackctl switch`. Once a resident
scheduler runs (issue 20), `client_for` returns `SchedulerClient`, which sends the same
options to it and gets the same answers back (these pydantic models are the wire format), so
the commands do not change. The local engine only: a Swarm or Kubernetes stack is switched with
`stackctl switch`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydantic import BaseModel, Field

from stackctl.errors import PlanError
from stackctl.registry.load import Registry
from stackctl.residency.names import resolve
from stackctl.residency.pins import (
    pinned_members,
    pins_path,
    read_pins,
    registry_pinned,
    set_pinned,
)
from stackctl.residency.rows import PsTable
from stackctl.resident import client as scheduler
from stackctl.store.lock import state_dir
from stackctl.switching.loop import SwitchFailed, SwitchOptions, ensure_active, put_away_member
from stackctl.switching.members import members_of
from stackctl.switching.scheduler import group_spec, load_plan

if TYPE_CHECKING:
    from stackctl.docker.adapter import Docker
    from stackctl.switching.effects import Effects
    from stackctl.top.collect import Sources


class ChangeOptions(BaseModel):
    """What `load` and `unload` ask."""

    model: str = Field(description="a member, a unique part of its name, or a model it serves")
    timeout: float = Field(300, gt=0, description="load: seconds the member may take to be "
                           "healthy before rollback")
    routable_timeout: float = Field(30, gt=0, description="load: seconds for the gateway to "
                                    "route to it once healthy")
    dry_run: bool = Field(False, description="decide and describe; change nothing")
    lock_wait: float | None = Field(None, description="seconds to wait for a concurrent "
                                    "up/switch/load; None: fail at once")
    reason: str | None = Field(None, description="kept in the switch journal; default: "
                               "`stackctl load` / `stackctl unload`")


class Change(BaseModel):
    """What `load` or `unload` did."""

    action: Literal["load", "unload"]
    member: str
    group: str
    noop: bool = Field(description="nothing to change: it was loaded (checked ready and "
                       "routable) or not loaded")
    dry_run: bool = False
    steps: list[str] = Field(description="the plan, in words")
    plan: dict[str, Any] = Field(description="the plan as data (switch's, or the put-away's)")
    timings: dict[str, float] = Field(default_factory=dict, description="seconds")


class PinChange(BaseModel):
    member: str
    group: str
    pinned: bool = Field(description="pinned now")
    changed: bool = Field(description="false: it already was (or was not)")
    pinned_members: list[str] = Field(description="every pinned member of the stack")


class ResidencyClient(Protocol):
    def ps(self) -> PsTable: ...
    def load(self, opts: ChangeOptions) -> Change: ...
    def unload(self, opts: ChangeOptions) -> Change: ...
    def pin(self, model: str, pinned: bool) -> PinChange: ...


EffectsMaker = Callable[[Registry, "Docker", SwitchOptions, Callable[[str], None]], "Effects"]


def compose_effects(reg: Registry, docker: Docker, opts: SwitchOptions,
                    say: Callable[[str], None]) -> Effects:
    """The local engine's Effects (tests replace this with one told how readiness and
    routing look)."""
    from stackctl.targets.compose_switch import ComposeEffects  # requests: after the parse

    return ComposeEffects(reg, docker, opts, say)


class LocalClient:
    """Does the work in this process (see the module's docstring)."""

    def __init__(self, reg: Registry, docker: Callable[[], Docker],
                 say: Callable[[str], None] = lambda s: None,
                 effects: EffectsMaker | None = None,
                 sources: Callable[[], Sources] | None = None):
        self.reg, self._docker, self.say = reg, docker, say
        self._effects, self._sources = effects, sources
        self.members = members_of(reg)
        self.pins_file = pins_path(state_dir(), reg.stack.project)

    def _local_engine(self, what: str) -> None:
        kind = self.reg.stack.deploy.target
        if kind != "compose":
            raise PlanError(f"`stackctl {what}` drives a stack on the local Docker engine; this "
                            f"one is deployed to {kind}: `stackctl switch MEMBER` moves its "
                            "GPU groups")

    def pinned(self) -> set[str]:
        return pinned_members(self.reg, read_pins(self.pins_file))

    def ps(self) -> PsTable:
        from stackctl.residency.collect import LOG_TAIL, collect

        self._local_engine("ps")
        made: list[Docker] = []

        def docker() -> Docker:
            if not made:
                made.append(self._docker())
            return made[0]

        if self._sources is not None:
            src = self._sources()
        else:
            from stackctl.top.live import live_sources

            src = live_sources(self.reg, docker)

        def lines():  # type: ignore[no-untyped-def]
            from stackctl.logs.records import gateway_container

            name, _ = gateway_container(docker(), follow=False)
            return docker().log_lines(name, tail=LOG_TAIL)

        return collect(self.reg, src, lines, self.pinned())

    def _switch_options(self, member: str, opts: ChangeOptions, reason: str) -> SwitchOptions:
        return SwitchOptions(member=member, timeout=opts.timeout,
                             routable_timeout=opts.routable_timeout, dry_run=opts.dry_run,
                             lock_wait=opts.lock_wait, reason=reason)

    def _effects_for(self, sopts: SwitchOptions) -> Effects:
        make = self._effects or compose_effects
        return make(self.reg, self._docker(), sopts, self.say)

    def load(self, opts: ChangeOptions) -> Change:
        self._local_engine("load")
        group, member = resolve(self.reg, self.members, opts.model)
        spec = group_spec(self.reg, group, pins=frozenset(self.pinned()))
        sopts = self._switch_options(member, opts, opts.reason or "stackctl load")
        result = ensure_active(self._effects_for(sopts), sopts,
                               choose=lambda state, target: load_plan(spec, state, target))
        plan = result.plan
        return Change(action="load", member=member, group=group, noop=plan.noop,
                      dry_run=opts.dry_run, steps=plan.describe(),
                      plan=plan.model_dump(mode="json"), timings=result.timings)

    def unload(self, opts: ChangeOptions) -> Change:
        self._local_engine("unload")
        group, member = resolve(self.reg, self.members, opts.model)
        if member in registry_pinned(self.reg):
            raise PlanError(f"{member} is pinned in the registry (providers.yaml "
                            f"gpu.pinned): it is not unloaded; set pinned: false there first")
        if member in self.pinned():
            raise PlanError(f"{member} is pinned: it is not unloaded; `stackctl unpin "
                            f"{member}` first")
        sopts = self._switch_options(member, opts, opts.reason or "stackctl unload")
        result = put_away_member(self._effects_for(sopts), sopts)
        plan = result.plan
        return Change(action="unload", member=member, group=group, noop=plan.noop,
                      dry_run=opts.dry_run, steps=plan.describe(),
                      plan=plan.model_dump(mode="json"), timings=result.timings)

    def pin(self, model: str, pinned: bool) -> PinChange:
        group, member = resolve(self.reg, self.members, model)
        if not pinned and member in registry_pinned(self.reg):
            raise PlanError(f"{member} is pinned in the registry (providers.yaml gpu.pinned): "
                            "`unpin` removes only the pins `stackctl pin` made")
        try:
            changed = set_pinned(self.pins_file, member, pinned)
        except OSError as exc:
            raise PlanError(f"could not write {self.pins_file}: {exc.strerror or exc}") from None
        every = self.pinned()
        return PinChange(member=member, group=group, pinned=member in every, changed=changed,
                         pinned_members=[m for m in self.members if m in every])


class SchedulerClient:
    """`load` and `unload` performed by the stack's running scheduler (stackctl/resident/),
    which then knows the group as they leave it; `ps` and `pin` read and write here (the
    scheduler reads the pins again within seconds)."""

    def __init__(self, local: LocalClient, say: Callable[[str], None] = lambda s: None):
        self.local, self.say = local, say

    def ps(self) -> PsTable:
        return self.local.ps()

    def pin(self, model: str, pinned: bool) -> PinChange:
        return self.local.pin(model, pinned)

    def _change(self, op: str, opts: ChangeOptions) -> Change:
        answer = scheduler.command(self.local.reg.config_dir,
                                   {"op": op, "options": opts.model_dump(mode="json")},
                                   self.say)
        if answer is None:  # it stopped meanwhile: as without one
            return getattr(self.local, op)(opts)
        if answer.get("ok"):
            return Change.model_validate(answer["change"])
        if answer.get("kind") == "plan":
            raise PlanError(str(answer.get("error")))
        raise SwitchFailed(str(answer.get("error")), bool(answer.get("restored")))

    def load(self, opts: ChangeOptions) -> Change:
        return self.local.load(opts) if opts.dry_run else self._change("load", opts)

    def unload(self, opts: ChangeOptions) -> Change:
        return self.local.unload(opts) if opts.dry_run else self._change("unload", opts)


def client_for(reg: Registry, docker: Callable[[], Docker],
               say: Callable[[str], None] = lambda s: None) -> ResidencyClient:
    """The client the commands use: through the stack's scheduler when one runs (it must
    know what a load or an unload changed: it routes requests by it), else the local one."""
    local = LocalClient(reg, docker, say)
    if scheduler.control_socket(reg.config_dir).exists():
        return SchedulerClient(local, say)
    return local
