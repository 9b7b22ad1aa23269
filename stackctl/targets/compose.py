"""The stack on the local Docker engine (`deploy.target: compose`, the default): Compose
profiles, health-gated, through the one Docker adapter.

The work is compose_up.py's (up, down), compose_status.py's (status) and compose_switch.py's
(switch); this module makes them a Target and says what they did. Each is imported by the
command that needs it: compose_up and compose_status import requests (the gateway's and the
probes' client), which `switch` must not wait for before it stops the active member, and
`status` (<= 1 s in all) has no use for the switching machinery.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stackctl.docker.adapter import Docker
from stackctl.errors import PlanError
from stackctl.health.gate import GateFailure
from stackctl.registry.catalog import on_demand_groups
from stackctl.registry.gpu_memory import may_run_together
from stackctl.registry.load import Registry
from stackctl.targets.base import OnChange, Report, SwitchOutcome, Ui

if TYPE_CHECKING:
    from stackctl.switching.loop import SwitchOptions
    from stackctl.targets.compose_status import StackStatus
    from stackctl.targets.compose_up import UpOptions, UpResult


class UpFailed(PlanError):
    """A service failed or timed out, or the gateway check failed; the message says which."""


class ComposeTarget:
    kind = "compose"

    def __init__(self, reg: Registry, docker: Callable[[], Docker]):
        self.reg = reg
        self._docker = docker  # the adapter, made when first needed (the CLI's: checked, -v)

    def before_up(self) -> None:
        from stackctl.docker import adapter  # the module: tests replace adapter.Docker

        # not self._docker(): that adapter needs the compose file `up` has yet to write
        adapter.Docker(None, self.reg.stack.project).ping()

    def up(self, opts: UpOptions, files: dict[str, list[str]], ui: Ui,
           on_change: OnChange) -> Report:
        from stackctl.targets import compose_up  # requests: see the module's docstring

        docker = self._docker()
        started = time.monotonic()
        written = [Path(p).parts for p in files.get("files_written", [])]
        changed = any("litellm" in parts for parts in written)
        configs = tuple(s for s in ("prometheus", "alertmanager")
                        if any(s in parts for parts in written))
        try:
            result = compose_up.bring_up(self.reg, docker, opts, on_change,
                                         say=lambda s: ui.rich(f"  {s}"),
                                         gateway_config_changed=changed,
                                         configs_changed=configs)
        except (GateFailure, compose_up.GatewayCheckFailed) as exc:
            raise UpFailed(str(exc) + "\n(`stackctl status` shows the rest; "
                           "`stackctl down` removes the stack)") from None
        if on_demand_groups(self.reg):
            from stackctl.resident import process

            ui.progress("scheduler: starting (on-demand GPU groups)")
            sched = process.ensure(self.reg)
            ui.progress(f"scheduler: {'started' if sched.started else 'running'}, pid "
                        f"{sched.pid} (log {sched.log})")
        return ComposeUp(self.reg, result, time.monotonic() - started, files)

    def down(self, profiles: list[str], volumes: bool, ui: Ui) -> Report:
        from stackctl.targets.compose_up import bring_down

        docker = self._docker()
        what = f"profiles {', '.join(profiles)}" if profiles else \
            f"stack {self.reg.stack.project!r}"
        ui.progress(f"stopping {what}" + (" and removing its volumes" if volumes else ""))
        started = time.monotonic()
        if not profiles:
            from stackctl.resident import process

            if process.stop(self.reg):
                ui.progress("scheduler: stopped")
        left = bring_down(self.reg, docker, profiles, volumes)
        # bring_down returns the services removed (with profiles), else the containers left
        removed, left = (left, []) if profiles else ([], left)
        return ComposeDown(self.reg.stack.project, what, profiles, volumes, removed, left,
                           time.monotonic() - started)

    def status(self) -> Report:
        from stackctl.targets import compose_status  # requests: see the module's docstring

        return ComposeStatus(compose_status.collect_status(self.reg, self._docker()), self.reg)

    def switch(self, opts: SwitchOptions, ui: Ui) -> Report:
        def say(text: str) -> None:
            if ui.verbose:
                ui.detail(text)
            else:
                ui.progress(f"  {text}")

        from stackctl.targets import compose_switch  # not for `status`: see the docstring

        result = compose_switch.switch_compose(self.reg, self._docker(), opts, say=say)
        return SwitchOutcome(result, opts.dry_run)


class ComposeUp(Report):
    def __init__(self, reg: Registry, result: UpResult, took: float,
                 files: dict[str, list[str]]):
        self.reg, self.result, self.took, self.files = reg, result, took, files

    def document(self) -> dict[str, Any]:
        reg, result, plan = self.reg, self.result, self.result.plan
        url = result.gateway_url
        return {"ok": True, "project": reg.stack.project, "profiles": plan.profiles,
                "services": plan.services, "ready_after": result.ready_after,
                "seconds": round(self.took, 2),
                "gateway": {"url": url, "endpoint": f"{url}/v1",
                            "key_env": reg.stack.gateway.master_key_env,
                            "env_file": _shell_path(reg.env_file)},
                "expected_models": plan.expected_models, **self.files}

    def show(self, ui: Ui) -> None:
        reg, result, plan = self.reg, self.result, self.result.plan
        url, key_env = result.gateway_url, reg.stack.gateway.master_key_env
        if ui.verbose:
            for service, t in sorted(result.ready_after.items(), key=lambda kv: kv[1]):
                ui.detail(f"{service} ready after {t:.1f}s")
            ui.detail(f"up took {self.took:.1f}s (start, health gate and gateway check)")
        summary = f"stack {reg.stack.project!r} is up: profiles {', '.join(plan.profiles)}"
        if ui.quiet:
            ui.result(f"{summary}; endpoint {url}/v1")
            return
        ui.rich(f"\n{summary}")
        ui.rich(f"endpoint: {url}/v1  (OpenAI-compatible; key: {key_env} in "
                f"{reg.env_file.name})")
        model = plan.expected_models[0] if plan.expected_models else "MODEL"
        ui.rich("try:\n  " + _curl(url, model, _shell_path(reg.env_file), key_env),
                soft_wrap=True)


class ComposeDown(Report):
    def __init__(self, project: str, what: str, profiles: list[str], volumes: bool,
                 removed: list[str], left: list[str], took: float):
        self.project, self.what, self.profiles, self.volumes = project, what, profiles, volumes
        self.removed, self.left, self.took = removed, left, took
        self.ok = not left
        self.problem = "containers still present: " + ", ".join(left)

    def document(self) -> dict[str, Any]:
        return {"ok": self.ok, "project": self.project, "profiles": list(self.profiles),
                "volumes": self.volumes, "removed": self.removed, "left": self.left,
                "seconds": round(self.took, 2)}

    def show(self, ui: Ui) -> None:
        if self.removed:
            ui.detail("removed " + ", ".join(self.removed))
        ui.detail(f"down took {self.took:.1f}s")
        if self.ok:
            ui.result(f"{self.what} down" + (" (volumes removed)" if self.volumes else ""))


class ComposeStatus(Report):
    def __init__(self, st: StackStatus, reg: Registry | None = None):
        self.st, self.reg = st, reg

    @property
    def exit_code(self) -> int:
        return self.st.exit_code

    def document(self) -> dict[str, Any]:
        return json.loads(self.json_text())

    def json_text(self) -> str:
        return self.st.model_dump_json(indent=2, exclude={"project"})

    def show(self, ui: Ui) -> None:
        from rich.table import Table

        st = self.st
        gw = st.gateway
        mark = "[green]healthy[/]" if gw.healthy else "[red]DOWN[/]"
        ui.rich(f"gateway {gw.url} {mark}  models: {', '.join(gw.models) or '-'}")
        table = Table("service", "profile", "state", "health", "port", "ms", "models", box=None)
        for s in st.services:
            colour = "green" if s.ok else ("dim" if s.state == "absent" else "red")
            state = f"{s.sleep} ({s.state})" if s.sleep else s.state
            state = f"standby: {state}" if s.standby else state
            colour = "dim" if s.standby else colour
            table.add_row(s.name, s.profile or "-", f"[{colour}]{state}[/]", s.health,
                          str(s.port or "-"), f"{s.latency_ms:.0f}" if s.latency_ms else "-",
                          ", ".join(s.models) or "-")
        ui.rich(table)
        for s in st.services:
            if s.restarts:  # it died and Docker's restart policy brought it back
                up = f", up {s.up_seconds:.0f}s" if s.up_seconds is not None else ""
                ui.rich(f"[yellow]{s.name} restarted {s.restarts}x[/] (it died; the "
                        f"restart policy brought it back{up})")
        for group, g in st.gpu_groups.items():
            # only an interrupted switch leaves this (or `load`, within a memory budget)
            if len(g.awake) > 1 and (self.reg is None
                                     or not may_run_together(self.reg, group, g.awake)):
                others = "puts the others to sleep" if g.mode == "sleep" else "stops the others"
                ui.rich(f"[red]GPU group {group}: {len(g.awake)} members running "
                        f"({', '.join(g.awake)}), it must be one[/]: `stackctl switch "
                        f"MEMBER` keeps MEMBER and {others}")
                continue
            asleep = f", asleep: {', '.join(g.asleep)}" if g.asleep else ""
            ui.rich(f"GPU group {group} ({g.mode}): active {g.active or 'none'}{asleep} "
                    f"(members: {', '.join(g.members)})")
        if st.scheduler is not None:
            ui.rich(f"scheduler: running, pid {st.scheduler.pid}" if st.scheduler.pid else
                    "[red]scheduler: not running[/]: nothing is loaded on demand, the "
                    "models of members not awake go to their fallbacks; `stackctl up` "
                    "starts it")
        if st.alerts is not None:
            ui.rich(f"alerts firing in Prometheus: {len(st.alerts) or 'none'}")
            colours = {"critical": "red", "warning": "yellow"}
            for a in st.alerts:
                where = ", ".join(f"{k}={v}" for k, v in a.labels.items()
                                  if k in ("provider", "gpu_group", "requested_model",
                                           "instance"))
                ui.rich(f"  [{colours.get(a.severity, 'dim')}]{a.severity:8}[/] {a.name}"
                        f"{f' ({where})' if where else ''}: {a.summary}")
        verdict = {0: "[green]healthy[/]", 1: "[yellow]degraded[/]", 3: "[red]gateway down[/]"}
        ui.rich(f"stack {st.project!r}: {verdict.get(st.exit_code, st.exit_code)}")


def _shell_path(path: Path) -> str:
    try:
        return "./" + str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _curl(url: str, model: str, env_file: str, key_env: str) -> str:
    # bounded: a small model on CPU may otherwise ramble until its context is full
    body = json.dumps({"model": model, "max_tokens": 32,
                       "messages": [{"role": "user", "content": "Say hello"}]})
    return (f"(set -a; . {env_file}; curl -s {url}/v1/chat/completions "
            f"-H \"Authorization: Bearer ${key_env}\" -H 'Content-Type: application/json' "
            f"-d '{body}')")
