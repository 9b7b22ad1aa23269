"""Names that Compose takes but Kubernetes does not: object names are RFC 1035 labels.

Checked by `validate` when deploy.target is kubernetes, and by `generate --target
kubernetes` whatever the target, so the renderer never meets a name it cannot write.
"""

from __future__ import annotations

from stackctl.registry.catalog import named_volume
from stackctl.registry.load import PROVIDERS, Registry
from stackctl.registry.problems import Problem
from stackctl.registry.vocabulary import CACHE, GATEWAY, k8s_name

RULE = "Kubernetes names start with a letter, hold letters, digits, '-' and '_', at most 63"


def check_kubernetes_names(reg: Registry) -> list[Problem]:
    src = reg.sources[PROVIDERS]
    out: list[Problem] = []
    taken = {GATEWAY: "the gateway", CACHE: "the cache"}
    for name, prov in reg.providers.providers.items():
        if not (prov.enabled and prov.container):
            continue
        try:
            obj = k8s_name(name)
        except ValueError:
            out.append(src.problem("error", ("providers", name), f"provider name {name!r} "
                                   "cannot be a Kubernetes object name", RULE))
            continue
        if obj in taken:
            out.append(src.problem("error", ("providers", name), f"provider {name!r} and "
                                   f"{taken[obj]} would both be named {obj!r} on Kubernetes",
                                   "rename the provider"))
        taken.setdefault(obj, f"provider {name!r}")
        for vol in prov.container.volumes:
            if not named_volume(vol):
                continue  # a host path: mounted as a hostPath volume of a generated name
            try:
                k8s_name(vol)
            except ValueError:
                out.append(src.problem("error", ("providers", name, "container", "volumes", vol),
                                       f"volume name {vol!r} cannot be a Kubernetes volume "
                                       "name", RULE))
    return out
