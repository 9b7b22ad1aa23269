"""Secrets in the registry: secret-shaped values anywhere in its files, providers handed
another service's secret, and the variables stack.yaml names for its own secrets. What a
secret looks like is secrets.py's."""

from __future__ import annotations

import re
from typing import Any

from stackctl.registry.load import PROVIDERS, STACK, Registry
from stackctl.registry.problems import Problem
from stackctl.registry.secrets import ENV_REF, SECRET_NAME, describe, in_arguments, references
from stackctl.registry.source import Loc, Source
from stackctl.registry.vocabulary import GENERATED_ENV

ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Variables every shell or login sets. Compose reads the shell's environment before .env, so
# a secret named like one of them is never read from .env: it is a value anyone who knows
# the machine can guess (HOME=/root).
SHELL_VARIABLES = frozenset({
    "HOME", "PATH", "USER", "LOGNAME", "SHELL", "PWD", "OLDPWD", "HOSTNAME", "HOST", "TERM",
    "LANG", "LANGUAGE", "TZ", "TMPDIR", "TMP", "TEMP", "DISPLAY", "EDITOR", "VISUAL", "PAGER",
    "MAIL", "SHLVL", "UID", "EUID", "GID", "PPID", "RANDOM", "SECONDS", "LINENO", "IFS", "PS1",
    "PS2", "PS4", "COLUMNS", "LINES", "HISTFILE", "OSTYPE", "MACHTYPE", "HOSTTYPE", "BASH",
    "BASH_VERSION", "MANPATH", "INFOPATH", "PYTHONPATH", "VIRTUAL_ENV", "_"})
SHELL_PREFIXES = ("LC_", "XDG_", "SSH_", "DOCKER_", "COMPOSE_", "DBUS_", "GPG_", "SUDO_",
                  "BASH_")


def check_secrets(reg: Registry) -> list[Problem]:
    """Secret-shaped values anywhere in the registry files, and providers reading another
    service's secret."""
    out: list[Problem] = []
    for src in reg.sources.values():
        _walk(src, src.data, (), out)
    out += _borrowed_secrets(reg)
    out += _secret_variables(reg)
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
    owners = {name: what for _, name, what in stack_secrets(reg)}
    src = reg.sources[PROVIDERS]
    out: list[Problem] = []
    for name, prov in reg.providers.providers.items():
        if prov.env_var in owners:  # LiteLLM sends it as this provider's API key
            out.append(src.problem(
                "error", ("providers", name, "env_var"), f"env_var {prov.env_var!r} is also "
                f"{owners[prov.env_var]}: the gateway would send it to {prov.base_url} as "
                f"provider {name!r}'s API key", "give the provider's key a variable of its "
                "own in .env, e.g. env_var: " + name.upper().replace("-", "_") + "_API_KEY"))
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


def stack_secrets(reg: Registry) -> list[tuple[Loc, str, str]]:
    """(key path in stack.yaml, variable, whose secret) for every secret of the stack."""
    stack = reg.stack
    out: list[tuple[Loc, str, str]] = [
        (("gateway", "master_key_env"), stack.gateway.master_key_env,
         "the gateway's master key")]
    if stack.cache.enabled:
        out.append((("cache", "password_env"), stack.cache.password_env, "the cache's password"))
    out.append((("monitoring", "grafana_password_env"), stack.monitoring.grafana_password_env,
                "Grafana's admin password"))
    out += [(("monitoring", "alerts", "receivers", i, "webhook_url_env"), r.webhook_url_env,
             f"the webhook URL of alert receiver {r.name!r}")
            for i, r in enumerate(stack.monitoring.alerts.receivers)]
    return out


SUBJECTS = {"master_key_env": "the gateway", "password_env": "the cache",
            "grafana_password_env": "Grafana", "webhook_url_env": "the webhook"}
EXAMPLES = {"master_key_env": "LITELLM_MASTER_KEY", "password_env": "REDIS_PASSWORD",
            "grafana_password_env": "GRAFANA_ADMIN_PASSWORD",
            "webhook_url_env": "ALERT_WEBHOOK_URL"}


def _secret_variables(reg: Registry) -> list[Problem]:
    """stack.yaml names the variables holding its secrets: each becomes `${NAME:?}` in the
    compose file and `os.environ/NAME` in the gateway's config, so it must be a variable
    name, one of its own (two services sharing a secret give each the other's), and one
    only .env sets (not the shell's, not one stackctl sets itself)."""
    src = reg.sources.get(STACK) or reg.sources[PROVIDERS]  # stack.yaml may be absent
    out: list[Problem] = []
    seen: dict[str, tuple[Loc, str]] = {}
    for loc, name, what in stack_secrets(reg):
        example = EXAMPLES[str(loc[-1])]
        if not ENV_NAME.fullmatch(name):
            out.append(src.problem("error", loc, f"{loc[-1]} must be the NAME of an "
                                   "environment variable, not a secret",
                                   f"e.g. {loc[-1]}: {example}, and put the value in .env"))
            continue
        if (why := _not_secret(name)) is not None:
            out.append(src.problem("error", loc, f"{name} is {why}: {what} would be that "
                                   "value, not the one in .env",
                                   f"name a variable of its own, e.g. {loc[-1]}: {example}"))
        if name in seen:
            first, first_what = seen[name]
            out.append(src.problem(
                "error", loc, f"{_key(loc)} {name!r} is also {_key(first, full=True)} "
                f"({first_what}): {what} and {first_what} would be one secret, each service "
                "holding the other's", f"give {SUBJECTS[str(loc[-1])]} its own variable, "
                f"e.g. {loc[-1]}: {example}"))
        seen.setdefault(name, (loc, what))
    providers = reg.sources[PROVIDERS]
    for pname, prov in reg.providers.providers.items():
        if prov.env_var and ENV_NAME.fullmatch(prov.env_var) and \
                (why := _not_secret(prov.env_var)) is not None:
            out.append(providers.problem(
                "error", ("providers", pname, "env_var"), f"{prov.env_var} is {why}: the "
                f"gateway would send that value to {prov.base_url} as the API key",
                "name the variable holding the key, e.g. env_var: OPENAI_API_KEY"))
    return out


def _key(loc: Loc, full: bool = False) -> str:
    """`cache.password_env`; a receiver's key by its name alone, unless `full`."""
    return ".".join(map(str, loc)) if full or all(isinstance(k, str) for k in loc) \
        else str(loc[-1])


def _not_secret(name: str) -> str | None:
    """Why a variable cannot hold a secret of the stack, or None."""
    if name in SHELL_VARIABLES or name.startswith(SHELL_PREFIXES):
        return "a variable of your shell (Compose reads the shell's environment before .env)"
    if name in GENERATED_ENV:
        return "a variable stackctl itself sets in the stack's containers"
    return None
