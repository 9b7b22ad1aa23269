"""Issue 10: `stackctl ports` and the port check `up` runs first.

The core is tested as data (needs + listeners + publications → statuses); the CLI and
`bring_up` with the fake Docker adapter and a fake host (`host_listeners` replaced); the two
host observations (psutil, bind probe) on real sockets on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import socket

import pytest

from stackctl.cli import cli
from stackctl.ports.check import (
    Listener,
    Need,
    PortConflict,
    Published,
    bind_probe,
    check_ports,
    collide,
    ensure_ports_free,
    holders_of,
    host_listeners,
    needed_ports,
    port_statuses,
    registry_duplicates,
)
from stackctl.registry.load import load_registry
from tests.fakes.docker import FakeDocker
from tests.paths import REPO

PROJECT = "stackctl-offline"


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("STACKCTL_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("STACKCTL_CONFIG_DIR", raising=False)


@pytest.fixture
def offline():
    return load_registry(REPO / "examples/offline/config")


class Host:
    """A fake host: its listening sockets, as `host_listeners` would report them."""

    def __init__(self, *listeners: Listener):
        self.listeners = list(listeners)
        self.asked: list[list[Need]] = []

    def __call__(self, needs: list[Need] | None = None) -> list[Listener]:
        self.asked.append(list(needs or []))
        return self.listeners


def by_service(statuses):
    return {st.service: st for st in statuses}


# -- what the registry needs -----------------------------------------------------------------

def test_every_profile_needs_gateway_cache_providers_and_monitoring_ports(offline):
    needs = needed_ports(offline)
    assert [(n.service, n.port, n.profile) for n in needs] == [
        ("litellm", 4000, None), ("redis", 6379, None), ("llama_cpp", 8080, "llamacpp"),
        ("ollama", 11434, "ollama"), ("vllm-qwen", 8001, "vllm-qwen"),
        ("vllm-dolphin", 8002, "vllm-dolphin"), ("prometheus", 9090, "monitoring"),
        ("alertmanager", 9093, "monitoring"), ("pushgateway", 9091, "monitoring")]
    # the exporters are unpublished; Grafana, Loki and Alloy are off in the offline example
    keys = {n.service: (n.file, n.key) for n in needs}
    assert keys["litellm"] == ("stack.yaml", "gateway.host_port")
    assert keys["redis"] == ("stack.yaml", "cache.host_port")
    assert keys["llama_cpp"] == ("providers.yaml", "providers.llama_cpp.base_url")
    assert keys["alertmanager"] == ("stack.yaml", "monitoring.alertmanager.host_port")
    assert {n.address for n in needs} == {"127.0.0.1"}


def test_profiles_narrow_the_needs_but_gateway_and_cache_always_count(offline):
    needs = needed_ports(offline, ["llamacpp"])
    assert [n.service for n in needs] == ["litellm", "redis", "llama_cpp"]


def test_bind_address_and_container_host_port_come_from_the_registry(offline):
    stack = offline.stack.model_copy(update={"bind_address": "0.0.0.0"})
    prov = offline.providers.providers["ollama"]
    prov = prov.model_copy(update={"container": prov.container.model_copy(
        update={"host_port": 21434})})
    providers = offline.providers.model_copy(
        update={"providers": {**offline.providers.providers, "ollama": prov}})
    reg = type(offline)(offline.config_dir, providers, offline.mappings, stack, offline.sources)
    ollama = next(n for n in needed_ports(reg) if n.service == "ollama")
    assert (ollama.port, ollama.address, ollama.key) == (
        21434, "0.0.0.0", "providers.ollama.container.host_port")


# -- addresses ---------------------------------------------------------------------------------

@pytest.mark.parametrize("a, b, expected", [
    ("127.0.0.1", "127.0.0.1", True),
    ("127.0.0.1", "0.0.0.0", True),      # a wildcard holds the port on every address
    ("0.0.0.0", "192.168.1.5", True),
    ("127.0.0.1", "::", True),           # `::` is dual-stack on Linux by default
    ("127.0.0.1", "::ffff:127.0.0.1", True),
    ("127.0.0.1", "127.0.0.2", False),
    ("127.0.0.1", "::1", False),
    ("0.0.0.0", "::1", False),           # IPv4 wildcard, IPv6 loopback: both bind
    ("[::1]", "::1", True),
    ("", "127.0.0.1", True),             # Docker's empty HostIp is 0.0.0.0
])
def test_which_addresses_collide(a, b, expected):
    assert collide(a, b) is expected
    assert collide(b, a) is expected


# -- the pure core: needs + listeners + publications → statuses ----------------------------------

NEEDS = [Need("litellm", None, 4000, "127.0.0.1", "stack.yaml", "gateway.host_port"),
         Need("redis", None, 6379, "127.0.0.1", "stack.yaml", "cache.host_port"),
         Need("llama_cpp", "llamacpp", 8080, "127.0.0.1", "providers.yaml",
              "providers.llama_cpp.base_url"),
         Need("ollama", "ollama", 11434, "127.0.0.1", "providers.yaml",
              "providers.ollama.base_url"),
         Need("grafana", "monitoring", 3000, "127.0.0.1", "stack.yaml",
              "monitoring.grafana.host_port")]


def test_free_ours_and_foreign_with_pid_process_and_container():
    listeners = [Listener("127.0.0.1", 4000, 4242, "python3"),          # a foreign server
                 Listener("127.0.0.1", 6379, 100, "docker-proxy"),      # our redis
                 Listener("127.0.0.1", 8080, 101, "docker-proxy"),      # another project
                 Listener("0.0.0.0", 3000, None, None),                 # invisible, wildcard
                 Listener("127.0.0.2", 11434, 55, "ollama")]            # other address: no
    published = [Published(f"{PROJECT}-redis-1", PROJECT, "redis", "127.0.0.1", 6379),
                 Published("other-llama_cpp-1", "other", "llama_cpp", "127.0.0.1", 8080)]
    st = by_service(port_statuses(NEEDS, holders_of(listeners, published, PROJECT)))
    assert (st["litellm"].state, st["litellm"].pid, st["litellm"].process) == (
        "foreign", 4242, "python3")
    assert (st["redis"].state, st["redis"].container, st["redis"].pid) == (
        "ours", f"{PROJECT}-redis-1", 100)
    assert (st["llama_cpp"].state, st["llama_cpp"].container) == ("foreign", "other-llama_cpp-1")
    assert st["llama_cpp"].holders[0].project == "other"
    assert (st["grafana"].state, st["grafana"].pid, st["grafana"].holders[0].address) == (
        "foreign", None, "0.0.0.0")
    assert (st["ollama"].state, st["ollama"].holders) == ("free", [])


def test_a_publication_without_a_listener_still_holds_its_port():
    """No userland proxy (iptables only): Docker's own word is all there is."""
    published = [Published(f"{PROJECT}-litellm-1", PROJECT, "litellm", "127.0.0.1", 4000),
                 Published("gwt", None, None, "0.0.0.0", 6379)]
    st = by_service(port_statuses(NEEDS, holders_of([], published, PROJECT)))
    assert (st["litellm"].state, st["litellm"].pid) == ("ours", None)
    assert (st["redis"].state, st["redis"].container) == ("foreign", "gwt")


