"""A fake of kubectl for the Kubernetes target (targets/kubernetes.py): Deployments (k8s
names) and their replicas; every call recorded."""

from __future__ import annotations

import json
import stat
import sys
from collections.abc import Sequence
from pathlib import Path

from stackctl.targets.kubernetes import KubeError


class FakeKubectl:
    """Deployments → replicas; `broken` ones never finish their rollout."""

    def __init__(self, replicas: dict[str, int], broken: frozenset[str] = frozenset(),
                 namespace: str = "stackctl"):
        self.replicas = dict(replicas)
        self.broken = set(broken)
        self.namespace = namespace
        self.calls: list[list[str]] = []

    def __call__(self, args: Sequence[str], timeout: float) -> str:
        args = list(args)
        self.calls.append(args)
        assert args[:2] == ["--namespace", self.namespace], args
        verb, obj = args[2], args[3]
        name = obj.removeprefix("deployment/")
        if verb == "get":
            return str(self.replicas[name])
        if verb == "scale":
            self.replicas[name] = int(args[4].removeprefix("--replicas="))
            return ""
        if verb == "rollout" and args[4].removeprefix("deployment/") in self.broken:
            raise KubeError(f"kubectl rollout status {args[4]}: timed out waiting")
        return ""

    def verbs(self) -> list[str]:
        """The calls that change or wait (not the reads), as "verb object"."""
        return [" ".join(c[2:4] if c[2] != "rollout" else c[2:5]) for c in self.calls
                if c[2] != "get"]


EXECUTABLE = '''#!{python}
"""A fake kubectl: Deployment replicas in a JSON file; every call logged."""
import json, sys
state_file = {state!r}
state = json.load(open(state_file))
args = sys.argv[1:]
state["calls"].append(args)
verb, obj = args[2], args[3]
name = obj.split("/", 1)[-1]
if verb == "get":
    print(state["replicas"][name], end="")
elif verb == "scale":
    state["replicas"][name] = int(args[4].split("=")[1])
elif verb == "rollout" and args[4].split("/")[1] in state["broken"]:
    print('error: deployment "%s" exceeded its progress deadline' % args[4], file=sys.stderr)
    json.dump(state, open(state_file, "w"))
    sys.exit(1)
json.dump(state, open(state_file, "w"))
'''


def install_kubectl(bin_dir: Path, replicas: dict[str, int]) -> Path:
    """An executable `kubectl` in `bin_dir` (put it first on PATH) keeping Deployment
    replicas, the `broken` ones (rollout never completes) and every call in the JSON file it
    returns."""
    state = bin_dir / "kubectl-state.json"
    state.write_text(json.dumps({"replicas": replicas, "broken": [], "calls": []}))
    exe = bin_dir / "kubectl"
    exe.write_text(EXECUTABLE.format(python=sys.executable, state=str(state)))
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return state
