"""`up` and `down`: start profiles health-gated, stop them cleanly."""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel, Field

from stackctl.docker.adapter import Docker, DockerError
from stackctl.errors import PlanError
from stackctl.gateway.client import Gateway
from stackctl.health.gate import Gate, GateFailure, wait_healthy
from stackctl.health.probes import host_probe
from stackctl.images.specs import TAG_PREFIX
from stackctl.ports.check import ensure_ports_free
from stackctl.registry.catalog import profiles as all_profiles
from stackctl.registry.catalog import sleep_members
from stackctl.registry.load import Registry
from stackctl.registry.vocabulary import GATEWAY
from stackctl.store.envfile import compose_value
from stackctl.store.lock import stack_lock
from stackctl.switching.members import members_of
from stackctl.switching.routing import routing_state, write_routing
from stackctl.targets.compose_groups import inactive_members, sleep_states
from stackctl.targets.compose_plan import UpPlan, plan_up, services_of


class UpOptions(BaseModel):
    profiles: list[str] = Field(default_factory=list,
                                description="profiles to start; empty: stack.yaml default_profiles")
    timeout: float = Field(300, gt=0, description="seconds every service may take to be healthy")
    lock_wait: float | None = Field(None, description="seconds to wait for a concurrent "
                                    "up/switch; None: fail at once")
    pull: bool = Field(False, description="pull images that are missing locally (never the "
                       "local image set, which `stackctl images build` makes)")


class UpResult(BaseModel):
    plan: UpPlan
    ready_after: dict[str, float]
    gateway_url: str


class GatewayCheckFailed(Exception):
    pass


class ImagesMissing(PlanError):
    """An image a service needs is not on this machine; nothing was started."""


def missing_images(images: dict[str, str], present: Callable[[str], bool]) -> dict[str, str]:
    """image → the services that need it, for every image that is not present (pure)."""
    out: dict[str, list[str]] = {}
    for service, image in images.items():
        if not present(image):
            out.setdefault(image, []).append(service)
    return {image: ", ".join(services) for image, services in out.items()}


def how_to_get(image: str) -> str:
    if image.startswith(TAG_PREFIX):
        return "build it with `stackctl images build` (offline, from Debian and PyPI)"
    return (f"pull it where a registry is reachable (`docker pull {image}`, or `stackctl up "
            "--pull`), or point stack.yaml `images:` at an image you have")


def ensure_images(docker: Docker, plan: UpPlan, pull: bool,
                  say: Callable[[str], None] = lambda s: None) -> None:
    """Every image the plan's services need is present (pulled first with `pull`), or
    ImagesMissing names each missing one, the services that need it and how to get it."""
    images = docker.service_images(plan.profiles, plan.services)
    missing = missing_images(images, docker.image_exists)
    if pull:
        for image in [i for i in missing if not i.startswith(TAG_PREFIX)]:
            say(f"pulling {image}")
            try:
                docker.pull(image)
                del missing[image]
            except DockerError as exc:
                say(f"could not pull {image}: {exc}")
    if missing:
        raise ImagesMissing(f"{len(missing)} image(s) missing, nothing was started:\n" + "\n".join(
            f"  {image} (needed by {services}): {how_to_get(image)}"
            for image, services in missing.items()))


def gateway_for(reg: Registry) -> Gateway:
    key = compose_value(reg.env_file, reg.stack.gateway.master_key_env)
    return Gateway(f"http://127.0.0.1:{reg.stack.gateway.host_port}", key)


def bring_up(reg: Registry, docker: Docker, opts: UpOptions,
             on_change: Callable[[str, str, float], None] = lambda *a: None,
             probe: Callable[[str], bool] | None = None,
             say: Callable[[str], None] = lambda s: None,
             gateway_config_changed: bool = False,
             configs_changed: tuple[str, ...] = ()) -> UpResult:
    """Plan, start and health-gate under the stack lock, then check the gateway's models.

    `probe(service)` sees readiness from the host (default: the services' healthchecks sent
    to their published ports). `gateway_config_changed`: the gateway's config files were
    just rewritten; a gateway that was already running gets new workers that read them (as
    `reload` does), one that starts now reads them anyway. `configs_changed`: the monitoring
    services whose generated config was just rewritten (prometheus, alertmanager): a running
    one reads it again (neither watches its files)."""
    with stack_lock(reg.stack.project, "up", opts.lock_wait):
        members = members_of(reg)
        observed = docker.containers()
        sleepers = sleep_states(members, [s for s in observed if s.service in sleep_members(reg)])
        plan = plan_up(reg, opts.profiles, observed, sleepers)
        ensure_images(docker, plan, opts.pull, say)
        ensure_ports_free(reg, docker, plan.services)
        running = next((s.name for s in observed if s.service == GATEWAY and s.running), None)
        stale = {s.service: s.name for s in observed if s.running and s.service in
                 configs_changed and s.service in plan.services}
        if "alertmanager" in stale:  # its start hands the webhook relay its URLs: rerun
            docker.stop(stale["alertmanager"], 10)  # `up` starts it again, health-gated
        docker.up(plan.profiles, plan.services)
        gate: Gate = wait_healthy(plan.services, docker.containers, opts.timeout,
                                  logs=docker.logs, on_change=on_change,
                                  probe=host_probe(reg) if probe is None else probe)
        if "prometheus" in stale:  # rereads its config and rules (as POST /-/reload does)
            docker.signal(stale["prometheus"], "SIGHUP")
        if gateway_config_changed and running:
            from stackctl.gateway.reload import replace_workers

            try:
                replace_workers(docker, running, reg.stack.gateway.workers, plan.expected_models,
                                gateway_for(reg).models, min(opts.timeout, 120), say)
            except (RuntimeError, TimeoutError) as exc:
                raise GatewayCheckFailed(f"the gateway's new config does not serve ({exc}); "
                                         "`stackctl reload --restore` puts a backup back") \
                    from None
        # the gateway sends requests for the members that are not active to their fallbacks
        inactive = inactive_members(reg, members, docker.containers(),
                                    lambda obs: sleep_states(members, obs))
        try:
            write_routing(reg, routing_state(reg, inactive))
        except OSError as exc:
            say(f"could not update the gateway's routing state: {exc}")
    gw = gateway_for(reg)
    missing = gw.wait_models(plan.expected_models, timeout=min(opts.timeout, 30))
    if missing:
        raise GatewayCheckFailed("the gateway does not list " + ", ".join(missing)
                                 + " (is compose/litellm/config.yaml current? see `docker logs`"
                                 f" of the {reg.stack.project} gateway)")
    return UpResult(plan=plan, ready_after=gate.ready_after, gateway_url=gw.url)


def bring_down(reg: Registry, docker: Docker, profiles: list[str], volumes: bool) -> list[str]:
    """Stop and remove; with profiles only their provider services, else the whole project."""
    if profiles:
        core = set(services_of(reg, []))
        services = [s for s in services_of(reg, profiles) if s not in core]
        docker.remove_services(services, volumes=volumes)
        return services
    docker.down(all_profiles(reg), volumes=volumes)
    return [s.service for s in docker.containers()]


__all__ = ["UpOptions", "UpResult", "bring_up", "bring_down", "GateFailure", "GatewayCheckFailed",
           "ImagesMissing"]
