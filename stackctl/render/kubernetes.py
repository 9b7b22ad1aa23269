"""Registry → Kubernetes manifests: a kustomize folder (`kubectl apply -k FOLDER`).

`render_kubernetes` returns {file name relative to the folder: content}: a manifest file is a
document (dict) or a list of documents, a ConfigMap source (the gateway's config and callback
modules) is its text. `kubernetes_texts` turns that into the files' texts. It mirrors
compose.py (the same commands, environments and checks; compose's own helpers where they
fit) with what Kubernetes does differently:

- exclusive GPU group members are Deployments scaled 1 (the default member) / 0 (the others),
  annotated `stackctl.io/gpu-group`; a switch scales them like Swarm's;
- GPU members (gpu.count > 0, or in a group) carry a nodeSelector `{deploy.gpu_node_label:
  "true"}`, and `nvidia.com/gpu` limits when they need a GPU, and are replaced with the
  Recreate strategy (a rolling update would start the new pod beside the old one, which
  holds the GPU);
- secrets are `secretKeyRef`s into ONE Secret, `stackctl-secrets`, key = variable name
  (`kubectl create secret generic stackctl-secrets --from-env-file=.env`): no manifest holds
  a value. Kubernetes has no `${VAR:-default}`: such a reference is an optional key, and the
  default is dropped (the container sees the variable unset);
- named volumes (model caches) are emptyDirs: storage is the cluster's; patch them to
  PersistentVolumeClaims with kustomize; a host path is a hostPath volume (the node's folder);
- the gateway reads its config from a ConfigMap kustomize generates (its name gets a hash of
  the content, so a new config rolls the gateway), with a PodDisruptionBudget;
- Prometheus finds the gateway and the providers with metrics by their pods'
  `prometheus.io/*` annotations. The monitoring services (Prometheus, Alertmanager, Grafana,
  exporters …) are out of scope on purpose: a cluster has its own monitoring, and the
  annotations are how it finds the stack.

Not carried over: the gateway's `net.ipv4.tcp_syn_retries` sysctl (not in Kubernetes' safe
set: pods asking for it are refused unless the kubelet allows it; a Service drops a dead
pod's endpoint instead), Redis' `user: redis` (Kubernetes takes numeric ids only, and the
official and local images differ), host ports (a cluster reaches Services its own way).
"""

from __future__ import annotations

import copy
import io
import math
import re
from typing import Any

from ruamel.yaml import YAML

from stackctl.registry.catalog import (
    exclusive_groups,
    has_metrics,
    host_folder,
    models_of_provider,
    named_volume,
    profile_of,
)
from stackctl.registry.load import Registry
from stackctl.registry.models import Provider
from stackctl.registry.vocabulary import (
    CACHE,
    GATEWAY,
    K8S_GPU_GROUP,
    K8S_NAME,
    K8S_PART_OF,
    K8S_PREFIX,
    K8S_ROLE,
    LITELLM_FILE,
    k8s_name,
)
from stackctl.render.callbacks import callback_files
from stackctl.render.compose import (
    METRICS_DIR,
    cache_service,
    gateway_service,
    provider_service,
    redis_health,
    redis_start,
)
from stackctl.render.litellm import render_litellm, served_backend
from stackctl.render.probes import DEFAULT_VIA, _check, provider_probe
from stackctl.render.text import HEADER, sources, to_yaml

SECRET = "stackctl-secrets"
CONFIG_MAP = "litellm-config"
CONFIG_DIR = "/app/litellm"
GATEWAY_PORT, CACHE_PORT = 4000, 6379
GPU_RESOURCE = "nvidia.com/gpu"
KUSTOMIZATION = "kustomization.yaml"

KUSTOMIZATION_NOTE = """\
# Apply: kubectl create namespace {namespace}
#        kubectl -n {namespace} create secret generic {secret} --from-env-file=.env
#        kubectl apply -k .
# The Secret is never generated: every key and password is a secretKeyRef into it.
# Monitoring is not part of these manifests: the cluster's Prometheus finds the gateway and
# the providers with metrics by their pods' prometheus.io/* annotations.
"""