def test_a_foreign_holder_beside_our_own_makes_the_port_foreign():
    listeners = [Listener("127.0.0.1", 4000, 100, "docker-proxy"),
                 Listener("::", 4000, 4242, "nc")]
    published = [Published(f"{PROJECT}-litellm-1", PROJECT, "litellm", "127.0.0.1", 4000)]
    st = by_service(port_statuses(NEEDS, holders_of(listeners, published, PROJECT)))["litellm"]
    assert st.state == "foreign" and (st.pid, st.process) == (4242, "nc")
    assert [h.ours for h in st.holders] == [True, False]


# -- ensure_ports_free (what `up` runs) -----------------------------------------------------------

def test_conflict_names_port_address_pid_process_and_the_key_to_change(offline):
    docker = FakeDocker(project=PROJECT)
    host = Host(Listener("127.0.0.1", 4000, 4242, "python3"),
                Listener("0.0.0.0", 8080, None, None))
    with pytest.raises(PortConflict) as exc:
        ensure_ports_free(offline, docker, ["litellm", "redis", "llama_cpp"], listeners=host)
    text = str(exc.value)
    assert "2 port(s) the stack needs are taken, nothing was started" in text
    assert ("port 4000 on 127.0.0.1 (litellm) is held by python3 pid 4242: stop it (kill 4242), "
            "or give litellm another port: gateway.host_port in stack.yaml") in text
    assert ("port 8080 on 127.0.0.1 (llama_cpp) is held by a process this user cannot see on "
            "0.0.0.0: find it (`sudo ss -ltnp 'sport = :8080'`) and stop it, or give llama_cpp "
            "another port: the port of providers.llama_cpp.base_url in providers.yaml (or set "
            "providers.llama_cpp.container.host_port)") in text
    assert "address already in use" not in text
    assert [st.port for st in exc.value.statuses] == [4000, 8080]


