"""Which Redis the stack's gateway caches in, the password Compose hands it, and the names
a cached response may give its model."""

from __future__ import annotations

import os
import re

from pydantic import BaseModel, Field

from stackctl.errors import PlanError
from stackctl.registry.catalog import deployments
from stackctl.registry.load import Registry
from stackctl.registry.vocabulary import CACHE
from stackctl.render.litellm import PREFIX
from stackctl.store.envfile import EnvFileError, compose_value


class CacheError(PlanError):
    """Redis cannot be asked; the message says what to do, naming secrets by variable only."""


class CacheTarget(BaseModel):
    """The stack's Redis as seen from the host. Never holds the password's value."""

    host: str = Field("127.0.0.1", description="address Redis is published on")
    port: int = Field(description="host port (stack.yaml cache.host_port)")
    namespace: str = Field(description="prefix of the gateway's keys, without the ':'")
    ttl: int = Field(description="seconds LiteLLM gives a cached response (cache.ttl)")
    password_env: str = Field(description="NAME of the variable holding the password")
    env_file: str = Field(description="the stack's .env the password is read from")
    service: str = Field(description="compose service name of the cache")
    project: str = Field(description="compose project name")
    password_from: str = Field("", description="where the password was read: the .env path, "
                               "or 'the environment' (a host variable wins, as in Compose)")

    @property
    def pattern(self) -> str:
        """SCAN MATCH pattern for the namespace (glob characters in it matched literally)."""
        return re.sub(r"([*?\[\]\\])", r"\\\1", self.namespace) + ":*"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def target_of(reg: Registry) -> CacheTarget:
    """The cache of this registry's stack; CacheError when there is none to reach."""
    cache = reg.stack.cache
    if not cache.enabled:
        raise CacheError("the cache is disabled in stack.yaml (cache.enabled: false): the "
                         "gateway caches nothing and no Redis runs; set cache.enabled: true "
                         "and run `stackctl up`")
    if cache.host_port is None:
        raise CacheError("Redis is not published on the host (stack.yaml cache.host_port: "
                         "null); give cache.host_port a port (default 6379) and run "
                         "`stackctl up`")
    if not cache.namespace:
        raise CacheError("stack.yaml cache.namespace is empty: the gateway's keys cannot be "
                         "told from other keys in Redis; set cache.namespace (default "
                         "stackctl)")
    return CacheTarget(port=cache.host_port, namespace=cache.namespace, ttl=cache.ttl,
                       password_env=cache.password_env, env_file=str(reg.env_file),
                       service=CACHE, project=reg.stack.project)


def password_of(reg: Registry, target: CacheTarget) -> str:
    """The password Compose hands Redis (host environment first, then .env); notes in
    `target.password_from` where it came from."""
    target.password_from = ("the environment" if target.password_env in os.environ
                            else target.env_file)
    try:
        value = compose_value(reg.env_file, target.password_env)
    except EnvFileError as exc:  # its message may quote the line, the secret with it
        where = (re.match(r"(\S+?:\d+):", str(exc)) or [target.env_file] * 2)[1]
        raise CacheError(f"cannot read {target.password_env} from {where}: the file is not "
                         "what Compose reads (`stackctl up` says more)") from None
    except OSError as exc:
        raise CacheError(f"cannot read {target.env_file}: {exc.strerror}") from None
    if not value:
        raise CacheError(f"{target.password_env} is not set in {target.env_file} (nor in "
                         "the environment): the stack was not started from here, or .env "
                         "was replaced; `stackctl up` creates it")
    return value


def model_names(reg: Registry) -> dict[str, str]:
    """The model a cached response names (the provider's, e.g. `ollama_chat/qwen2.5-coder:7b`
    or `qwen2.5-coder:7b`) → the public name clients ask for, where that is unambiguous."""
    seen: dict[str, set[str]] = {}
    for public, deps in deployments(reg).items():
        for dep in deps:
            kind = reg.providers.providers[dep.provider].type
            for name in (f"{PREFIX[kind]}/{dep.backend}", dep.backend):
                seen.setdefault(name, set()).add(public)
    return {name: next(iter(p)) for name, p in seen.items() if len(p) == 1}