def _ceil(seconds: float) -> int:
    """Kubernetes takes whole seconds, at least 1."""
    return max(1, math.ceil(seconds))


def _escape(value: str) -> str:
    """A literal for a container's command, args or env value: the kubelet expands `$(VAR)`
    there and reads `$$` as `$`, so those `$` are doubled."""
    return re.sub(r"\$(?=[$(])", "$$", value)


# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?message}, $NAME, and `$$` (a literal $)
_REF = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])[^}]*)?\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def _secret_ref(key: str, optional: bool) -> dict[str, Any]:
    ref: dict[str, Any] = {"name": SECRET, "key": key}
    if optional:
        ref["optional"] = True
    return {"secretKeyRef": ref}


def env_list(env: dict[str, str]) -> list[dict[str, Any]]:
    """A compose environment as a container's `env`: a value that is a variable reference
    reads that key of the Secret (required for `${VAR:?…}`, optional otherwise, as Compose
    gives an unset variable its default or nothing); a value with references inside text
    reads each from the Secret into a helper variable and expands it with `$(…)`."""
    out: list[dict[str, Any]] = []
    helpers: dict[str, dict[str, Any]] = {}
    for name, value in env.items():
        m = _REF.fullmatch(value)
        if m and m.group(0) != "$$":
            var = m.group(1) or m.group(3)
            out.append({"name": name, "valueFrom": _secret_ref(var, m.group(2) not in (":?", "?"))})
            continue
        # the literal text, a NUL where each reference goes (a `$` before one is escaped too)
        text, helpers_here = _REF.sub(lambda r: "$" if r.group(0) == "$$" else "\0", value), []
        for ref in _REF.finditer(value):
            if ref.group(0) == "$$":
                continue
            var = ref.group(1) or ref.group(3)
            helper = f"STACKCTL_SECRET_{var}"
            helpers.setdefault(helper, {"name": helper, "valueFrom": _secret_ref(
                var, ref.group(2) not in (":?", "?"))})
            helpers_here.append(f"$({helper})")
        parts = re.sub(r"\$(?=[$(\0])", "$$", text).split("\0")
        parts = [p + (helpers_here[i] if i < len(helpers_here) else "")
                 for i, p in enumerate(parts)]
        out.append({"name": name, "value": "".join(parts)})
    return list(helpers.values()) + out  # a $(…) reads only variables defined before it


def _labels(reg: Registry, name: str, role: str) -> dict[str, str]:
    return {K8S_NAME: name, K8S_PART_OF: reg.stack.project, K8S_ROLE: role}


def _meta(reg: Registry, name: str, role: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": reg.stack.deploy.namespace,
            "labels": _labels(reg, name, role), **extra}


def _selector(reg: Registry, name: str) -> dict[str, str]:
    return {K8S_NAME: name, K8S_PART_OF: reg.stack.project}


def _scrape(port: int, path: str) -> dict[str, str]:
    return {"prometheus.io/path": path, "prometheus.io/port": str(port),
            "prometheus.io/scrape": "true"}


def _probes(handler: dict[str, Any], interval: float, timeout: float, retries: int,
            start_period: float) -> dict[str, Any]:
    """The compose healthcheck as three probes. Ready and alive: `retries` failures in a row,
    every `interval`. Started: the start period plus those retries (Docker counts no failure
    during the start period, then `retries` of them make the container unhealthy)."""
    period, timeout_s = _ceil(interval), _ceil(timeout)

    def probe(failures: int) -> dict[str, Any]:  # a copy each: no YAML anchors
        return {**copy.deepcopy(handler), "periodSeconds": period, "timeoutSeconds": timeout_s,
                "failureThreshold": failures}

    return {"startupProbe": probe(math.ceil(start_period / period) + retries),
            "readinessProbe": probe(retries), "livenessProbe": probe(retries)}