def test_a_foreign_container_is_named_with_its_project(offline):
    docker = FakeDocker(project=PROJECT)
    docker.publish("litellm", 4000, project="stackctl-other")
    with pytest.raises(PortConflict, match=r"held by container stackctl-other-litellm-1, compose "
                       r"project stackctl-other: stop it \(`docker stop stackctl-other-litellm-1`\)"):
        ensure_ports_free(offline, docker, ["litellm"], listeners=Host())


def test_ports_held_by_our_own_running_containers_are_fine(offline):
    docker = FakeDocker(project=PROJECT, running={"litellm": {}, "redis": {}})
    docker.publish("litellm", 4000)
    docker.publish("redis", 6379)
    host = Host(Listener("127.0.0.1", 4000, 100, "docker-proxy"),
                Listener("127.0.0.1", 6379, 101, "docker-proxy"))
    ensure_ports_free(offline, docker, ["litellm", "redis", "llama_cpp"], listeners=host)


def test_only_the_services_being_started_count(offline):
    """A foreign process on vllm-dolphin's port does not stop `up` of other profiles."""
    host = Host(Listener("127.0.0.1", 8002, 4242, "python3"))
    ensure_ports_free(offline, FakeDocker(project=PROJECT), ["litellm", "vllm-qwen"],
                      listeners=host)
    with pytest.raises(PortConflict, match="port 8002"):
        ensure_ports_free(offline, FakeDocker(project=PROJECT), ["litellm", "vllm-dolphin"],
                          listeners=host)


def test_our_container_of_another_service_left_running_blocks(offline):
    """After a port moved to another service in the registry, the old container still holds
    it; `up` of the new owner alone would meet Docker's 'address already in use'."""
    docker = FakeDocker(project=PROJECT, running={"ollama": {}})
    docker.publish("ollama", 8080)  # ollama's container still publishes llama_cpp's port
    with pytest.raises(PortConflict, match=f"held by container {PROJECT}-ollama-1"):
        ensure_ports_free(offline, docker, ["litellm", "llama_cpp"], listeners=Host())
    # starting ollama too recreates it on its new port: Compose sorts that out
    ensure_ports_free(offline, docker, ["litellm", "llama_cpp", "ollama"], listeners=Host())


def test_up_checks_ports_after_images_and_starts_nothing_on_a_conflict(offline, monkeypatch):
    from stackctl.targets.compose_up import UpOptions, bring_up

    host = Host(Listener("127.0.0.1", 6379, 4242, "redis-server"))
    monkeypatch.setattr("stackctl.ports.check.host_listeners", host)
    docker = FakeDocker(project=PROJECT)
    with pytest.raises(PortConflict, match="port 6379 on 127.0.0.1 .redis. is held by "
                       "redis-server pid 4242"):
        bring_up(offline, docker, UpOptions())
    assert docker.calls == [] and docker.state == {}  # nothing started
    assert host.asked, "up never looked at the host's sockets"


def test_check_ports_for_doctor_every_profile_by_default(offline):
    statuses = check_ports(offline, FakeDocker(project=PROJECT), listeners=Host())
    assert len(statuses) == 9 and {st.state for st in statuses} == {"free"}
    assert [st.service for st in check_ports(offline, FakeDocker(project=PROJECT), ["ollama"],
                                             listeners=Host())] == ["litellm", "redis", "ollama"]


