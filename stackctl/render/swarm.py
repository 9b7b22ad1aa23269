"""Registry → Docker Swarm stack file (as a dict), for `docker stack deploy -c swarm/stack.yaml`.

The services start as compose.py builds them and are converted to what `docker stack
deploy` accepts (Docker 20.10 engines, CLI 28): no profiles, `depends_on`, `container_name`,
`build` or `restart` (Swarm has `deploy:` keys), no device reservations (generic resources
and placement on a node label instead), no host IP in `ports`, external secrets only.

The stack file lives in `<output_dir>/swarm/` beside the compose renderer's `litellm/`
folder, whose files it ships to the gateway as Swarm configs. A config is immutable: each is
named with a short hash of its text, so a changed file becomes a new config and a redeploy
rolls the gateway onto it. Secrets are created by stackctl from .env (`docker secret create`,
names from `swarm_secrets`) before the deploy, and read from /run/secrets by a start script:
no generated file, command line or `docker inspect` holds a value.

Monitoring is not part of the Swarm file: its Prometheus config names compose containers and
host ports, and its configs are bind-mounted host folders; on a Swarm it needs task discovery
(dockerswarm_sd) and configs of its own.
"""

from __future__ import annotations

import hashlib
from typing import Any

from stackctl.registry.catalog import exclusive_groups, named_volume, profile_of, sleep_members
from stackctl.registry.load import Registry
from stackctl.registry.models import Provider
from stackctl.registry.vocabulary import CACHE, GATEWAY, LITELLM_FILE, SWARM_FILE
from stackctl.render.callbacks import callback_files
from stackctl.render.compose import (
    DEV_MODE,
    METRICS_DIR,
    SLEEP_FLAG,
    _shell,
    cache_service,
    gateway_service,
    host_source,
    provider_service,
    redis_start,
)
from stackctl.render.litellm import render_litellm
from stackctl.render.text import sources, to_yaml

GATEWAY_DIR = "/app/litellm"
SECRETS_DIR = "/run/secrets"
RESTART = {"condition": "any", "delay": "2s"}
# Every service is reached by its tasks' own addresses: a virtual IP needs the kernel's IPVS,
# which some kernels lack (the test machines'), and a member scaled to 0 then has no address
# at all, so the gateway falls back at once instead of dialing an IP with no task behind it.
DNSRR = "dnsrr"
# compose keys the Swarm services keep as they are, in this order
_KEEP = ("image", "entrypoint", "command", "user", "environment", "sysctls", "volumes",
         "healthcheck", "stop_grace_period", "labels")


def secret_name(reg: Registry, var: str) -> str:
    """The Swarm secret holding env var `var`'s value: `<project>_<var lowercased>`."""
    return f"{reg.stack.project}_{var.lower()}"


def _gateway_vars(reg: Registry) -> list[str]:
    """The gateway's secret variables, in compose.py's order."""
    stack = reg.stack
    out = [stack.gateway.master_key_env]
    if stack.cache.enabled:
        out.append(stack.cache.password_env)
    out += [p.env_var for p in reg.providers.providers.values() if p.enabled and p.env_var]
    return list(dict.fromkeys(out))


def swarm_secrets(reg: Registry) -> dict[str, str]:
    """Swarm secret name → the env var (in .env) its value comes from."""
    return {secret_name(reg, var): var for var in _gateway_vars(reg)}


def _pull(reg: Registry, image: str) -> str:
    """The image as the nodes pull it: from deploy.registry when set."""
    registry = reg.stack.deploy.registry
    return f"{registry}/{image}" if registry else image


def _base(reg: Registry, svc: dict[str, Any]) -> dict[str, Any]:
    out = {k: svc[k] for k in _KEEP if k in svc}
    out["image"] = _pull(reg, out["image"])
    return out


def _read_secret(var: str, secret: str, export: bool) -> str:
    """Shell lines setting `var` from a secret file; the start fails when it is empty."""
    line = (f'{var}="$(cat {SECRETS_DIR}/{secret})" && [ -n "${var}" ] || '
            f'{{ echo "secret {secret} is missing or empty" >&2; exit 1; }}\n')
    return line + (f"export {var}\n" if export else "")


def config_name(key: str, text: str) -> str:
    """A Swarm config's name: immutable, so it changes with the text it holds."""
    return f"{key}_{hashlib.sha256(text.encode()).hexdigest()[:10]}"


def gateway_configs(reg: Registry) -> dict[str, tuple[str, str]]:
    """Config name → (file relative to the stack file, mount path in the gateway)."""
    files = {LITELLM_FILE: to_yaml(render_litellm(reg), sources(reg)), **callback_files(reg)}
    out = {}
    for path, text in files.items():
        base = path.rsplit("/", 1)[-1]
        key = "litellm_" + base.removeprefix("stackctl_").replace(".", "_")
        out[config_name(key, text)] = (f"../{path}", f"{GATEWAY_DIR}/{base}")
    return out


