"""Registry → docker compose document (as a dict)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from stackctl.registry.catalog import (
    host_folder,
    models_of_provider,
    monitoring_components,
    named_volume,
    profile_of,
    sleep_members,
)
from stackctl.registry.load import Registry
from stackctl.registry.models import MonitoringService, Provider
from stackctl.registry.vocabulary import (
    CACHE,
    GATEWAY,
    LABEL,
    MONITORING,
    MONITORING_VOLUMES,
    RELAY_FILE,
)
from stackctl.render.alertmanager import relayed, start_script, webhook_variables
from stackctl.render.litellm import served_backend
from stackctl.render.probes import compose_healthcheck, provider_probe, python_http


def _labels(role: str, **extra: str) -> dict[str, str]:
    return {f"{LABEL}.role": role, **{f"{LABEL}.{k.replace('_', '-')}": v for k, v in extra.items()}}


def _port(bind: str, host: int | None, container: int) -> list[str]:
    return [f"{bind}:{host}:{container}"] if host else []


def _image(reg: Registry, service: str, default: str) -> str:
    return reg.stack.images.get(service, default)


def _required(name: str) -> str:
    """`${NAME:?…}`: Compose refuses to run without the value; the file holds only the name.
    Only for always-on services (Compose interpolates every profile's services)."""
    return f"${{{name}:?set {name} in .env}}"


METRICS_DIR = "/tmp/litellm-metrics"


def gateway_service(reg: Registry) -> dict[str, Any]:
    gw, stack = reg.stack.gateway, reg.stack
    env = {gw.master_key_env: _required(gw.master_key_env),
           "LITELLM_LOCAL_MODEL_COST_MAP": "true",
           # every worker writes its samples here; /metrics adds them up
           "PROMETHEUS_MULTIPROC_DIR": METRICS_DIR,
           # LiteLLM caches a provider's address for 300 s: once the provider's container
           # dies or moves, every request dials the old address and hangs until the timeout
           # instead of falling back at once. Docker's DNS answers locally: ask it every time
           "AIOHTTP_TTL_DNS_CACHE": "0"}
    if stack.cache.enabled:  # cache_params.password: os.environ/<password_env>
        env[stack.cache.password_env] = _required(stack.cache.password_env)
    for prov in reg.providers.providers.values():
        if prov.enabled and prov.env_var:
            env[prov.env_var] = _required(prov.env_var)
    svc: dict[str, Any] = {
        "image": _image(reg, GATEWAY, gw.image),
        # gunicorn: several workers on the cores, and on SIGHUP new workers read the config
        # again while the old ones finish their requests (`stackctl reload`)
        "command": ["--config", "/app/litellm/config.yaml", "--port", "4000", "--host", "0.0.0.0",
                    "--run_gunicorn", "--num_workers", str(gw.workers)],
        "environment": env,
        "tmpfs": [METRICS_DIR],
        # A provider's container killed under load takes its address with it: a connection
        # the gateway opens to it just then gets no answer at all, and by default the kernel
        # retries the SYN for 127 s. Two retries give up after about 3 s ("no route to host"),
        # and the router falls back; a SYN lost on the way to a cloud provider is still resent.
        "sysctls": {"net.ipv4.tcp_syn_retries": 2},
        # the folder, not the file: files in it are replaced atomically (a new inode), which a
        # single-file bind mount would never show the container; callbacks live beside it
        "volumes": ["./litellm:/app/litellm:ro"],
        "ports": _port(stack.bind_address, gw.host_port, 4000),
        "healthcheck": compose_healthcheck(
            python_http("http://127.0.0.1:4000/health/liveliness", 4), 2, 5, 3, gw.start_period),
        # its config folder is a bind mount, which Compose does not watch: `up` and `reload`
        # have gunicorn replace the workers when it changed (no restart)
        "labels": _labels("gateway"),
        "restart": "unless-stopped",
    }
    if stack.cache.enabled:
        svc["depends_on"] = {CACHE: {"condition": "service_healthy"}}
    return svc


def _shell(script: str) -> list[str]:
    """`sh -c SCRIPT` as a compose command: `$` doubled so Compose leaves it to the shell."""
    return ["sh", "-c", script.replace("$", "$$")]


def redis_start(var: str) -> str:
    """Start Redis with `requirepass` read from the container's environment variable `var`.

    The shell writes it into the config Redis reads on stdin (`redis-server -`, a here-doc:
    no file, no child process), so the password is in no generated file, not in the
    container's command (`docker inspect`) and on no process's command line. The official
    image's entrypoint runs an `sh` command as given, and so does the local one. Redis' config
    syntax splits on blanks and quotes: such a password is refused here, before Redis would
    echo the offending config line, password included, into its log."""
    return (f'case "${var}" in ""|*[[:space:]\\"\\\'\\\\]*)\n'
            f'  echo "{var} must be set, without blanks, quotes or backslashes" >&2; exit 1;;\n'
            "esac\n"
            "exec redis-server - --save '' --appendonly no --protected-mode no <<EOF\n"
            f"requirepass ${var}\n"
            "EOF\n")


def redis_health(var: str) -> str:
    """Healthy only on PONG (`redis-cli ping` exits 0 on NOAUTH and LOADING replies); the
    password goes to redis-cli in REDISCLI_AUTH, not as an argument."""
    return f'test "$(REDISCLI_AUTH="${var}" redis-cli ping)" = PONG'


def cache_service(reg: Registry) -> dict[str, Any]:
    cache = reg.stack.cache
    var = cache.password_env
    return {
        "image": _image(reg, CACHE, cache.image),
        # not root: the official image drops to `redis` only for a `redis-server` command
        "user": "redis",
        "command": _shell(redis_start(var)),
        # like the gateway's master key, the value lives only in the container's environment
        "environment": {var: _required(var)},
        "ports": _port(reg.stack.bind_address, cache.host_port, 6379),
        "healthcheck": compose_healthcheck(["CMD", *_shell(redis_health(var))], 1, 3, 5, 10),
        "labels": _labels("cache"),
        "restart": "unless-stopped",
    }


def host_source(reg: Registry, volume: str, base: Path) -> str:
    """A named volume as it is; a host path relative to `base`, the folder of the file that
    names it (Compose and `docker stack deploy` read it from there; the registry's paths are
    relative to the config folder)."""
    if named_volume(volume) or volume.startswith(("/", "~")):
        return volume
    rel = os.path.relpath(host_folder(reg, volume), base)
    return rel if rel.startswith("..") else f"./{rel}"


SLEEP_FLAG, DEV_MODE = "--enable-sleep-mode", "VLLM_SERVER_DEV_MODE"


def provider_service(reg: Registry, name: str, prov: Provider) -> dict[str, Any]:
    c = prov.container
    assert c is not None
    test, health = provider_probe(prov, served_backend(reg, name))
    extra = {"provider": name, "models": ",".join(models_of_provider(reg, name))}
    if c.gpu and c.gpu.exclusive_group:
        extra["gpu_group"] = c.gpu.exclusive_group
    svc: dict[str, Any] = {
        "image": _image(reg, name, c.image),
        "profiles": [profile_of(name, prov)],
    }
    command, env = list(c.command), dict(c.env)
    if name in sleep_members(reg):
        # vLLM frees GPU memory on /sleep only with --enable-sleep-mode, and serves /sleep,
        # /wake_up and /is_sleeping only in its dev mode (switching/vllm.py)
        command += [] if SLEEP_FLAG in command else [SLEEP_FLAG]
        env[DEV_MODE] = "1"
    if command:
        svc["command"] = command
    if env:
        svc["environment"] = env
    if c.volumes:
        svc["volumes"] = [f"{host_source(reg, vol, reg.output_dir)}:{path}"
                          for vol, path in c.volumes.items()]
    svc["ports"] = _port(reg.stack.bind_address, prov.host_port, c.port)
    svc["healthcheck"] = compose_healthcheck(test, health.interval, health.timeout,
                                             health.retries, health.start_period)
    if c.gpu and c.gpu.count > 0:
        svc["deploy"] = {"resources": {"reservations": {"devices": [
            {"driver": "nvidia", "count": c.gpu.count, "capabilities": ["gpu"]}]}}}
    svc["stop_grace_period"] = f"{c.stop_grace_period:g}s"
    svc["labels"] = _labels("provider", **extra)
    svc["restart"] = "unless-stopped"
    return svc


# Container ports of the monitoring services (the compose service names).
MONITORING_PORTS = {"prometheus": 9090, "alertmanager": 9093, "pushgateway": 9091,
                    "redis-exporter": 9121, "blackbox-exporter": 9115, "grafana": 3000,
                    "loki": 3100, "alloy": 12345}
# Generated configs are mounted as folders: a file replaced on the host (a new inode) shows in
# the container, so a reload (SIGHUP) or restart reads the current one.
PROMETHEUS_DIR = "/etc/prometheus/stackctl"
PROMETHEUS_RULES = "/etc/prometheus/rules/alerts.yml"
ALERTMANAGER_DIR = "/etc/alertmanager/stackctl"


def _ready(comp: MonitoringService, service: str, path: str) -> dict:
    url = f"http://127.0.0.1:{MONITORING_PORTS[service]}{path}"
    test = python_http(url, 4) if comp.via == "python" else \
        ["CMD", "wget", "-q", "-O", "/dev/null", url]
    return compose_healthcheck(test, 10, 5, 3, 30)


def _alertmanager(reg: Registry) -> dict[str, Any]:
    """On the generated file; the webhook URLs as secret files, read by Alertmanager itself
    (url_file) or by the relay started before it (alertmanager.py)."""
    svc: dict[str, Any] = {}
    variables = webhook_variables(reg)
    if relayed(reg):
        relay = f"{ALERTMANAGER_DIR}/{os.path.basename(RELAY_FILE)}"
        # "$@" after the script: the command (the flags)
        svc["entrypoint"] = [*_shell(start_script(relay, variables)), "alertmanager"]
    svc["command"] = [f"--config.file={ALERTMANAGER_DIR}/alertmanager.yml",
                      "--storage.path=/alertmanager",
                      "--cluster.listen-address="]  # one instance: no gossip port, no peers
    if variables:
        svc["secrets"] = variables
    return svc


def _monitoring_service(reg: Registry, service: str, comp: MonitoringService,
                        cfg: str, dashboards: str) -> dict[str, Any]:
    stack = reg.stack
    svc: dict[str, Any] = {"image": _image(reg, service, comp.image), "profiles": [MONITORING]}
    if service == "prometheus":
        svc.update({
            # --web.enable-lifecycle: POST /-/reload reads a regenerated config (no restart)
            "command": [f"--config.file={PROMETHEUS_DIR}/prometheus.yml",
                        "--storage.tsdb.path=/prometheus", "--storage.tsdb.retention.time=15d",
                        "--web.enable-lifecycle"],
            "volumes": [f"./prometheus:{PROMETHEUS_DIR}:ro",
                        f"{cfg}/prometheus:{os.path.dirname(PROMETHEUS_RULES)}:ro",
                        "prometheus-data:/prometheus"],
            "secrets": ["litellm_master_key"],
            "healthcheck": _ready(comp, service, "/-/ready")})
    elif service == "alertmanager":
        svc.update(_alertmanager(reg))
        svc["volumes"] = [f"./alertmanager:{ALERTMANAGER_DIR}:ro", "alertmanager-data:/alertmanager"]
        svc["healthcheck"] = _ready(comp, service, "/-/ready")
    elif service == "pushgateway":
        # the last switch of each GPU group survives a restart
        svc["command"] = ["--persistence.file=/pushgateway/metrics.store"]
        svc["volumes"] = ["pushgateway-data:/pushgateway"]
        svc["healthcheck"] = _ready(comp, service, "/-/ready")
    elif service == "redis-exporter":
        # both images read these variables; the password only from the container's environment
        svc["environment"] = {"REDIS_ADDR": f"redis://{CACHE}:6379",
                              "REDIS_PASSWORD": _required(stack.cache.password_env)}
        svc["healthcheck"] = _ready(comp, service, "/health")
    elif service == "blackbox-exporter":
        # the image's own modules file: both ship the http_2xx module the probes use
        svc["healthcheck"] = _ready(comp, service, "/-/healthy")
    elif service == "grafana":
        svc.update({
            # a secret, not ${VAR:?}: Compose interpolates every service, so a required
            # variable here would be required by stacks without monitoring too
            "environment": {
                "GF_SECURITY_ADMIN_PASSWORD__FILE": "/run/secrets/grafana_admin_password",
                "GF_USERS_ALLOW_SIGN_UP": "false"},
            "secrets": ["grafana_admin_password"],
            "volumes": [f"{cfg}/grafana/provisioning:/etc/grafana/provisioning:ro",
                        f"{dashboards}:/var/lib/grafana/dashboards:ro",
                        "grafana-data:/var/lib/grafana"],
            "healthcheck": _ready(comp, service, "/api/health")})
    elif service == "loki":
        svc.update({
            "command": ["-config.file=/etc/loki/loki.yaml"],
            "volumes": [f"{cfg}/loki/loki.yaml:/etc/loki/loki.yaml:ro", "loki-data:/loki"],
            "healthcheck": _ready(comp, service, "/ready")})
    elif service == "alloy":
        svc.update({
            "command": ["run", "--server.http.listen-addr=0.0.0.0:12345",
                        "--storage.path=/var/lib/alloy/data", "/etc/alloy/config.alloy"],
            "environment": {"STACKCTL_COMPOSE_PROJECT": stack.project},  # logs of ours only
            "volumes": [f"{cfg}/alloy/config.alloy:/etc/alloy/config.alloy:ro",
                        "/var/run/docker.sock:/var/run/docker.sock:ro"],
            # the Alloy image has neither curl nor wget: check its HTTP port with bash
            "healthcheck": compose_healthcheck(
                ["CMD", "bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/12345"], 10, 5, 3, 30),
            "depends_on": {"loki": {"condition": "service_healthy"}}})
    svc["ports"] = _port(stack.bind_address, comp.host_port, MONITORING_PORTS[service])
    svc["labels"] = _labels("monitoring")
    svc["restart"] = "unless-stopped"
    return svc


def monitoring_services(reg: Registry) -> dict[str, Any]:
    """The services of the `monitoring` profile that stack.yaml enables."""
    mon = reg.stack.monitoring
    cfg = os.path.relpath(reg.resolve(mon.config_dir), reg.output_dir)
    dashboards = os.path.relpath(reg.resolve(mon.dashboards_dir), reg.output_dir)
    return {service: _monitoring_service(reg, service, comp, cfg, dashboards)
            for service, (_, comp) in monitoring_components(reg).items()}


def render_compose(reg: Registry) -> dict[str, Any]:
    services: dict[str, Any] = {GATEWAY: gateway_service(reg)}
    if reg.stack.cache.enabled:
        services[CACHE] = cache_service(reg)
    volumes: dict[str, dict] = {}
    for name, prov in reg.providers.providers.items():
        if prov.enabled and prov.container is not None:
            services[name] = provider_service(reg, name, prov)
            for vol in filter(named_volume, prov.container.volumes):  # not host paths
                volumes[vol] = {}
    monitoring = monitoring_services(reg)
    services.update(monitoring)
    for service, vol in MONITORING_VOLUMES.items():
        if service in monitoring:
            volumes[vol] = {}
    secrets = {"litellm_master_key": {"environment": reg.stack.gateway.master_key_env}}
    if "grafana" in monitoring:
        secrets["grafana_admin_password"] = {
            "environment": reg.stack.monitoring.grafana_password_env}
    if "alertmanager" in monitoring:  # each named like the variable it is read from
        secrets.update({v: {"environment": v} for v in webhook_variables(reg)})
    return {
        "name": reg.stack.project,
        "services": services,
        "volumes": volumes,
        "secrets": secrets,
    }