# -- registry duplicates: validate's own check ----------------------------------------------------

def test_duplicates_are_validates_problems_with_file_line_and_key(registry_dir, yaml_edit):
    config = registry_dir("offline")
    yaml_edit(config / "stack.yaml", lambda d: d["cache"].__setitem__("host_port", 4000))
    from stackctl.registry.checks import check

    reg = load_registry(config)
    problems = registry_duplicates(reg)
    assert [p.render() for p in problems] == [
        "examples/offline/config/stack.yaml:7:3: error: cache.host_port: host port 4000 is "
        "already used by the gateway (give each service its own host port)"]
    assert [p for p in check(reg) if p.severity == "error"] == problems  # validate's own


# -- observing the host (real sockets on 127.0.0.1) ----------------------------------------------

@pytest.fixture
def listening():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    yield sock.getsockname()[1]
    sock.close()


def test_psutil_sees_a_listener_with_its_pid_and_process(listening):
    mine = [lst for lst in host_listeners() if lst.port == listening]
    assert [(lst.address, lst.pid) for lst in mine] == [("127.0.0.1", os.getpid())]
    assert mine[0].process  # e.g. python3


def test_bind_probe_sees_a_listener_without_a_pid(listening):
    need = Need("litellm", None, listening, "127.0.0.1", "stack.yaml", "gateway.host_port")
    assert bind_probe([need]) == [Listener("127.0.0.1", listening)]


def test_bind_probe_finds_a_free_port_free():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    assert bind_probe([Need("litellm", None, port, "127.0.0.1", "stack.yaml", "k")]) == []


def test_without_psutil_the_bind_probe_answers(listening, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_psutil(name, *a, **k):
        if name == "psutil":
            raise ImportError(name)
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_psutil)
    need = Need("litellm", None, listening, "127.0.0.1", "stack.yaml", "gateway.host_port")
    assert host_listeners([need]) == [Listener("127.0.0.1", listening)]


# -- the command ----------------------------------------------------------------------------------

@pytest.fixture
def fake(monkeypatch) -> FakeDocker:
    docker = FakeDocker(project=PROJECT, running={"litellm": {}, "redis": {}})
    docker.publish("litellm", 4000)
    docker.publish("redis", 6379)
    monkeypatch.setattr("stackctl.docker.adapter.Docker", lambda *a, **k: docker)
    return docker


@pytest.fixture
def host(monkeypatch) -> Host:
    h = Host(Listener("127.0.0.1", 4000, 100, "docker-proxy"),
             Listener("127.0.0.1", 6379, 101, "docker-proxy"))
    monkeypatch.setattr("stackctl.ports.check.host_listeners", h)
    return h


def run(runner, *args):
    return runner.invoke(cli, list(args), catch_exceptions=False)


def test_ports_text_ours_and_free_exit_0(runner, registry_dir, fake, host):
    registry_dir("offline")  # no generated files: ports are worth checking before `generate`
    r = run(runner, "ports", "-C", "examples/offline/config")
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[0] == f"{PROJECT} publishes on 127.0.0.1 (stack.bind_address)"
    assert lines[1].split() == ["port", "service", "profile", "state", "held", "by"]
    assert lines[2].split() == ["4000", "litellm", "-", "ours", f"{PROJECT}-litellm-1"]
    assert lines[4].split() == ["8080", "llama_cpp", "llamacpp", "free", "-"]
    assert lines[-1] == "9 port(s): 7 free, 2 ours, 0 foreign"
    assert "conflict" not in r.output


def test_ports_foreign_process_exit_1_names_pid_and_key(runner, registry_dir, fake, host):
    host.listeners.append(Listener("0.0.0.0", 8001, 4242, "python3"))
    r = run(runner, "ports", "-C", str(registry_dir("offline")))
    assert r.exit_code == 1, r.output
    assert ("conflict: port 8001 on 127.0.0.1 (vllm-qwen) is held by python3 pid 4242 on "
            "0.0.0.0: stop it (kill 4242), or give vllm-qwen another port: the port of "
            "providers.vllm-qwen.base_url in providers.yaml") in r.output
    assert r.output.splitlines()[-1] == "9 port(s): 6 free, 2 ours, 1 foreign"