def _gateway(reg: Registry) -> dict[str, Any]:
    gw = reg.stack.gateway
    svc = _base(reg, gateway_service(reg))
    variables = _gateway_vars(reg)
    for var in variables:  # read from the secrets by the start script instead
        svc["environment"].pop(var, None)
    script = "".join(_read_secret(v, secret_name(reg, v), True) for v in variables)
    svc = {"image": svc.pop("image"),
           # "$@" after the script: the command (the image's entrypoint is litellm, or a
           # script ending in `exec litellm "$@"`)
           "entrypoint": [*_shell(script + 'exec litellm "$@"\n'), "litellm"], **svc}
    # Swarm has no bind mount of the config folder: configs, and the metrics folder as tmpfs
    svc["volumes"] = [{"type": "tmpfs", "target": METRICS_DIR}]
    svc["configs"] = [{"source": name, "target": target}
                      for name, (_, target) in gateway_configs(reg).items()]
    svc["secrets"] = [secret_name(reg, v) for v in variables]
    # host mode: the ingress routing mesh did not answer on the test machines; the port is
    # bound on every interface of the nodes running a replica (no host IP on a Swarm)
    svc["ports"] = [{"target": 4000, "published": gw.host_port, "protocol": "tcp",
                     "mode": "host"}]
    svc["deploy"] = {
        "replicas": reg.stack.deploy.gateway_replicas,
        # start-first: a new replica is healthy before an old one stops; with one replica
        # per node (the host port) that needs a node without a gateway replica
        "update_config": {"parallelism": 1, "delay": "5s", "order": "start-first",
                          "failure_action": "rollback", "monitor": "30s"},
        "rollback_config": {"parallelism": 1, "order": "start-first"},
        "restart_policy": dict(RESTART),
        "placement": {"max_replicas_per_node": 1},
        "endpoint_mode": DNSRR,
        "labels": dict(svc["labels"]),
    }
    return svc


def _cache(reg: Registry) -> dict[str, Any]:
    var = reg.stack.cache.password_env
    secret = secret_name(reg, var)
    svc = _base(reg, cache_service(reg))
    del svc["environment"]  # the password comes from the secret file, into a shell variable
    svc["command"] = _shell(_read_secret(var, secret, False) + redis_start(var))
    svc["secrets"] = [secret]
    # the healthcheck runs beside the shell, not in it: it reads the file too
    svc["healthcheck"] = {**svc["healthcheck"], "test": ["CMD", *_shell(
        f'test "$(REDISCLI_AUTH="$(cat {SECRETS_DIR}/{secret})" redis-cli ping)" = PONG')]}
    # not published: the gateways reach it on the overlay network
    svc["deploy"] = {"replicas": 1, "restart_policy": dict(RESTART), "endpoint_mode": DNSRR,
                     "labels": dict(svc["labels"])}
    return svc


def default_members(reg: Registry) -> set[str]:
    """Of each exclusive GPU group, the member that runs after a deploy: the first whose
    profile is a default profile, else the first."""
    out = set()
    for members in exclusive_groups(reg).values():
        provs = reg.providers.providers
        default = [m for m in members if profile_of(m, provs[m]) in reg.stack.default_profiles]
        out.add((default or members)[0])
    return out


def _provider(reg: Registry, name: str, prov: Provider) -> dict[str, Any]:
    c = prov.container
    assert c is not None
    deploy = reg.stack.deploy
    svc = _base(reg, provider_service(reg, name, prov))
    if c.volumes:  # host paths from the stack file's folder, not the compose file's
        base = (reg.output_dir / SWARM_FILE).parent
        svc["volumes"] = [f"{host_source(reg, vol, base)}:{path}"
                          for vol, path in c.volumes.items()]
    if name in sleep_members(reg):
        # a Swarm switch scales the members 0/1: no sleep mode, and no dev-mode endpoints
        # (/sleep, /collective_rpc) open to the attachable network
        if SLEEP_FLAG not in c.command:
            svc["command"] = [a for a in svc["command"] if a != SLEEP_FLAG]
        if DEV_MODE not in c.env:
            svc["environment"].pop(DEV_MODE)
        for key in ("command", "environment"):
            if not svc[key]:
                del svc[key]
    group = c.gpu.exclusive_group if c.gpu else None
    if group:
        replicas = 1 if name in default_members(reg) else 0
    else:
        replicas = 1 if profile_of(name, prov) in reg.stack.default_profiles else 0
    out: dict[str, Any] = {
        "replicas": replicas,
        "endpoint_mode": DNSRR,
        "update_config": {"parallelism": 1, "order": "stop-first"},  # one task per GPU
        "restart_policy": dict(RESTART),
    }
    if c.gpu and (c.gpu.count > 0 or group):
        out["placement"] = {"constraints": [f"node.labels.{deploy.gpu_node_label} == true"]}
    if c.gpu and c.gpu.count > 0:
        # a reservation holds its units alone: the GPU node must advertise as many as the
        # members running at once reserve (compose lets them share one device)
        out["resources"] = {"reservations": {"generic_resources": [
            {"discrete_resource_spec": {"kind": deploy.gpu_resource, "value": c.gpu.count}}]}}
    out["labels"] = dict(svc["labels"])
    svc["deploy"] = out
    return svc


def render_swarm(reg: Registry) -> dict[str, Any]:
    # service labels for the runtime (`docker service ls --filter label=…`); the container
    # labels stay for `docker ps` on the nodes
    services: dict[str, Any] = {GATEWAY: _gateway(reg)}
    if reg.stack.cache.enabled:
        services[CACHE] = _cache(reg)
    volumes: dict[str, dict] = {}  # per node: the GPU members share the GPU node's
    for name, prov in reg.providers.providers.items():
        if prov.enabled and prov.container is not None:
            services[name] = _provider(reg, name, prov)
            for vol in filter(named_volume, prov.container.volumes):  # not host paths
                volumes[vol] = {}
    doc: dict[str, Any] = {
        "services": services,
        "networks": {"default": {"driver": "overlay", "attachable": True}},
    }
    if volumes:
        doc["volumes"] = volumes
    doc["configs"] = {name: {"file": path} for name, (path, _) in gateway_configs(reg).items()}
    doc["secrets"] = {name: {"external": True} for name in swarm_secrets(reg)}
    return doc


def swarm_text(reg: Registry) -> str:
    """The stack file as written (the YAML header of the other generated files)."""
    return to_yaml(render_swarm(reg), sources(reg))
