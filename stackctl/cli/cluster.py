"""`up`, `down`, `status` and `switch` when stack.yaml says `deploy.target: swarm` (and
`switch` for `deploy.target: kubernetes`).

Each command hands over here right after loading the registry; the work is targets/swarm.py's.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import click

from stackctl.cli.common import UNRESTORED, Failed, echo_json, ops_errors
from stackctl.registry.load import Registry


def _swarm(reg: Registry):  # type: ignore[no-untyped-def]
    from stackctl.targets.swarm import Swarm

    return Swarm(reg)


def up(reg: Registry, timeout: float, as_json: bool, say: Callable[[str], None]) -> None:
    from stackctl.targets.swarm import swarm_up

    t = time.monotonic()
    with ops_errors():
        urls = swarm_up(reg, _swarm(reg), timeout, say,
                        on_change=lambda s, v: say(f"{s}: {v}"))
    took = round(time.monotonic() - t, 2)
    if as_json:
        echo_json({"ok": True, "project": reg.stack.project, "target": "swarm",
                   "gateways": urls, "seconds": took})
        return
    click.echo(f"stack {reg.stack.project!r} is up on the Swarm in {took:.1f}s; "
               f"gateway on {', '.join(u + '/v1' for u in urls)}")


def down(reg: Registry, as_json: bool) -> None:
    from stackctl.targets.swarm import swarm_down

    with ops_errors():
        left = swarm_down(_swarm(reg))
    doc = {"ok": not any(left.values()), "project": reg.stack.project, "target": "swarm",
           "left": left}
    if any(left.values()):
        raise Failed("still on the Swarm: " + "; ".join(
            f"{kind} {', '.join(names)}" for kind, names in left.items() if names), doc=doc)
    if as_json:
        echo_json(doc)
    else:
        click.echo(f"stack {reg.stack.project!r} removed from the Swarm "
                   "(services, network and secrets)")


def status(reg: Registry, as_json: bool) -> None:
    from stackctl.targets.swarm import swarm_status

    with ops_errors():
        st = swarm_status(reg, _swarm(reg))
    if as_json:
        click.echo(st.model_dump_json(indent=2))
    else:
        click.echo(f"stack {st.project!r} on the Swarm ({st.manager or 'local engine'}): "
                   f"gateway {', '.join(st.gateways) or 'DOWN'}")
        for s in st.services:
            where = ", ".join(f"{t['node']} {t['state']}" for t in s["tasks"]) or "-"
            click.echo(f"  {s['name']:<18} {s['running']}/{s['replicas']}  {where}")
        for n in st.nodes:
            extra = " ".join(f"{k}={v}" for k, v in {**n.labels, **n.resources}.items())
            click.echo(f"  node {n.hostname} {n.role} {n.status}/{n.availability} "
                       f"{n.address} {extra}".rstrip())
        for g, info in st.gpu_groups.items():
            click.echo(f"  GPU group {g}: active {info['active'] or 'none'} "
                       f"(members: {', '.join(info['members'])})")
    raise click.exceptions.Exit(st.exit_code)


def switch(reg: Registry, member: str, timeout: float, as_json: bool,
           say: Callable[[str], None]) -> None:
    """On a Swarm, or on Kubernetes (kubectl)."""
    from stackctl.switching.run import SwitchFailed

    target = reg.stack.deploy.target
    try:
        with ops_errors():
            if target == "kubernetes":
                from stackctl.targets.kubernetes import kube_switch

                timings = kube_switch(reg, member, timeout, say=say)
            else:
                from stackctl.targets.swarm import swarm_switch

                timings = swarm_switch(reg, _swarm(reg), member, timeout, say=say)
    except SwitchFailed as exc:
        code = 1 if exc.restored else UNRESTORED
        raise Failed(str(exc), code, doc={"ok": False, "member": member, "error": str(exc),
                                          "restored": exc.restored, "exit_code": code}) from None
    if as_json:
        echo_json({"ok": True, "target": target, "member": member, "timings": timings})
        return
    where = "on Kubernetes" if target == "kubernetes" else "on the Swarm"
    click.echo(f"switched to {member} {where} in {timings['total']:.1f}s "
               f"(stop {timings['stop']:.1f}s, ready {timings['ready']:.1f}s, "
               f"routable {timings['routable']:.1f}s)")


def not_on_kubernetes(reg: Registry, command: str) -> None:
    """`up`, `down` and `status` leave a cluster to kubectl: say how."""
    folder = reg.output_dir / "kubernetes"
    raise Failed(f"`stackctl {command}` does not drive Kubernetes (deploy.target: kubernetes): "
                 f"`stackctl generate --target kubernetes`, then `kubectl apply -k {folder}` "
                 f"(up), `kubectl delete -k {folder}` (down), `kubectl get all -n "
                 f"{reg.stack.deploy.namespace}` (status); `stackctl switch` works")
