"""What the registry may hand out: the stack's own names, the images of services that hold
its secrets, host folders mounted into containers, and where the deploy targets send it all.

Errors where a secret would go elsewhere or a built-in would be replaced; warnings for
choices a user may mean (a mirror of an image, a Swarm they run), saying what goes where.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from urllib.parse import urlsplit

from stackctl.registry.catalog import alertmanager_image, monitoring_components, reads_url_file
from stackctl.registry.load import PROVIDERS, STACK, Registry
from stackctl.registry.models import MONITORING_DEFAULTS, Cache, Gateway
from stackctl.registry.problems import Problem
from stackctl.registry.source import Loc
from stackctl.registry.vocabulary import (
    CACHE,
    GATEWAY,
    LOCAL_IMAGES,
    MONITORING_SERVICES,
    MONITORING_VOLUMES,
    STACK_SECRETS,
)

# service → what its container is handed
PRIVILEGED = {
    GATEWAY: "the master key and every provider's API key",
    CACHE: "the cache's password",
    "prometheus": "the master key (to scrape the gateway)",
    "alertmanager": "the alert receivers' webhook URLs",
    "redis-exporter": "the cache's password",
    "grafana": "Grafana's admin password",
    "alloy": "the Docker socket (root on the Docker engine)",
}
# Host folders no container may mount: the host's configuration, kernel, devices and Docker
# engine (or anything in them), and the folders holding every user's files or programs
# (themselves: projects live below them).
SYSTEM_TREES = tuple(Path(p) for p in (
    "/etc", "/proc", "/sys", "/dev", "/boot", "/run", "/var/run", "/var/lib/docker"))
SYSTEM_FOLDERS = tuple(Path(p) for p in ("/root", "/home", "/usr", "/var", "/bin", "/sbin",
                                         "/lib", "/opt", "/srv", "/tmp"))
KUBE_NAMESPACES = {"kube-system", "kube-public", "kube-node-lease"}


def check_privileges(reg: Registry) -> list[Problem]:
    return [*_reserved_names(reg), *_images(reg), *_webhook_relay(reg), *_folders(reg),
            *_deploy(reg)]


def _stack(reg: Registry, severity: str, loc: Loc, message: str, hint: str) -> Problem:
    src = reg.sources.get(STACK) or reg.sources[PROVIDERS]  # stack.yaml may be absent
    return src.problem(severity, loc, message, hint)


# -- the stack's own names ------------------------------------------------------------------

def _reserved_names(reg: Registry) -> list[Problem]:
    """A provider's service, volume or secret named like one of the stack's would replace
    it in the generated file (a mapping key holds one service, one volume)."""
    src = reg.sources[PROVIDERS]
    services = {GATEWAY: "the gateway", CACHE: "the cache",
                **{s: f"the monitoring service {s}" for s in MONITORING_SERVICES.values()}}
    volumes = {v: f"{s}'s data" for s, v in MONITORING_VOLUMES.items()}
    out: list[Problem] = []
    for name, prov in reg.providers.providers.items():
        if prov.container is None:
            continue
        if name in services:
            out.append(src.problem("error", ("providers", name), f"provider name {name!r} is "
                                   f"the service of {services[name]}: the provider would "
                                   "replace it", f"rename the provider, e.g. {name}-provider"))
        for vol in prov.container.volumes:
            if vol in volumes:
                out.append(src.problem(
                    "error", ("providers", name, "container", "volumes", vol),
                    f"volume {vol!r} is {volumes[vol]}: provider {name!r} would read and "
                    "write it", f"name a volume of its own, e.g. {name}-models"))
    for i, r in enumerate(reg.stack.monitoring.alerts.receivers):
        if r.webhook_url_env in STACK_SECRETS:
            out.append(_stack(reg, "error", ("monitoring", "alerts", "receivers", i,
                                             "webhook_url_env"),
                              f"{r.webhook_url_env!r} is the name of one of the stack's own "
                              "secrets: the webhook's secret would replace it",
                              "e.g. webhook_url_env: ALERT_WEBHOOK_URL"))
    return out


# -- images of the services that hold secrets -----------------------------------------------

def _images(reg: Registry) -> list[Problem]:
    stack = reg.stack
    running = monitoring_components(reg)
    own: dict[str, tuple[Loc, str, str]] = {  # service → (its image key, image, default)
        GATEWAY: (("gateway", "image"), stack.gateway.image, Gateway().image)}
    if stack.cache.enabled:
        own[CACHE] = (("cache", "image"), stack.cache.image, Cache().image)
    for service, (key, comp) in running.items():
        if service in PRIVILEGED:
            own[service] = (("monitoring", key, "image"), comp.image,
                            MONITORING_DEFAULTS[key]["image"])
    out: list[Problem] = []
    for service, (loc, image, default) in own.items():
        if service in stack.images:
            loc, image = ("images", service), stack.images[service]
        if not _known(image, default):
            repo = _repository(default)
            out.append(_stack(
                reg, "warning", loc, f"{service} runs {image}, not {repo}: that image is "
                f"handed {PRIVILEGED[service]}",
                f"use {repo} (any tag, from any registry) or the local {LOCAL_IMAGES} set; "
                f"keep it only if you built or audited {_repository(image)}"))
    return out


def _webhook_relay(reg: Registry) -> list[Problem]:
    """Alertmanager < 0.26 gets its webhooks through stackctl's relay, which runs on the
    image's python3 (render/alertmanager.py): an image without one could not start."""
    running = monitoring_components(reg)
    image = alertmanager_image(reg)
    if "alertmanager" not in running or not reg.stack.monitoring.alerts.receivers \
            or reads_url_file(image):
        return []
    key, comp = running["alertmanager"]
    if comp.via == "python":
        return []
    loc: Loc = ("images", "alertmanager") if "alertmanager" in reg.stack.images else \
        ("monitoring", key, "image")
    return [_stack(reg, "error", loc, f"{image} is an Alertmanager older than 0.26: it would "
                   "show the webhook URLs on its status API, so stackctl relays them from "
                   "inside its container with python3, which this image lacks (via: "
                   f"{comp.via})", "use prom/alertmanager:v0.26.0 or later (url_file), or an "
                   "image with python3 and via: python (the local stackctl-local/alertmanager)")]