def _http(path: str, port: int) -> dict[str, Any]:
    return {"httpGet": {"path": path, "port": port}}


def _exec(command: list[str]) -> dict[str, Any]:
    return {"exec": {"command": list(command)}}  # not expanded by the kubelet: as in compose


def _pod_spec(containers: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    # no Service environment variables (REDIS_PORT=tcp://…, VLLM_…): servers read variables
    # of those names as their own settings. No API token: nothing here talks to the API.
    return {"automountServiceAccountToken": False, "enableServiceLinks": False,
            "containers": containers, **extra}


def _deployment(reg: Registry, name: str, role: str, replicas: int, pod: dict[str, Any],
                annotations: dict[str, str], pod_annotations: dict[str, str],
                recreate: bool = False) -> dict[str, Any]:
    template_meta: dict[str, Any] = {"labels": _labels(reg, name, role)}
    if pod_annotations:
        template_meta["annotations"] = dict(sorted(pod_annotations.items()))
    spec: dict[str, Any] = {"replicas": replicas,
                            "selector": {"matchLabels": _selector(reg, name)}}
    if recreate:
        spec["strategy"] = {"type": "Recreate"}
    spec["template"] = {"metadata": template_meta, "spec": pod}
    meta = _meta(reg, name, role)
    if annotations:
        meta["annotations"] = dict(sorted(annotations.items()))
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta, "spec": spec}


def _service(reg: Registry, name: str, role: str, port: int) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": _meta(reg, name, role),
            "spec": {"selector": _selector(reg, name),
                     "ports": [{"name": "http" if role != "cache" else "redis", "port": port,
                                "targetPort": port, "protocol": "TCP"}]}}


def _image(reg: Registry, service: str, default: str) -> str:
    return reg.stack.images.get(service, default)


# -- the gateway --------------------------------------------------------------------------

def gateway_config(reg: Registry) -> dict[str, Any]:
    """The LiteLLM config, its providers reached at their Services' names."""
    config = render_litellm(reg)
    bases = {}
    for name, prov in reg.providers.providers.items():
        c = prov.container
        if prov.enabled and c is not None and k8s_name(name) != name:
            bases[f"http://{name}:{c.port}"] = f"http://{k8s_name(name)}:{c.port}"
    for dep in config["model_list"]:
        params = dep["litellm_params"]
        for old, new in bases.items():
            base = params.get("api_base", "")
            if base == old or base.startswith(old + "/"):
                params["api_base"] = new + base[len(old):]
    return config


def config_files(reg: Registry) -> dict[str, str]:
    """ConfigMap source → text: what compose mounts at /app/litellm."""
    return {LITELLM_FILE: to_yaml(gateway_config(reg), sources(reg)), **callback_files(reg)}


