"""`switch` on Kubernetes (`deploy.target: kubernetes`), through `kubectl`.

The manifests are render/kubernetes.py's, applied by the user (`kubectl apply -k`). A GPU
group's members are Deployments scaled 0 or 1: a switch scales the outgoing member to 0,
waits until its pods are gone (the GPU is free), scales the target to 1, waits for its
rollout (readiness probes), and — when `deploy.gateway_url` says where the gateway answers —
confirms that its model is routed to it; on failure it scales back. kubectl is the one
client every cluster user has; its context decides the cluster.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Sequence

from stackctl.errors import PlanError
from stackctl.registry.load import Registry

Kubectl = Callable[[Sequence[str], float], str]


class KubeError(PlanError):
    """kubectl refused, or the cluster did not converge in time."""


def kubectl(args: Sequence[str], timeout: float) -> str:
    try:
        r = subprocess.run(["kubectl", *args], capture_output=True, text=True,
                           timeout=timeout + 10)
    except FileNotFoundError:
        raise KubeError("kubectl is not installed (Debian: apt-get install "
                        "kubernetes-client)") from None
    except subprocess.TimeoutExpired:
        raise KubeError(f"kubectl {' '.join(args)} did not return in {timeout:g}s") from None
    if r.returncode:
        raise KubeError(f"kubectl {' '.join(args)}: {r.stderr.strip() or r.stdout.strip()}")
    return r.stdout


def kube_switch(reg: Registry, member: str, timeout: float,
                say: Callable[[str], None] = lambda s: None, run: Kubectl = kubectl,
                routable: Callable[[str, str], bool] | None = None) -> dict[str, float]:
    """Scale the group's other members to 0, then `member` to 1, rollout-gated; scaled back
    on failure. Raises switch.SwitchFailed like the single-engine switch."""
    from stackctl.render.kubernetes import NAME, k8s_name
    from stackctl.switching.run import members_of, resolve_member, scaled_switch

    members = members_of(reg)
    group, target = resolve_member(members, member)
    ns = ["--namespace", reg.stack.deploy.namespace]
    names = [m for m, i in members.items() if i.group == group]
    replicas = {m: int(run([*ns, "get", f"deployment/{k8s_name(m)}", "--output",
                            "jsonpath={.spec.replicas}"], timeout) or 0) for m in names}
    previous = [m for m in names if m != target and replicas[m]]
    if routable is None:
        routable = _routable(reg)
    t0 = time.monotonic()
    timings: dict[str, float] = {}

    def scale(m: str, n: int) -> None:
        run([*ns, "scale", f"deployment/{k8s_name(m)}", f"--replicas={n}"], timeout)

    def move(to: str, away: list[str]) -> None:
        for m in away:
            say(f"scaling {m} to 0")
            scale(m, 0)
        for m in away:  # its pods gone: the GPU is free
            run([*ns, "wait", "--for=delete", "pod", "--selector",
                 f"{NAME}={k8s_name(m)}", f"--timeout={timeout:g}s"], timeout)
        t = time.monotonic()
        timings["stop"] = t - t0
        say(f"scaling {to} to 1")
        scale(to, 1)
        run([*ns, "rollout", "status", f"deployment/{k8s_name(to)}",
             f"--timeout={timeout:g}s"], timeout)
        timings["ready"] = time.monotonic() - t
        t = time.monotonic()
        model = members[to].model
        if model and not routable(model, f"{model}@{to}"):
            raise KubeError(f"{to} is ready but the gateway does not route {model!r} to it")
        timings["routable"] = time.monotonic() - t

    scaled_switch(target, previous, group, move, lambda m: scale(m, 0), KubeError, say)
    timings["total"] = time.monotonic() - t0
    return timings


def _routable(reg: Registry) -> Callable[[str, str], bool]:
    url = reg.stack.deploy.gateway_url
    if url is None:  # nothing to ask: the rollout (readiness probes) is the gate
        return lambda model, dep: True

    from stackctl.gateway.client import Gateway
    from stackctl.store.envfile import compose_value
    from stackctl.switching.run import confirm_routable

    key = compose_value(reg.env_file, reg.stack.gateway.master_key_env)
    return lambda model, dep: confirm_routable(
        Gateway(url, key), model, dep, 30,
        streak=3 * reg.stack.gateway.workers * reg.stack.deploy.gateway_replicas)
