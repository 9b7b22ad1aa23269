"""The stack's names: its built-in services, profiles, labels and generated files.

Every layer speaks of these: the renderers write them, the runtime (targets, switching,
health, cache, logs, ports, doctor, gateway, cli) finds containers, files and objects by
them, and the registry checks refuse what would clash with them. They live here, below all
of those, so that no one imports a renderer only for a name.
"""

from __future__ import annotations

import re

from stackctl.registry.models import MONITORING_DEFAULTS

# -- services and profiles ------------------------------------------------------------------

GATEWAY, CACHE = "litellm", "redis"  # compose service names (and DNS names on its network)
MONITORING = "monitoring"  # the profile of every monitoring service
# stack.yaml monitoring key → compose service name, in start order
MONITORING_SERVICES = {key: key.replace("_", "-") for key in MONITORING_DEFAULTS}
TARGETS = ("compose", "swarm", "kubernetes")  # the engines (stack.yaml deploy.target)
# the named volumes of the monitoring services (compose service → volume)
MONITORING_VOLUMES = {"prometheus": "prometheus-data", "alertmanager": "alertmanager-data",
                      "pushgateway": "pushgateway-data", "grafana": "grafana-data",
                      "loki": "loki-data"}
# the compose/Swarm secrets the stack defines for its own services
STACK_SECRETS = ("litellm_master_key", "grafana_admin_password")
# variables the renderers set in the stack's containers: a secret named like one of them
# would take that fixed, published value
GENERATED_ENV = frozenset({
    "LITELLM_LOCAL_MODEL_COST_MAP", "PROMETHEUS_MULTIPROC_DIR", "AIOHTTP_TTL_DNS_CACHE",
    "VLLM_SERVER_DEV_MODE", "STACKCTL_COMPOSE_PROJECT", "REDIS_ADDR",
    "GF_SECURITY_ADMIN_PASSWORD__FILE", "GF_USERS_ALLOW_SIGN_UP"})
# the resident scheduler's socket for the gateway, beside the routing state in the folder the
# gateway mounts (the state file's `scheduler` key names it; stackctl/resident/)
SCHEDULER_SOCKET = "stackctl-scheduler.sock"
# images of the local set (`stackctl images build`)
LOCAL_IMAGES = "stackctl-local/"

# -- labels ---------------------------------------------------------------------------------

LABEL = "org.stackctl"  # Docker labels: org.stackctl.role, org.stackctl.gpu-group …
# Kubernetes labels and annotations
K8S_PREFIX = "stackctl.io"
K8S_NAME, K8S_PART_OF = "app.kubernetes.io/name", "app.kubernetes.io/part-of"
K8S_ROLE, K8S_GPU_GROUP = f"{K8S_PREFIX}/role", f"{K8S_PREFIX}/gpu-group"


def k8s_name(name: str) -> str:
    """A registry name as a Kubernetes object name (an RFC 1035 label, which Services need):
    lowercase, `_` and other characters as `-`."""
    out = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    if not out or not out[0].isalpha() or len(out) > 63:
        raise ValueError(f"{name!r} cannot be a Kubernetes object name: use a name starting "
                         "with a letter, of letters, digits, '-' and '_', at most 63 long")
    return out


# -- generated files (relative to output_dir) -----------------------------------------------

COMPOSE_FILE = "compose.yaml"
LITELLM_FILE = "litellm/config.yaml"
# the gateway's callback modules, generated beside its config (stackctl/incontainer/*.py)
TRACE_MODULE = "stackctl_trace"
ROUTING_MODULE = "stackctl_routing"
TRACE_FILE = f"litellm/{TRACE_MODULE}.py"
ROUTING_FILE = f"litellm/{ROUTING_MODULE}.py"
PROMETHEUS_FILE = "prometheus/prometheus.yml"
ALERTMANAGER_FILE = "alertmanager/alertmanager.yml"
RELAY_FILE = "alertmanager/stackctl_webhook_relay.py"  # beside it, for Alertmanager 0.25
SWARM_FILE = "swarm/stack.yaml"  # the Swarm configs it names are relative to its folder
KUBERNETES_DIR = "kubernetes"  # a kustomize folder