def gateway_objects(reg: Registry) -> list[dict[str, Any]]:
    svc = gateway_service(reg)
    start = reg.stack.gateway.start_period
    container: dict[str, Any] = {
        "name": GATEWAY,
        "image": svc["image"],
        "args": [_escape(a) for a in svc["command"]],
        "ports": [{"name": "http", "containerPort": GATEWAY_PORT, "protocol": "TCP"}],
        "env": env_list(svc["environment"]),
        # compose's healthcheck: /health/liveliness every 2 s, 5 s timeout, 3 retries
        **_probes(_http("/health/liveliness", GATEWAY_PORT), 2, 5, 3, start),
        "volumeMounts": [{"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
                         {"name": "metrics", "mountPath": METRICS_DIR}],
    }
    pod = _pod_spec([container], volumes=[
        {"name": "config", "configMap": {"name": CONFIG_MAP}},  # kustomize adds the hash
        {"name": "metrics", "emptyDir": {"medium": "Memory"}},  # compose: a tmpfs
    ])
    deployment = _deployment(reg, GATEWAY, "gateway", reg.stack.deploy.gateway_replicas, pod,
                             {}, _scrape(GATEWAY_PORT, "/metrics/"))
    pdb = {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
           "metadata": _meta(reg, GATEWAY, "gateway"),
           "spec": {"minAvailable": 1, "selector": {"matchLabels": _selector(reg, GATEWAY)}}}
    return [deployment, _service(reg, GATEWAY, "gateway", GATEWAY_PORT), pdb]


# -- the cache ----------------------------------------------------------------------------

def cache_objects(reg: Registry) -> list[dict[str, Any]]:
    svc = cache_service(reg)
    var = reg.stack.cache.password_env
    container: dict[str, Any] = {
        "name": CACHE,
        "image": svc["image"],
        # as compose: the password only in the environment, Redis' config on stdin
        "args": [_escape(a) for a in ["sh", "-c", redis_start(var)]],
        "ports": [{"name": "redis", "containerPort": CACHE_PORT, "protocol": "TCP"}],
        "env": env_list(svc["environment"]),
        **_probes(_exec(["sh", "-c", redis_health(var)]), 1, 3, 5, 10),
    }
    return [_deployment(reg, CACHE, "cache", 1, _pod_spec([container]), {}, {}),
            _service(reg, CACHE, "cache", CACHE_PORT)]


# -- providers ----------------------------------------------------------------------------

def default_members(reg: Registry) -> set[str]:
    """Of each exclusive GPU group, the member that runs: the first whose profile is a
    default profile, else the first."""
    provs, out = reg.providers.providers, set()
    for members in exclusive_groups(reg).values():
        default = [m for m in members if profile_of(m, provs[m]) in reg.stack.default_profiles]
        out.add((default or members)[0])
    return out


def provider_replicas(reg: Registry, name: str, prov: Provider) -> int:
    """1 for what `stackctl up` starts (a default profile; a group's default member), else 0."""
    c = prov.container
    if c is not None and c.gpu and c.gpu.exclusive_group:
        return 1 if name in default_members(reg) else 0
    return 1 if profile_of(name, prov) in reg.stack.default_profiles else 0


def provider_probes(reg: Registry, name: str, prov: Provider) -> dict[str, Any]:
    """An HTTP check (python or curl in compose) as httpGet on the same port and path; the
    kubelet cannot look for the `expect` text, but a server lists its models only once it
    has loaded them. Another check (ollama-cli) as the same command."""
    c = prov.container
    assert c is not None
    test, health = provider_probe(prov, served_backend(reg, name))
    if (health.via or DEFAULT_VIA.get(prov.type, "python")) in ("python", "curl"):
        endpoint, _ = _check(prov, None)
        handler = _http(endpoint, c.port)
    else:
        handler = _exec(test[1:])  # ["CMD", …]
    return _probes(handler, health.interval, health.timeout, health.retries,
                   health.start_period)


def provider_objects(reg: Registry, name: str, prov: Provider) -> list[dict[str, Any]]:
    c = prov.container
    assert c is not None
    svc = provider_service(reg, name, prov)  # the command and env compose runs, sleep flags too
    obj = k8s_name(name)
    group = c.gpu.exclusive_group if c.gpu else None
    gpus = c.gpu.count if c.gpu else 0
    container: dict[str, Any] = {"name": obj, "image": svc["image"]}
    if svc.get("command"):
        container["args"] = [_escape(a) for a in svc["command"]]
    container["ports"] = [{"name": "http", "containerPort": c.port, "protocol": "TCP"}]
    if svc.get("environment"):
        container["env"] = env_list(svc["environment"])
    container.update(provider_probes(reg, name, prov))
    if gpus > 0:
        container["resources"] = {"limits": {GPU_RESOURCE: gpus}}
    # named volumes by their names; host paths (a node's folder) by their place in the list
    names = {vol: k8s_name(vol) if named_volume(vol) else f"host-{i}"
             for i, vol in enumerate(c.volumes)}
    volumes = {names[vol]: path for vol, path in c.volumes.items()}
    if volumes:
        container["volumeMounts"] = [{"name": v, "mountPath": p} for v, p in volumes.items()]
    extra: dict[str, Any] = {"terminationGracePeriodSeconds": math.ceil(c.stop_grace_period)}
    if gpus > 0 or group:
        extra["nodeSelector"] = {reg.stack.deploy.gpu_node_label: "true"}
    if volumes:
        # model caches: the cluster's storage is its own (patch to PersistentVolumeClaims)
        extra["volumes"] = [{"name": names[vol], "emptyDir": {}} if named_volume(vol) else
                            {"name": names[vol], "hostPath": {"path": str(host_folder(reg, vol))}}
                            for vol in c.volumes]
    annotations = {f"{K8S_PREFIX}/provider": name,
                   f"{K8S_PREFIX}/models": ",".join(models_of_provider(reg, name))}
    if group:
        annotations[K8S_GPU_GROUP] = group
    pod_annotations = {K8S_GPU_GROUP: group} if group else {}
    if has_metrics(prov):
        pod_annotations.update(_scrape(c.port, "/metrics"))
    deployment = _deployment(reg, obj, "provider", provider_replicas(reg, name, prov),
                             _pod_spec([container], **extra), annotations, pod_annotations,
                             recreate=gpus > 0 or bool(group))
    return [deployment, _service(reg, obj, "provider", c.port)]


# -- the folder ---------------------------------------------------------------------------

def render_kubernetes(reg: Registry) -> dict[str, Any]:
    """File name → manifest (a document or a list of them), or ConfigMap source text."""
    ns = reg.stack.deploy.namespace
    manifests: dict[str, Any] = {
        "namespace.yaml": {"apiVersion": "v1", "kind": "Namespace",
                           "metadata": {"name": ns,
                                        "labels": {K8S_PART_OF: reg.stack.project}}},
        f"{GATEWAY}.yaml": gateway_objects(reg)}
    if reg.stack.cache.enabled:
        manifests[f"{CACHE}.yaml"] = cache_objects(reg)
    names = {GATEWAY: "the gateway", CACHE: "the cache"}
    for name, prov in reg.providers.providers.items():
        if prov.enabled and prov.container is not None:
            obj = k8s_name(name)
            if obj in names:
                raise ValueError(f"provider {name!r} and {names[obj]} would both be named "
                                 f"{obj!r} on Kubernetes: rename the provider")
            names[obj] = f"provider {name!r}"
            manifests[f"provider-{obj}.yaml"] = provider_objects(reg, name, prov)
    files = config_files(reg)
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": ns,
        "resources": sorted(manifests),
        "configMapGenerator": [{
            "name": CONFIG_MAP,
            # key = the file's name in /app/litellm
            "files": [f"{path.rsplit('/', 1)[1]}={path}" for path in sorted(files)]}],
        "generatorOptions": {"labels": _labels(reg, GATEWAY, "gateway")},
    }
    return {KUSTOMIZATION: kustomization, **manifests, **files}


def _dump(doc: Any) -> str:
    """One document, as to_yaml writes it, without the header."""
    text = to_yaml(doc, [])
    return text[len(HEADER.format(sources="")):]


def kubernetes_texts(reg: Registry, rendered: dict[str, Any] | None = None) -> dict[str, str]:
    """File name → text of the kustomize folder (manifests with the generated header;
    several documents in a file separated by `---`)."""
    rendered = render_kubernetes(reg) if rendered is None else rendered
    header = HEADER.format(sources=", ".join(sources(reg)))
    out: dict[str, str] = {}
    for name, content in rendered.items():
        if isinstance(content, str):
            out[name] = content
            continue
        docs = content if isinstance(content, list) else [content]
        text = header
        if name == KUSTOMIZATION:
            text += KUSTOMIZATION_NOTE.format(namespace=reg.stack.deploy.namespace, secret=SECRET)
        out[name] = text + "---\n".join(_dump(d) for d in docs)
    return out


def load_documents(text: str) -> list[Any]:
    """The documents of a manifest file (for tests and `--check`)."""
    return [d for d in YAML(typ="safe", pure=True).load_all(io.StringIO(text)) if d is not None]