def test_ports_json_is_the_only_stdout_and_carries_holders(runner, registry_dir, fake, host):
    host.listeners.append(Listener("127.0.0.1", 9093, 4242, "alertmanager"))
    r = runner.invoke(cli, ["ports", "-C", str(registry_dir("offline")), "--json"],
                      catch_exceptions=False)
    assert r.exit_code == 1, r.output
    doc = json.loads(r.stdout)
    assert (doc["ok"], doc["project"], doc["bind_address"]) == (False, PROJECT, "127.0.0.1")
    ports = {p["service"]: p for p in doc["ports"]}
    assert ports["alertmanager"] == {
        "port": 9093, "address": "127.0.0.1", "service": "alertmanager", "profile": "monitoring",
        "file": "stack.yaml", "key": "monitoring.alertmanager.host_port", "state": "foreign",
        "pid": 4242, "process": "alertmanager", "container": None,
        "holders": [{"address": "127.0.0.1", "pid": 4242, "process": "alertmanager",
                     "container": None, "project": None, "service": None, "ours": False}]}
    assert ports["litellm"]["state"] == "ours" and ports["litellm"]["holders"][0]["ours"]
    assert len(doc["conflicts"]) == 1 and doc["duplicates"] == []


def test_ports_profile_narrows_and_unknown_profile_gets_a_hint(runner, registry_dir, fake, host):
    config = str(registry_dir("offline"))
    r = run(runner, "ports", "-C", config, "-p", "ollama", "--json")
    assert r.exit_code == 0, r.output
    assert [p["service"] for p in json.loads(r.stdout)["ports"]] == ["litellm", "redis", "ollama"]
    r = run(runner, "ports", "-C", config, "-p", "olama")
    assert r.exit_code == 1, r.output
    assert "unknown profile 'olama'; did you mean 'ollama'" in r.output


def test_ports_reports_registry_duplicates_exit_1(runner, registry_dir, yaml_edit, fake, host):
    config = registry_dir("offline")
    yaml_edit(config / "stack.yaml", lambda d: d["cache"].__setitem__("host_port", 4000))
    r = run(runner, "ports", "-C", str(config))
    assert r.exit_code == 1, r.output
    assert ("registry: examples/offline/config/stack.yaml:7:3: error: cache.host_port: host "
            "port 4000 is already used by the gateway") in r.output
    assert r.output.splitlines()[-1].endswith("; 1 registry duplicate(s)")
    r = run(runner, "ports", "-C", str(config), "--json")
    assert r.exit_code == 1 and len(json.loads(r.stdout)["duplicates"]) == 1


def test_ports_other_registry_errors_still_stop_it(runner, registry_dir, yaml_edit, fake, host):
    config = registry_dir("offline")
    yaml_edit(config / "stack.yaml", lambda d: d.__setitem__("default_profiles", ["nope"]))
    r = run(runner, "ports", "-C", str(config))
    assert r.exit_code == 1, r.output
    assert "unknown profile 'nope'" in r.output and "run `stackctl validate`" in r.output
    assert not host.asked


def test_ports_without_an_engine_exits_4(runner, registry_dir, fake, host, monkeypatch):
    from stackctl.docker.adapter import EngineUnreachable

    def unreachable():
        raise EngineUnreachable("no Docker engine answers (Cannot connect to the Docker daemon)")

    monkeypatch.setattr(fake, "published_ports", unreachable)
    r = run(runner, "ports", "-C", str(registry_dir("offline")), "--json")
    assert r.exit_code == 4, r.output
    assert json.loads(r.stdout)["exit_code"] == 4


def test_ports_help_lists_its_exit_codes(runner):
    r = run(runner, "ports", "--help")
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.split())
    for row in ("0 no port is held by anything but this stack", "1 a port is held by another",
                "2 usage error (click)", "4 no Docker engine answers", "130 interrupted"):
        assert row in text
