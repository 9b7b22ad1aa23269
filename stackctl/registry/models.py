"""Typed registry: providers.yaml, model-mappings.yaml and stack.yaml.

The provider and mapping schema is the one of the system stackctl replaces (its descriptive
keys are accepted and ignored); `container` and stack.yaml are stackctl's additions.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal
from urllib.parse import urlparse

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

LOCAL_TYPES = ("ollama", "llama_cpp", "vllm")
ProviderType = Literal["ollama", "llama_cpp", "vllm", "openai", "anthropic", "openai_compatible"]
Status = Literal["active", "disabled", "template"]


# Docker's image reference grammar (distribution/reference, regexp.go): [host[:port]/]path
# [:tag][@digest]. What it refuses, `docker compose up` refuses too, but only at pull time.
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
IMAGE_REFERENCE = re.compile(
    rf"(?P<name>(?:{_HOST}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?"
    r"(?:@(?P<digest>[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}))?",
    re.ASCII)


def pinned(value: str) -> str:
    """A valid image reference with an explicit tag or digest (`:latest` is a moving target)."""
    ref = IMAGE_REFERENCE.fullmatch(value)
    if ref is None or len(ref["name"]) > 255:
        raise ValueError("not a Docker image reference: write [registry/]name:tag or "
                         "name@sha256:<digest>, name in lowercase (e.g. redis:7.4.1-alpine)")
    if ref["digest"] is None and ref["tag"] in (None, "latest"):
        raise ValueError(f"image {value!r} is not pinned: give an explicit tag such as "
                         f"{ref['name']}:1.2.3 (not :latest)")
    return value


PinnedImage = Annotated[str, AfterValidator(pinned)]


# Seconds written into the compose file as Go durations ("{x:g}s"): outside this range `:g`
# switches to an exponent ("1e+06s"), which Compose refuses.
MIN_SECONDS, MAX_SECONDS = 0.001, 604800
Seconds = Annotated[float, Field(ge=MIN_SECONDS, le=MAX_SECONDS)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class HealthProbe(Strict):
    """How Docker and stackctl decide that a container is ready."""

    endpoint: str | None = Field(None, pattern=r"^/\S*$", description="HTTP path probed "
                                 "inside the container (e.g. /health); default per provider type")
    via: Literal["python", "curl", "ollama-cli"] | None = Field(
        None, description="tool the image has for the probe (LiteLLM/vLLM: python, "
        "Ollama: ollama-cli, llama.cpp: curl); default per provider type")
    expect: str | None = Field(None, description="substring the response must contain "
                               "(e.g. the served model name in /v1/models)")
    start_period: Seconds = Field(60, description="seconds of start-up before failures count")
    interval: Seconds = Field(5, description="seconds between Docker probes")
    timeout: Seconds = Field(5, description="seconds one probe may take")
    retries: int = Field(3, ge=1, description="failed probes before 'unhealthy'")


class Gpu(Strict):
    count: int = Field(1, ge=0, description="GPUs reserved (0: none, e.g. a CPU stub)")
    exclusive_group: str | None = Field(None, description="members of one group never run "
                                        "together; `stackctl switch` moves between them")
    weights_gib: float | None = Field(None, gt=0, le=4096, description="GiB of model weights: "
                                      "what a member of a level-1 sleep group keeps in host "
                                      "memory while it sleeps (checked by `validate`), and its "
                                      "footprint in a group with a memory_gib budget")
    kv_gib: float | None = Field(None, ge=0, le=4096, description="GiB of KV cache it claims "
                                 "beside its weights; set, weights_gib + kv_gib is its "
                                 "footprint (else a vLLM member claims --gpu-memory-utilization"
                                 " x the group's memory_gib)")
    # on-demand scheduling (gpu_groups.NAME.on_demand); the defaults change nothing
    priority: int = Field(0, ge=-1000, le=1000, description="held requests for a member of "
                          "higher priority are served first (then first come, first served)")
    pinned: bool = Field(False, description="once loaded, never evicted nor put to sleep idle")
    preload: bool = Field(False, description="loaded when the scheduler starts (those that "
                          "fit together, pinned and higher priority first)")


class Container(Strict):
    """What the provider's container needs (stackctl's extension of the provider entry)."""

    image: PinnedImage = Field(description="image with a pinned tag (not :latest)")
    command: list[str] = Field(default_factory=list, description="arguments after the entrypoint")
    port: int = Field(ge=1, le=65535, description="port the server listens on in the container")
    host_port: int | None = Field(None, ge=1, le=65535,
                                  description="published on 127.0.0.1; default: base_url's port")
    volumes: dict[str, str] = Field(default_factory=dict,
                                    description="named volume → mount path (model caches)")
    env: dict[str, str] = Field(default_factory=dict,
                                description="environment; secrets only as ${VAR} references")
    gpu: Gpu | None = None
    profile: str | None = Field(None, description="compose profile; default: provider name")
    health: HealthProbe = Field(default_factory=HealthProbe)
    stop_grace_period: Seconds = Field(10, description="seconds between SIGTERM and SIGKILL")


class ProviderModel(BaseModel):
    # size, quantization…: descriptive
    model_config = ConfigDict(extra="allow", frozen=True, allow_inf_nan=False)
    name: str


class Provider(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    type: ProviderType
    base_url: str
    status: Status = "active"
    models: list[ProviderModel] = Field(default_factory=list)
    health_endpoint: str | None = None
    env_var: str | None = Field(None, description="environment variable holding the API key")
    requires_api_key: bool = False
    container: Container | None = None
    # Descriptive keys of the original schema, accepted and not used.
    description: str | None = None
    features: list[Any] | None = None
    docs: str | None = None
    location: str | None = None
    configuration: dict[str, Any] | None = None
    service_file: str | None = None
    api_format: str | None = None
    gpu_memory_utilization: float | None = None
    max_model_len: int | None = None
    hardware_requirements: dict[str, Any] | None = None
    rate_limits: dict[str, Any] | None = None
    cost_per_1k_tokens: dict[str, Any] | None = None
    notes: str | None = None

    @field_validator("models", mode="before")
    @classmethod
    def _names_as_models(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"name": v} if isinstance(v, str) else v for v in value]
        return value

    @property
    def enabled(self) -> bool:
        return self.status == "active"

    @property
    def is_local(self) -> bool:
        host = urlparse(self.base_url).hostname or ""
        return self.type in LOCAL_TYPES and host in ("127.0.0.1", "localhost", "::1")

    @property
    def model_names(self) -> list[str]:
        return [m.name for m in self.models]

    @property
    def host_port(self) -> int | None:
        if self.container and self.container.host_port:
            return self.container.host_port
        try:
            return urlparse(self.base_url).port
        except ValueError:  # reported by the checks; templates may hold placeholders
            return None

    def url_problem(self) -> str | None:
        parsed = urlparse(self.base_url)
        try:
            _ = parsed.port  # parses lazily: raises on 'CUSTOM_PORT' or 99999
        except ValueError:  # Python's words ("Port could not be cast…") are not the user's
            port = parsed.netloc.rpartition(":")[2]
            return (f"base_url {self.base_url!r} has an invalid port {port!r}: a port is a "
                    "whole number from 1 to 65535"
                    + ("; check for a letter (O, S, l) typed for a digit"
                       if any(c.isalpha() for c in port) else ""))
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            return f"base_url {self.base_url!r} is not an http(s) URL"
        return None


class ProvidersFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    providers: dict[str, Provider]
    metadata: dict[str, Any] | None = None
    health_checks: dict[str, Any] | None = None


class ExactMatch(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    provider: str
    backend_model: str | None = Field(None, description="model name on the provider; "
                                      "default: the public name")
    aliases: list[str] = Field(default_factory=list, description="other names clients may use")
    fallback: str | None = Field(None, description="one model to try when this one fails "
                                 "(fallback_chains is the richer form)")
    priority: str | None = None
    description: str | None = None


class Pattern(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    pattern: str
    provider: str
    fallback: str | None = None
    description: str | None = None


class Capability(BaseModel):
    # thresholds etc. are descriptive
    model_config = ConfigDict(extra="allow", frozen=True, allow_inf_nan=False)
    description: str | None = None
    preferred_models: list[str] = Field(default_factory=list)
    routing_strategy: str | None = None
    provider: str | None = None
    fallback: str | None = None


class WeightedProvider(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    provider: str
    weight: float
    preferred_model: str | None = None
    condition: str | None = None


class LoadBalancing(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    providers: list[WeightedProvider]
    strategy: str = "weighted_round_robin"
    description: str | None = None
    parameters: dict[str, Any] | None = None


class FallbackChain(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    chain: list[str]
    description: str | None = None
    tier: str | None = None
    notes: str | None = None


class MappingsFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    exact_matches: dict[str, ExactMatch] = Field(default_factory=dict)
    patterns: list[Pattern] = Field(default_factory=list)
    capabilities: dict[str, Capability] = Field(default_factory=dict)
    load_balancing: dict[str, LoadBalancing] = Field(default_factory=dict)
    fallback_chains: dict[str, FallbackChain] = Field(default_factory=dict)
    routing_rules: dict[str, Any] | None = None
    special_cases: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    notes: str | None = None


class Router(Strict):
    """LiteLLM router tuning; the defaults are chosen for exclusive-GPU switching."""

    num_retries: int = Field(1, ge=0, description="retries on the same model group")
    retry_after: float = Field(0, ge=0, description="minimum seconds before a retry")
    timeout: float = Field(120, gt=0, description="seconds per request to a provider")
    allowed_fails: int = Field(1, ge=0, description="failures before a deployment cools down")
    cooldown_time: float = Field(3, ge=0, description="seconds a failed deployment is skipped; "
                                 "short, so a switched-in model gets traffic back quickly")


class Gateway(Strict):
    image: PinnedImage = "ghcr.io/berriai/litellm:v1.106.2"
    host_port: int = Field(4000, ge=1, le=65535)
    master_key_env: str = "LITELLM_MASTER_KEY"
    router: Router = Field(default_factory=Router)
    workers: int = Field(2, ge=1, le=32, description="gunicorn workers serving the gateway "
                         "(one per core you give it); more than one also makes `stackctl "
                         "reload` graceful")
    start_period: Seconds = Field(120,
                                description="seconds LiteLLM may take to start (slow imports)")


class Cache(Strict):
    enabled: bool = True
    image: PinnedImage = "redis:7.4.1-alpine"
    host_port: int | None = Field(6379, ge=1, le=65535, description="null: not published")
    namespace: str = "stackctl"
    ttl: int = Field(3600, gt=0, description="seconds a cached response lives")
    password_env: str = Field("REDIS_PASSWORD", description="NAME of the environment "
                              "variable holding Redis's password (value in .env; `stackctl "
                              "up` creates it)")


# A Prometheus/Alertmanager duration; both parse this form (model.ParseDuration).
Duration = Annotated[str, Field(pattern=r"^[1-9][0-9]{0,5}(s|m|h)$")]  # bounded: Go overflows


def seconds(duration: str) -> int:
    """Seconds in a Duration ("15s", "5m", "4h")."""
    return int(duration[:-1]) * {"s": 1, "m": 60, "h": 3600}[duration[-1]]


class MonitoringService(Strict):
    """One service of the `monitoring` profile; unset keys take that service's defaults."""

    enabled: bool = Field(True, description="false: the service is not part of the stack")
    image: PinnedImage
    host_port: int | None = Field(None, ge=1, le=65535, description="null: not published")
    via: Literal["wget", "python"] = Field(
        "wget", description="tool the image has for its healthcheck (upstream images: the "
        "busybox wget; the local Debian images: python)")


