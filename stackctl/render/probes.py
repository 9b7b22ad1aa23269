"""Healthcheck commands that work inside each real image (several have no curl)."""

from __future__ import annotations

from stackctl.registry.models import HealthProbe, Provider

DEFAULT_ENDPOINT = {"vllm": "/v1/models", "llama_cpp": "/health", "ollama": "/api/version"}
DEFAULT_VIA = {"vllm": "python", "llama_cpp": "curl", "ollama": "ollama-cli"}


def python_http(url: str, timeout: float, expect: str | None = None) -> list[str]:
    """`python3 -c` probe: non-zero on connection error, HTTP error or missing `expect`."""
    code = f"import urllib.request as u; b=u.urlopen({url!r},timeout={timeout:g}).read()"
    if expect:
        code = f"import sys; {code}; sys.exit(0 if {expect!r}.encode() in b else 1)"
    return ["CMD", "python3", "-c", code]


def _check(prov: Provider, expect_default: str | None) -> tuple[str, str | None]:
    """(endpoint, expected substring) of a provider's readiness check."""
    assert prov.container is not None
    health = prov.container.health
    endpoint = health.endpoint or DEFAULT_ENDPOINT.get(prov.type, "/health")
    # a model list must name the served model; other endpoints only have to answer 200
    if endpoint not in ("/v1/models", "/api/tags"):
        expect_default = None
    return endpoint, health.expect or expect_default


def provider_probe(prov: Provider, expect_default: str | None) -> tuple[list[str], HealthProbe]:
    """The healthcheck command, run inside the container with a tool its image has."""
    assert prov.container is not None
    health = prov.container.health
    endpoint, expect = _check(prov, expect_default)
    via = health.via or DEFAULT_VIA.get(prov.type, "python")
    url = f"http://127.0.0.1:{prov.container.port}{endpoint}"
    if via == "ollama-cli":
        return ["CMD", "ollama", "list"], health
    if via == "curl":
        return ["CMD", "curl", "-fsS", "-o", "/dev/null", url], health
    return python_http(url, health.timeout, expect), health


def compose_healthcheck(test: list[str], interval: float, timeout: float, retries: int,
                        start_period: float) -> dict:
    return {
        "test": test,
        "interval": f"{interval:g}s",
        "timeout": f"{timeout:g}s",
        "retries": retries,
        "start_period": f"{start_period:g}s",
        # no start_interval: it needs Docker Engine 25+, and Debian 12 ships 20.10
    }


def host_check(prov: Provider, expect_default: str | None) -> tuple[str, str | None]:
    """(URL on 127.0.0.1, expected substring): the container's own probe, seen from the host."""
    endpoint, expect = _check(prov, expect_default)
    return f"http://127.0.0.1:{prov.host_port}{endpoint}", expect
