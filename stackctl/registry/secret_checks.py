"""Secrets in the registry: secret-shaped values anywhere in its files, and providers handed
another service's secret. What a secret looks like is secrets.py's."""

from __future__ import annotations

from typing import Any

from stackctl.registry.load import PROVIDERS, Registry
from stackctl.registry.problems import Problem
from stackctl.registry.secrets import ENV_REF, SECRET_NAME, describe, in_arguments, references
from stackctl.registry.source import Loc, Source


def check_secrets(reg: Registry) -> list[Problem]:
    """Secret-shaped values anywhere in the registry files, and providers reading another
    service's secret."""
    out: list[Problem] = []
    for src in reg.sources.values():
        _walk(src, src.data, (), out)
    out += _borrowed_secrets(reg)
    return out


def _walk(src: Source, node: Any, loc: Loc, out: list[Problem]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(key, str) and (what := describe(key)):
                out.append(src.problem("error", loc + (key,), f"this key is {what}",
                                       "secrets belong in .env, never in the registry"))
            _walk(src, value, loc + (key,), out)
    elif isinstance(node, list):
        if loc[-1:] == ("command",):
            for i, what in in_arguments([a if isinstance(a, str) else "" for a in node]):
                out.append(src.problem("error", loc + (i,), f"command argument is {what}",
                                       "pass it as ${VAR} (compose reads it from .env)"))
        for i, item in enumerate(node):
            if not (loc[-1:] == ("command",) and isinstance(item, str)):  # done just above
                _walk(src, item, loc + (i,), out)
    elif isinstance(node, str) and not _named_secret(loc, node) and (what := describe(node)):
        name = str(loc[-1]) if loc and isinstance(loc[-1], str) else None
        hint = (f"write {name}: ${{{name}}} and put the value in .env"
                if len(loc) > 1 and loc[-2] == "env" and name
                else "secrets belong in .env; the registry holds only ${VAR} references")
        if "${" in node:
            hint = "a ${VAR:?message} or ${VAR:-default} must not carry the secret itself"
        out.append(src.problem("error", loc, f"holds {what}", hint))


def _named_secret(loc: Loc, value: str) -> bool:
    """`HF_TOKEN: hf_…` in a container's env is reported once, by the name check."""
    return len(loc) > 2 and loc[-2] == "env" and loc[-3] == "container" \
        and bool(SECRET_NAME.search(str(loc[-1]))) and not ENV_REF.match(value)


def _borrowed_secrets(reg: Registry) -> list[Problem]:
    """A provider's container must not read the stack's own secrets (the gateway's master
    key, the cache's and Grafana's passwords, alert webhooks): whoever controls a model
    server's image could then read them. Remote providers' API keys stay readable: a local
    server may legitimately forward to the same upstream."""
    stack = reg.stack
    owners = {stack.gateway.master_key_env: "the gateway's master key",
              stack.cache.password_env: "the cache's password",
              stack.monitoring.grafana_password_env: "Grafana's admin password"}
    for r in stack.monitoring.alerts.receivers:
        owners[r.webhook_url_env] = f"the webhook URL of alert receiver {r.name!r}"
    src = reg.sources[PROVIDERS]
    out: list[Problem] = []
    for name, prov in reg.providers.providers.items():
        if prov.container is None:
            continue
        base: Loc = ("providers", name, "container")
        places: list[tuple[Loc, str]] = [(base + ("env", k), v)
                                         for k, v in prov.container.env.items()]
        places += [(base + ("command", i), a) for i, a in enumerate(prov.container.command)]
        for loc, value in places:
            for var in references(value):
                if var in owners:
                    out.append(src.problem(
                        "error", loc, f"reads ${{{var}}}, {owners[var]}: provider {name!r} "
                        "must not be handed another service's secret",
                        "give the provider a variable of its own in .env"))
    return out