# stack.yaml key → defaults; the compose service is the key with '-' for '_'. Upstream
# images (the shipped registry); the offline example points them at the local set.
MONITORING_DEFAULTS: dict[str, dict[str, Any]] = {
    "prometheus": {"image": "prom/prometheus:v3.7.3", "host_port": 9090},
    "alertmanager": {"image": "prom/alertmanager:v0.29.0", "host_port": 9093},
    # `stackctl switch` pushes to it from the host
    "pushgateway": {"image": "prom/pushgateway:v1.11.2", "host_port": 9091},
    # the -alpine variant: the plain one is FROM scratch, with no tool for a healthcheck
    "redis_exporter": {"image": "oliver006/redis_exporter:v1.80.0-alpine"},
    "blackbox_exporter": {"image": "prom/blackbox-exporter:v0.27.0"},
    "grafana": {"image": "grafana/grafana:12.2.1", "host_port": 3000},
    "loki": {"image": "grafana/loki:3.5.7", "host_port": 3100},
    "alloy": {"image": "grafana/alloy:v1.11.3"},
}


def _component(key: str) -> Any:
    return Field(default_factory=lambda: MonitoringService(**MONITORING_DEFAULTS[key]))


class Receiver(Strict):
    """Where Alertmanager sends notifications: a webhook (Slack, Discord, ntfy, any)."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", description="receiver name")
    webhook_url_env: str = Field(description="NAME of the environment variable holding the "
                                 "webhook URL (a secret: the URL is in no generated file)")
    send_resolved: bool = Field(True, description="also notify when the alert resolves")


class Alerts(Strict):
    """Alertmanager's routing: every alert goes to every receiver."""

    receivers: list[Receiver] = Field(default_factory=list,
                                      description="none: alerts are kept, not sent")
    group_wait: Duration = Field("30s", description="wait for more alerts of a new group")
    group_interval: Duration = Field("5m", description="wait before notifying a group's changes")
    repeat_interval: Duration = Field("4h", description="resend a still-firing group after")

    @field_validator("receivers")
    @classmethod
    def _unique(cls, value: list[Receiver]) -> list[Receiver]:
        names = [r.name for r in value]
        for name in names:
            if name == "null" or names.count(name) > 1:
                raise ValueError(f"receiver name {name!r} is "
                                 + ("reserved" if name == "null" else "used twice"))
        return value