def _repository(image: str) -> str:
    name = image.split("@", 1)[0]
    head, _, tail = name.rpartition("/")
    return f"{head}/{tail.split(':', 1)[0]}" if head else name.split(":", 1)[0]


def _known(image: str, default: str) -> bool:
    """The default's repository, or a mirror of it (any registry host in front), or the
    image of the local set."""
    repo, expected = _repository(image), _repository(default)
    path = expected.split("/", 1)[1] if expected.count("/") > 1 else expected  # no host
    return repo.startswith(LOCAL_IMAGES) or repo == expected or repo == path \
        or repo.endswith("/" + path)


# -- host folders mounted into containers ---------------------------------------------------

def exposed_folder(reg: Registry, folder: Path) -> str | None:
    """Why mounting `folder` (resolved) into a container hands it what it must not have."""
    if folder == Path("/"):
        return "the whole host's files"
    for system in SYSTEM_TREES:
        if folder.is_relative_to(system):
            return f"the host's {system} folder"
    if folder in SYSTEM_FOLDERS:
        return f"the host's {folder} folder"
    if folder == Path.home():
        return "your home folder"
    if reg.env_file.is_relative_to(folder):
        return f"the stack's secrets file ({reg.env_file.name})"
    return None


def _folders(reg: Registry) -> list[Problem]:
    mon = reg.stack.monitoring
    out: list[Problem] = []
    for key, used in (("config_dir", "Prometheus, Grafana, Loki and Alloy"),
                      ("dashboards_dir", "Grafana")):
        folder = reg.resolve(getattr(mon, key))
        if (why := exposed_folder(reg, folder)) is not None:
            out.append(_stack(reg, "error", ("monitoring", key),
                              f"monitoring.{key} is {folder}, which holds {why}: {used} "
                              "would mount it", "point it at stackctl's monitoring/ (or "
                              "grafana-dashboards/) folder, relative to the config folder"))
    project = reg.config_dir.resolve().parent
    if not reg.env_file.is_relative_to(project):
        out.append(_stack(reg, "warning", ("env_file",), f"env_file {reg.env_file} is outside "
                          f"the project ({project}): `up` writes the stack's secrets there, "
                          "and Compose hands the stack every variable in it",
                          "keep it inside, e.g. env_file: ../.env"))
    return out


# -- deploy targets -------------------------------------------------------------------------

def _local(host: str | None) -> bool:
    if not host or host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _deploy(reg: Registry) -> list[Problem]:
    d = reg.stack.deploy
    out: list[Problem] = []
    if d.manager and not d.manager.startswith("unix://") and \
            not _local(urlsplit(d.manager).hostname):
        out.append(_stack(reg, "warning", ("deploy", "manager"),
                          f"`up` and `switch` send the stack's secrets (the values in .env, as "
                          f"Swarm secrets) and its images to the Docker engine at {d.manager}",
                          "keep it if you run that Swarm, on a network you trust (TLS or "
                          "ssh://); null runs the stack on this machine's engine"))
    if d.registry and not _local(d.registry.rsplit(":", 1)[0]):
        out.append(_stack(reg, "warning", ("deploy", "registry"),
                          f"`up` pushes the local images to {d.registry}, where whoever can "
                          "pull from it reads them", "keep it if that registry is yours; "
                          "null uses the images as named"))
    if d.gateway_url and not _local(urlsplit(d.gateway_url).hostname):
        out.append(_stack(reg, "warning", ("deploy", "gateway_url"),
                          f"`switch` sends the master key to {d.gateway_url} to check the "
                          "routing", "keep it if that is your gateway's address; https:// "
                          "keeps the key off the wire"))
    if d.namespace in KUBE_NAMESPACES:
        out.append(_stack(reg, "error", ("deploy", "namespace"),
                          f"namespace {d.namespace!r} is the cluster's own: the stack's secrets "
                          "would be stored beside its system components"
                          + (", readable by every user" if d.namespace == "kube-public" else ""),
                          "give the stack a namespace of its own, e.g. namespace: stackctl"))
    return out
