"""The stack on Kubernetes (`deploy.target: kubernetes`), through `kubectl`.

The manifests are render/kubernetes.py's, applied by the user (`kubectl apply -k`): `up`,
`down` and `status` say which kubectl command does it. A GPU group's members are
Deployments scaled 0 or 1: a switch scales the outgoing member to 0, waits until its pods
are gone (the GPU is free), scales the target to 1, waits for its rollout (readiness probes),
and — when `deploy.gateway_url` says where the gateway answers — confirms that its model is
routed to it; on failure it scales back (scaled.py, and the one run loop of
switching/loop.py). Its dry run reads the Deployments' replicas from the cluster. kubectl is
the one client every cluster user has; its context decides the cluster.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from stackctl.errors import PlanError
from stackctl.registry.load import Registry
from stackctl.registry.vocabulary import K8S_NAME, KUBERNETES_DIR, k8s_name
from stackctl.store.envfile import compose_value
from stackctl.switching.effects import confirm_routable
from stackctl.switching.loop import SwitchOptions, ensure_active
from stackctl.targets.base import OnChange, Report, SwitchOutcome, Ui
from stackctl.targets.scaled import ScaledEffects, ScaledSwitchOutcome

Kubectl = Callable[[Sequence[str], float], str]


class KubeError(PlanError):
    """kubectl refused, or the cluster did not converge in time."""


class NotOnKubernetes(PlanError):
    """`up`, `down` and `status` leave the cluster to kubectl; the message says how."""


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


class KubeEffects(ScaledEffects):
    """A switch on Kubernetes: Deployments scaled through kubectl."""

    failures = (KubeError,)

    def __init__(self, reg: Registry, opts: SwitchOptions,
                 say: Callable[[str], None] = lambda s: None, run: Kubectl = kubectl,
                 routable: Callable[[str, str], bool] | None = None):
        super().__init__(reg, opts, say)
        self.run, self._routable = run, routable
        self.ns = ["--namespace", reg.stack.deploy.namespace]

    def replicas(self, members: list[str]) -> dict[str, int]:
        return {m: int(self.run([*self.ns, "get", f"deployment/{k8s_name(m)}", "--output",
                                 "jsonpath={.spec.replicas}"], self.opts.timeout) or 0)
                for m in members}

    def scale(self, member: str, n: int) -> None:
        self.run([*self.ns, "scale", f"deployment/{k8s_name(member)}", f"--replicas={n}"],
                 self.opts.timeout)

    def wait_gone(self, member: str) -> None:
        timeout = self.opts.timeout
        self.run([*self.ns, "wait", "--for=delete", "pod", "--selector",
                  f"{K8S_NAME}={k8s_name(member)}", f"--timeout={timeout:g}s"], timeout)

    def wait_ready(self, member: str) -> None:
        timeout = self.opts.timeout
        self.run([*self.ns, "rollout", "status", f"deployment/{k8s_name(member)}",
                  f"--timeout={timeout:g}s"], timeout)

    def routable(self, model: str, deployment: str) -> bool:
        if self._routable is not None:
            return self._routable(model, deployment)
        reg, url = self.reg, self.reg.stack.deploy.gateway_url
        if url is None:  # nothing to ask: the rollout (readiness probes) is the gate
            return True
        from stackctl.gateway.client import Gateway  # requests: once a member runs

        key = compose_value(reg.env_file, reg.stack.gateway.master_key_env)
        return confirm_routable(
            Gateway(url, key), model, deployment, self.opts.routable_timeout,
            streak=3 * reg.stack.gateway.workers * reg.stack.deploy.gateway_replicas)

    def unroutable(self, model: str) -> str:
        return f"is ready but the gateway does not route {model!r} to it"


class KubernetesTarget:
    kind = "kubernetes"
    where = "on Kubernetes"

    def __init__(self, reg: Registry, run: Kubectl = kubectl,
                 routable: Callable[[str, str], bool] | None = None):
        self.reg, self.run, self._routable = reg, run, routable

    def not_here(self, command: str) -> NoReturn:
        folder = self.reg.output_dir / KUBERNETES_DIR
        raise NotOnKubernetes(
            f"`stackctl {command}` does not drive Kubernetes (deploy.target: kubernetes): "
            f"`stackctl generate --target kubernetes`, then `kubectl apply -k {folder}` "
            f"(up), `kubectl delete -k {folder}` (down), `kubectl get all -n "
            f"{self.reg.stack.deploy.namespace}` (status); `stackctl switch` works")

    def before_up(self) -> None:
        self.not_here("up")  # before `up` writes anything: it would be for nothing

    def up(self, opts: Any, files: dict[str, list[str]], ui: Ui, on_change: OnChange) -> Report:
        self.not_here("up")

    def down(self, profiles: list[str], volumes: bool, ui: Ui) -> Report:
        self.not_here("down")

    def status(self) -> Report:
        self.not_here("status")

    def switch(self, opts: SwitchOptions, ui: Ui) -> Report:
        effects = KubeEffects(self.reg, opts, ui.progress, self.run, self._routable)
        result = ensure_active(effects, opts)
        if opts.dry_run:
            return SwitchOutcome(result, dry_run=True)
        return ScaledSwitchOutcome(self.kind, self.where, opts.member, result)