def _path(value: str, mounted: bool) -> str:
    """A folder path the OS can open; one that is mounted must also hold no `:`, the
    separator of Compose's short volume syntax (host:container[:mode])."""
    if "\0" in value:
        raise ValueError("a path cannot contain a NUL byte")
    if mounted and ":" in value:
        raise ValueError("a mounted folder's path cannot contain ':' (Compose reads "
                         "host:container:mode); rename or move the folder")
    return value


class Monitoring(Strict):
    config_dir: str = Field("../monitoring", description="relative to the config folder")
    dashboards_dir: str = Field("../grafana-dashboards", description="relative to the config folder")
    scrape_interval: Duration = Field("15s", description="Prometheus' scrape and rule "
                                      "evaluation interval")
    prometheus: MonitoringService = _component("prometheus")
    alertmanager: MonitoringService = _component("alertmanager")
    pushgateway: MonitoringService = _component("pushgateway")
    redis_exporter: MonitoringService = _component("redis_exporter")
    blackbox_exporter: MonitoringService = _component("blackbox_exporter")
    grafana: MonitoringService = _component("grafana")
    loki: MonitoringService = _component("loki")
    alloy: MonitoringService = _component("alloy")
    grafana_password_env: str = "GRAFANA_ADMIN_PASSWORD"
    alerts: Alerts = Field(default_factory=Alerts)

    @field_validator("config_dir", "dashboards_dir")
    @classmethod
    def _mountable(cls, value: str) -> str:
        return _path(value, mounted=True)

    @model_validator(mode="before")
    @classmethod
    def _service_defaults(cls, data: Any) -> Any:
        """`grafana: {enabled: false}` keeps Grafana's default image (and so on)."""
        if not isinstance(data, dict):
            return data
        return {k: {**MONITORING_DEFAULTS[k], **v}
                if k in MONITORING_DEFAULTS and isinstance(v, dict) else v
                for k, v in data.items()}


