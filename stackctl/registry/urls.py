"""Where the stack answers from this machine: the gateway and every monitoring UI, with the
variable holding its login (the variable's name only: its value is a secret in .env)."""

from __future__ import annotations

import ipaddress

from pydantic import BaseModel, Field

from stackctl.registry.catalog import monitoring_components
from stackctl.registry.load import Registry
from stackctl.registry.vocabulary import GATEWAY, MONITORING


class Url(BaseModel):
    service: str = Field(description="compose service name")
    what: str = Field(description="what a person finds there")
    url: str
    login: str | None = Field(None, description="how to log in: the user and the NAME of "
                              "the variable holding the secret (in .env); null: no login")
    login_env: str | None = Field(None, description="that variable's name alone")
    profile: str | None = Field(None, description="profile that starts it (null: always)")


# compose service → (what it is, path a browser opens, login form with {var})
PAGES: dict[str, tuple[str, str, str | None]] = {
    "grafana": ("dashboards", "/", "user admin, password in ${var}"),
    "prometheus": ("metrics, alerts and targets", "/alerts", None),
    "alertmanager": ("alert routing and silences", "/", None),
    "pushgateway": ("switch and bench metrics pushed from the host", "/", None),
    "loki": ("logs API (no UI: browse logs in Grafana's Explore)", "/ready", None),
}


def host_of(bind_address: str) -> str:
    """The address to open: loopback when the stack publishes on every interface."""
    ip = ipaddress.ip_address(bind_address)
    if ip.is_unspecified:
        return "127.0.0.1"
    return f"[{ip}]" if ip.version == 6 else str(ip)


def urls(reg: Registry) -> list[Url]:
    """The gateway's endpoint, then each enabled and published monitoring UI (start order)."""
    stack = reg.stack
    if stack.deploy.target == "kubernetes":
        return [Url(service=GATEWAY, what="OpenAI-compatible endpoint (/v1)",
                    url=stack.deploy.gateway_url.rstrip("/") + "/v1",
                    login=f"Bearer key in ${stack.gateway.master_key_env}",
                    login_env=stack.gateway.master_key_env)] \
            if stack.deploy.gateway_url else []
    host = host_of(stack.bind_address)
    out = [Url(service=GATEWAY, what="OpenAI-compatible endpoint (/v1)",
               url=f"http://{host}:{stack.gateway.host_port}/v1",
               login=f"Bearer key in ${stack.gateway.master_key_env}",
               login_env=stack.gateway.master_key_env)]
    for service, (_, comp) in monitoring_components(reg).items():
        if service not in PAGES or comp.host_port is None:
            continue
        what, path, login = PAGES[service]
        var = stack.monitoring.grafana_password_env
        out.append(Url(service=service, what=what, url=f"http://{host}:{comp.host_port}{path}",
                       login=login.replace("${var}", f"${var}") if login else None,
                       login_env=var if login else None,
                       profile=MONITORING))
    return out