class GpuGroup(Strict):
    """How `stackctl switch` moves an exclusive GPU group between its members."""

    switch: Literal["restart", "sleep"] = Field(
        "restart", description="restart: stop the active member, start the target (a full "
        "model load); sleep: vLLM sleep mode, every member keeps its process and only one is "
        "awake (vLLM members only)")
    sleep_level: Literal[1, 2] = Field(1, description="1: a sleeping member keeps its weights "
                                       "in host memory (fast wake); 2: it drops them (reloaded "
                                       "from disk on wake, no host memory)")
    hold: float = Field(0, ge=0, le=3600, description="seconds a request for the model being switched in "
                          "waits for the switch before its fallback answers it (0: at once)")
    drain: float | None = Field(None, ge=0, le=3600, description="seconds the outgoing member may take to "
                                  "finish its requests before it sleeps; default: its "
                                  "stop_grace_period")
    memory_gib: float | None = Field(None, gt=0, le=4096, description="GiB of GPU memory "
                                     "the members share: those whose footprints fit together "
                                     "may co-reside (null: exclusive, one member at a time)")
    on_demand: bool = Field(False, description="members are loaded when requested and put "
                            "away when idle or evicted (false: only `stackctl switch` moves "
                            "the group)")
    idle_sleep: Duration | None = Field(None, description="on demand: a member idle this long "
                                        "sleeps (sleep mode) or stops (null: never)")
    min_residency: Duration | None = Field(None, description="on demand: a member serving "
                                           "requests is not evicted before it was loaded this "
                                           "long (null: it may be evicted at once)")
    max_queue: int = Field(10, ge=1, le=10000, description="on demand: requests held per "
                           "member while it loads; more are answered 429 with Retry-After")


class Deploy(Strict):
    """Where the stack runs beyond one Docker engine: a Swarm, or Kubernetes manifests."""

    target: Literal["compose", "swarm", "kubernetes"] = Field(
        "compose", description="the engine `up`, `down`, `status` and `switch` drive: one "
        "Docker engine (Compose) or a Docker Swarm; kubernetes: `switch` only, through "
        "kubectl (you apply the manifests)")
    manager: str | None = Field(None, pattern=r"^(tcp|ssh|unix)://\S+$",
                                description="Docker host of a Swarm manager (DOCKER_HOST "
                                "form, e.g. tcp://10.0.0.5:2375); null: this machine's engine")
    gateway_url: str | None = Field(None, pattern=r"^https?://\S+$",
                                    description="Kubernetes: where the gateway answers, for "
                                    "switch's routing check (null: the rollout is the gate)")
    gateway_replicas: int = Field(2, ge=1, le=32, description="gateway replicas on a Swarm "
                                  "or Kubernetes (one Compose engine runs one, with workers)")
    registry: str | None = Field(None, pattern=r"^[a-z0-9.-]+(:[0-9]{1,5})?$",
                                 description="image registry the nodes pull from (host:port); "
                                 "local images are pushed there by `up`; null: images as named")
    gpu_node_label: str = Field("stackctl.gpu", pattern=r"^[a-z0-9][a-z0-9._-]*$",
                                description="node label (value true) of the nodes GPU members "
                                "may run on (Swarm placement, Kubernetes node selector)")
    gpu_resource: str = Field("gpu", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
                              description="Swarm generic resource kind a GPU node advertises "
                              "(dockerd --node-generic-resource gpu=...)")
    namespace: str = Field("stackctl", pattern=r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$",
                           description="Kubernetes namespace of the manifests")


class StackFile(Strict):
    project: str = Field("stackctl", pattern=r"^[a-z0-9][a-z0-9_-]*$",
                         description="compose project name")
    bind_address: str = Field("127.0.0.1", description="host IP address ports are published on")
    output_dir: str = Field("../compose", description="where generated files go, "
                            "relative to the config folder")
    env_file: str = Field("../.env", description="secrets file, relative to the config folder")
    gateway: Gateway = Field(default_factory=Gateway)
    cache: Cache = Field(default_factory=Cache)
    monitoring: Monitoring = Field(default_factory=Monitoring)
    deploy: Deploy = Field(default_factory=Deploy, description="Swarm and Kubernetes")
    gpu_groups: dict[str, GpuGroup] = Field(default_factory=dict, description="exclusive "
                                            "GPU group → how it switches (default: restart)")
    default_profiles: list[str] = Field(default_factory=list,
                                        description="profiles `stackctl up` starts when none given")
    images: dict[str, PinnedImage] = Field(default_factory=dict,
                                   description="service name → image, overriding the registry")

    @field_validator("bind_address")
    @classmethod
    def _ip(cls, value: str) -> str:
        try:  # Compose publishes on an IP only; a host name fails at `up`
            ipaddress.ip_address(value)
        except ValueError:
            raise ValueError("bind_address must be an IP address, e.g. 127.0.0.1 (this "
                             "machine only) or 0.0.0.0 (every interface)") from None
        return value

    @field_validator("output_dir", "env_file")
    @classmethod
    def _no_nul(cls, value: str) -> str:
        return _path(value, mounted=False)
