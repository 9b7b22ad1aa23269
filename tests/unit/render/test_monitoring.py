"""The monitoring profile rendered from the registry: Prometheus' targets and labels,
Alertmanager's routing and receivers, and the services that run them.

The generated prometheus.yml goes through `promtool check config`; alertmanager.yml through
`amtool check-config` from the local Alertmanager image when it is built (amtool is not on
the host), and through the structural checks below in any case. The webhook URL is a secret:
no generated file holds it; Alertmanager 0.26+ reads it from its secret file, and 0.25's
start step (the relay, then Alertmanager) is run here with the host's python3.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from stackctl.cli import cli
from stackctl.images.specs import ALERTMANAGER_TAG
from stackctl.registry.catalog import reads_url_file
from stackctl.registry.load import load_registry
from stackctl.registry.vocabulary import RELAY_FILE
from stackctl.render.alertmanager import RELAY_PORT, start_script
from stackctl.render.compose import ALERTMANAGER_DIR, PROMETHEUS_RULES
from stackctl.render.prometheus import KEY_FILE
from tests.paths import REPO
from tests.tools import require_tool

RULES = REPO / "monitoring" / "prometheus" / "alerts.yml"
WEBHOOK = "https://hooks.example.com/services/T0/B0/should-not-appear?a=1&b=2"
RECEIVERS = [{"name": "ops", "webhook_url_env": "ALERT_WEBHOOK_URL"},
             {"name": "chat", "webhook_url_env": "CHAT_WEBHOOK_URL", "send_resolved": False}]


def load_yaml(text: str) -> Any:
    return YAML(typ="safe", pure=True).load(text)


def run(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False, **kw)


@pytest.fixture
def make(runner, registry_dir, yaml_edit, monkeypatch):
    """Generate a registry copy after `edits` ({file: ruamel edit}); its output as data."""
    monkeypatch.setenv("ALERT_WEBHOOK_URL", WEBHOOK)
    monkeypatch.setenv("CHAT_WEBHOOK_URL", WEBHOOK + "-chat")

    def generate(name: str = "offline", **edits: Any) -> dict[str, Any]:
        cfg = registry_dir(name)
        for file, edit in edits.items():
            yaml_edit(cfg / f"{file}.yaml", edit)
        r = runner.invoke(cli, ["generate", "-C", str(cfg)], catch_exceptions=False)
        assert r.exit_code == 0, r.output
        out = cfg.parent / "compose"
        texts = {p.relative_to(out).as_posix(): p.read_text(encoding="utf-8")
                 for p in sorted(out.rglob("*")) if p.is_file()}
        return {"out": out, "texts": texts,
                "compose": load_yaml(texts["compose.yaml"]),
                "prometheus": load_yaml(texts.get("prometheus/prometheus.yml", "{}")),
                "alertmanager": load_yaml(texts.get("alertmanager/alertmanager.yml", "{}"))}

    return generate


def with_receivers(data: Any) -> None:
    data["monitoring"].setdefault("alerts", {})["receivers"] = [dict(r) for r in RECEIVERS]


def jobs(prom: dict) -> dict[str, dict]:
    return {j["job_name"]: j for j in prom["scrape_configs"]}


def targets(job: dict) -> dict[str, dict]:
    """target → labels of a job's static configs."""
    return {t: sc.get("labels", {}) for sc in job["static_configs"] for t in sc["targets"]}


# -- Prometheus: targets and labels ----------------------------------------------------------

def test_offline_jobs_and_provider_labels(make):
    prom = make("offline")["prometheus"]
    by_name = jobs(prom)
    assert list(by_name) == ["prometheus", "litellm", "provider", "provider-probe", "redis",
                             "alertmanager", "pushgateway", "blackbox"]
    assert targets(by_name["provider"]) == {
        "llama_cpp:8080": {"provider": "llama_cpp", "provider_type": "llama_cpp",
                           "gpu_group": ""},
        "vllm-qwen:8000": {"provider": "vllm-qwen", "provider_type": "vllm", "gpu_group": "gpu0"},
        "vllm-dolphin:8000": {"provider": "vllm-dolphin", "provider_type": "vllm",
                              "gpu_group": "gpu0"}}
    assert by_name["provider"]["metrics_path"] == "/metrics"
    for name, target in [("prometheus", "prometheus:9090"), ("redis", "redis-exporter:9121"),
                         ("alertmanager", "alertmanager:9093"),
                         ("pushgateway", "pushgateway:9091"),
                         ("blackbox", "blackbox-exporter:9115")]:
        assert list(targets(by_name[name])) == [target], name
    assert by_name["pushgateway"]["honor_labels"] is True  # job="stackctl_switch" stays
    assert prom["alerting"] == {"alertmanagers": [
        {"static_configs": [{"targets": ["alertmanager:9093"]}]}]}
    assert prom["rule_files"] == [PROMETHEUS_RULES]


def test_ollama_has_no_metrics_so_the_blackbox_probes_its_health_endpoint(make):
    probe = jobs(make("offline")["prometheus"])["provider-probe"]
    assert targets(probe) == {"http://ollama:11434/api/version": {
        "provider": "ollama", "provider_type": "ollama", "gpu_group": ""}}
    assert probe["metrics_path"] == "/probe" and probe["params"] == {"module": ["http_2xx"]}
    # the URL becomes ?target= and the instance label; the scrape goes to the exporter
    assert probe["relabel_configs"] == [
        {"source_labels": ["__address__"], "target_label": "__param_target"},
        {"source_labels": ["__param_target"], "target_label": "instance"},
        {"target_label": "__address__", "replacement": "blackbox-exporter:9115"}]


def test_shipped_registry_scrapes_its_local_providers_only(make):
    prom = make("shipped")["prometheus"]
    by_name = jobs(prom)
    assert set(targets(by_name["provider"])) == {
        "llama_cpp_native:8080", "vllm-qwen:8000", "vllm-dolphin:8000"}
    assert set(targets(by_name["provider-probe"])) == {"http://ollama:11434/api/version"}
    text = json.dumps(prom)
    for cloud in ("ollama_cloud", "openai", "anthropic", "ollama.com", "api.openai.com"):
        assert cloud not in text  # disabled and not ours to scrape


def test_llama_cpp_without_metrics_is_probed_not_scraped(make):
    def drop(d: Any) -> None:
        d["providers"]["llama_cpp"]["container"]["command"].remove("--metrics")

    by_name = jobs(make("offline", providers=drop)["prometheus"])
    assert "llama_cpp:8080" not in targets(by_name["provider"])
    assert targets(by_name["provider-probe"])["http://llama_cpp:8080/health"] == {
        "provider": "llama_cpp", "provider_type": "llama_cpp", "gpu_group": ""}


def test_gateway_is_scraped_with_the_key_from_the_secret(make):
    gen = make("offline")
    litellm = jobs(gen["prometheus"])["litellm"]
    assert litellm["metrics_path"] == "/metrics/"
    assert litellm["authorization"] == {"type": "Bearer", "credentials_file": KEY_FILE}
    assert "litellm_master_key" in gen["compose"]["services"]["prometheus"]["secrets"]
    assert gen["compose"]["secrets"]["litellm_master_key"] == {"environment": "LITELLM_MASTER_KEY"}


@pytest.mark.parametrize("interval, timeout", [("15s", "10s"), ("5s", "5s"), ("1m", "10s")])
def test_scrape_interval_from_stack_yaml(make, interval, timeout):
    def edit(d: Any) -> None:
        d["monitoring"]["scrape_interval"] = interval

    glob = make("offline", stack=edit)["prometheus"]["global"]
    assert glob == {"scrape_interval": interval, "scrape_timeout": timeout,
                    "evaluation_interval": interval}


@pytest.mark.parametrize("name", ["shipped", "offline"])
def test_promtool_accepts_the_generated_config(make, tmp_path, name):
    promtool = require_tool("promtool")  # a failure, not a skip, under STACKCTL_REQUIRE_TOOLS=1
    prom = make(name)["prometheus"]
    # promtool opens the credentials file and the rules: a dummy key, the repository's rules
    key = tmp_path / "litellm_master_key"
    key.write_text("sk-dummy-for-promtool\n")
    jobs(prom)["litellm"]["authorization"]["credentials_file"] = str(key)
    prom["rule_files"] = [str(RULES)]
    copy = tmp_path / "prometheus.yml"
    copy.write_text(json.dumps(prom))  # JSON is YAML
    r = run([promtool, "check", "config", str(copy)])
    assert r.returncode == 0, r.stdout + r.stderr


# -- Alertmanager: routing, inhibition, receivers --------------------------------------------

def test_without_receivers_alerts_go_to_the_null_receiver(make):
    am = make("offline")["alertmanager"]
    assert am["route"] == {"receiver": "null",
                           "group_by": ["alertname", "gpu_group", "provider", "requested_model"],
                           "group_wait": "30s", "group_interval": "5m", "repeat_interval": "4h"}
    assert am["receivers"] == [{"name": "null"}]


def test_gateway_down_silences_the_per_model_alerts(make):
    (rule,) = make("offline")["alertmanager"]["inhibit_rules"]
    assert rule == {"source_matchers": ["alertname=LiteLLMGatewayDown"],
                    "target_matchers": ["scope=model"]}
    names = {r["alert"] for g in load_yaml(RULES.read_text())["groups"] for r in g["rules"]}
    assert "LiteLLMGatewayDown" in names  # the source alert exists


def test_receivers_get_every_alert(make):
    def edit(d: Any) -> None:
        with_receivers(d)
        d["monitoring"]["alerts"]["group_wait"] = "5s"

    am = make("offline", stack=edit)["alertmanager"]
    assert am["route"]["receiver"] == "null"
    assert am["route"]["group_wait"] == "5s"
    assert am["route"]["routes"] == [{"receiver": "ops", "continue": True},
                                     {"receiver": "chat", "continue": True}]
    # the offline example's Alertmanager is 0.25: its webhooks go through the relay
    assert am["receivers"] == [
        {"name": "null"},
        {"name": "ops", "webhook_configs": [
            {"url": f"http://127.0.0.1:{RELAY_PORT}/ALERT_WEBHOOK_URL", "send_resolved": True}]},
        {"name": "chat", "webhook_configs": [
            {"url": f"http://127.0.0.1:{RELAY_PORT}/CHAT_WEBHOOK_URL", "send_resolved": False}]}]


def test_alertmanager_026_reads_each_url_from_its_secret_file(make):
    """The shipped registry's upstream Alertmanager (0.29) has url_file: no relay."""
    gen = make("shipped", stack=with_receivers)
    assert [c for r in gen["alertmanager"]["receivers"] for c in r.get("webhook_configs", [])] == [
        {"url_file": "/run/secrets/ALERT_WEBHOOK_URL", "send_resolved": True},
        {"url_file": "/run/secrets/CHAT_WEBHOOK_URL", "send_resolved": False}]
    am = gen["compose"]["services"]["alertmanager"]
    assert "entrypoint" not in am  # the image's own: Alertmanager reads the files itself
    assert am["command"][0] == f"--config.file={ALERTMANAGER_DIR}/alertmanager.yml"
    assert RELAY_FILE not in gen["texts"]


@pytest.mark.parametrize("image, url_file", [
    ("prom/alertmanager:v0.29.0", True),
    ("prom/alertmanager:v0.26.0", True),
    ("quay.io/prometheus/alertmanager:v1.0.0", True),
    ("prom/alertmanager@sha256:" + "a" * 64, True),  # no version: taken as recent (loud if not)
    ("stackctl-local/alertmanager:0.25.0", False),
    ("prom/alertmanager:v0.25.1", False),
    ("registry.local:5000/prom/alertmanager:v0.24.0@sha256:" + "b" * 64, False),
])
def test_which_alertmanager_reads_url_file(image, url_file):
    assert reads_url_file(image) is url_file


@pytest.mark.parametrize("name", ["shipped", "offline"])
def test_webhook_url_is_in_no_generated_file(make, name):
    gen = make(name, stack=with_receivers)
    for path, text in gen["texts"].items():
        assert "should-not-appear" not in text, path
        assert "hooks.example.com" not in text, path
    compose = gen["compose"]
    assert compose["secrets"]["ALERT_WEBHOOK_URL"] == {"environment": "ALERT_WEBHOOK_URL"}
    assert compose["secrets"]["CHAT_WEBHOOK_URL"] == {"environment": "CHAT_WEBHOOK_URL"}
    am = compose["services"]["alertmanager"]
    assert am["secrets"] == ["ALERT_WEBHOOK_URL", "CHAT_WEBHOOK_URL"]
    assert "environment" not in am and "tmpfs" not in am  # not in `docker inspect`, no copy
    assert am["command"][0] == f"--config.file={ALERTMANAGER_DIR}/alertmanager.yml"


def test_without_receivers_alertmanager_runs_on_the_generated_file(make):
    gen = make("offline")
    am = gen["compose"]["services"]["alertmanager"]
    assert "entrypoint" not in am and "secrets" not in am
    assert am["command"] == [f"--config.file={ALERTMANAGER_DIR}/alertmanager.yml",
                             "--storage.path=/alertmanager", "--cluster.listen-address="]
    assert f"./alertmanager:{ALERTMANAGER_DIR}:ro" in am["volumes"]
    assert RELAY_FILE not in gen["texts"]


# -- Alertmanager 0.25: the relay, started before it -----------------------------------------

def test_the_relay_is_generated_beside_the_config_and_started_first(make):
    gen = make("offline", stack=with_receivers)
    relay = (REPO / "stackctl/incontainer/webhook_relay.py").read_text(encoding="utf-8")
    assert gen["texts"][RELAY_FILE].endswith(relay)  # a copy, under a "GENERATED" header
    assert gen["texts"][RELAY_FILE].startswith("# GENERATED by stackctl")
    am = gen["compose"]["services"]["alertmanager"]
    assert am["entrypoint"][:2] == ["sh", "-c"] and am["entrypoint"][3] == "alertmanager"
    # the script in the compose file is start_script's, with `$` doubled for Compose
    assert am["entrypoint"][2].replace("$$", "$") == start_script(
        f"{ALERTMANAGER_DIR}/stackctl_webhook_relay.py", ["ALERT_WEBHOOK_URL", "CHAT_WEBHOOK_URL"])
    assert f"./alertmanager:{ALERTMANAGER_DIR}:ro" in am["volumes"]  # the relay's folder too


def _start(tmp_path: Path, make: Any, secrets: dict[str, str]) -> tuple[Any, Path, int]:
    """Run the start step with `sh` on the host: the generated relay on a free port, secrets
    as files, and an `alertmanager` that records its arguments and whether the relay
    answered it. The relay is stopped before this returns."""
    import socket

    gen = make("offline", stack=with_receivers)
    (tmp_path / "secrets").mkdir()
    for var, value in secrets.items():
        (tmp_path / "secrets" / var).write_text(value)
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "python3").symlink_to(shutil.which("python3") or "/usr/bin/python3")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    fake = tmp_path / "bin" / "alertmanager"
    # as Alertmanager would: POST to the relay URL its config names
    fake.write_text('#!/bin/sh\nprintf "%s\\n" "$@" > "$ARGS"\n'
                    f'python3 -c "import urllib.request as u; print(u.urlopen(u.Request('
                    f"'http://127.0.0.1:{port}/ALERT_WEBHOOK_URL', data=b'{{}}')).status)\" "
                    '>> "$ARGS" 2>&1 || echo refused >> "$ARGS"\n')
    fake.chmod(0o755)
    relay = gen["out"] / RELAY_FILE
    script = start_script(str(relay), ["ALERT_WEBHOOK_URL", "CHAT_WEBHOOK_URL"], port,
                          str(tmp_path / "secrets"))
    args = tmp_path / "args"
    log = tmp_path / "log"
    with log.open("w") as out:  # not a pipe: the relay (a child) would hold it open
        p = subprocess.Popen(["sh", "-c", script, "alertmanager", "--config.file=X"],
                             stdout=out, stderr=out, start_new_session=True,
                             env={"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin",
                                  "ARGS": str(args)})
        try:
            p.wait(timeout=60)
        finally:
            if p.returncode != 1:  # the relay may still serve (its group is the script's)
                os.killpg(p.pid, signal.SIGTERM)
    return p, args, log.read_text()


def test_start_step_runs_alertmanager_once_the_relay_listens(make, tmp_path):
    import http.server
    import threading

    got: list[bytes] = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            got.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *a: Any) -> None:
            pass

    hook = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    try:
        p, args, log = _start(tmp_path, make, {
            "ALERT_WEBHOOK_URL": f"http://127.0.0.1:{hook.server_port}/should-not-appear\n",
            "CHAT_WEBHOOK_URL": "https://hooks.example.com/x"})
    finally:
        hook.shutdown()
    assert p.returncode == 0, log
    assert args.read_text().splitlines() == ["--config.file=X", "204"]
    assert got == [b"{}"] and "should-not-appear" not in log


@pytest.mark.parametrize("url", ["", "hooks.example.com/x", "https://a b", "https://x/\ny"])
def test_start_step_refuses_a_bad_url_without_printing_it(make, tmp_path, url):
    p, args, log = _start(tmp_path, make, {"ALERT_WEBHOOK_URL": url,
                                           "CHAT_WEBHOOK_URL": "https://ok/1"})
    assert p.returncode == 1
    assert log.startswith("webhook relay: ALERT_WEBHOOK_URL")
    if url:
        assert url.strip() not in log
    assert not args.exists()  # Alertmanager never started


def _amtool(config: Path) -> subprocess.CompletedProcess | None:
    """`amtool check-config` from the local Alertmanager image; None without one."""
    docker = shutil.which("docker")
    if docker is None or run([docker, "image", "inspect", ALERTMANAGER_TAG]).returncode != 0:
        return None
    if run([docker, "run", "--rm", "--entrypoint", "sh", ALERTMANAGER_TAG, "-c",
            "command -v amtool"]).returncode != 0:
        return None
    return run([docker, "run", "--rm", "--entrypoint", "amtool",
                "-v", f"{config.parent}:/cfg:ro", ALERTMANAGER_TAG,
                "check-config", f"/cfg/{config.name}"])


@pytest.mark.parametrize("receivers", [False, True], ids=["null", "webhooks"])
def test_alertmanager_config_is_valid(make, receivers):
    gen = make("offline", **({"stack": with_receivers} if receivers else {}))
    am = gen["alertmanager"]
    # structural: every route names a receiver, every receiver is defined once
    defined = [r["name"] for r in am["receivers"]]
    assert len(defined) == len(set(defined))
    routed = [am["route"]["receiver"]] + [r["receiver"] for r in am["route"].get("routes", [])]
    assert set(routed) <= set(defined)
    for r in am["receivers"]:
        for c in r.get("webhook_configs", []):
            assert c["url"].startswith("http://127.0.0.1:")
    # 0.25's amtool (the url_file of 0.26+ is checked by the contract test's upstream image
    # only where one is present: it is not part of the local set)
    r = _amtool(gen["out"] / "alertmanager" / "alertmanager.yml")
    if r is None:
        if os.environ.get("STACKCTL_REQUIRE_TOOLS") == "1":
            pytest.fail(f"{ALERTMANAGER_TAG} with amtool is missing (stackctl images build)")
        return  # the structural checks above stand
    assert r.returncode == 0, r.stdout + r.stderr


# -- the compose services --------------------------------------------------------------------

def test_offline_monitoring_runs_on_the_local_images_without_grafana_loki_alloy(make):
    services = make("offline")["compose"]["services"]
    monitoring = {n: s for n, s in services.items() if s.get("profiles") == ["monitoring"]}
    assert {n: s["image"] for n, s in monitoring.items()} == {
        "prometheus": "stackctl-local/prometheus:2.42.0",
        "alertmanager": "stackctl-local/alertmanager:0.25.0",
        "pushgateway": "stackctl-local/pushgateway:1.5.1",
        "redis-exporter": "stackctl-local/redis-exporter:1.45.0",
        "blackbox-exporter": "stackctl-local/blackbox-exporter:0.23.0"}
    for name, svc in monitoring.items():  # Debian images: python3, no wget
        assert svc["healthcheck"]["test"][:3] == ["CMD", "python3", "-c"], name


def test_shipped_monitoring_uses_pinned_upstream_images(make):
    services = make("shipped")["compose"]["services"]
    images = {n: s["image"] for n, s in services.items() if s.get("profiles") == ["monitoring"]}
    assert set(images) == {"prometheus", "alertmanager", "pushgateway", "redis-exporter",
                           "blackbox-exporter", "grafana", "loki", "alloy"}
    assert images["redis-exporter"].startswith("oliver006/redis_exporter:v")
    assert images["redis-exporter"].endswith("-alpine")  # the scratch image has no wget
    for name in ("prometheus", "alertmanager", "pushgateway", "blackbox-exporter"):
        assert images[name].startswith(f"prom/{name}:v"), images[name]
        assert services[name]["healthcheck"]["test"][:2] == ["CMD", "wget"]


def test_monitoring_ports_are_bound_to_the_bind_address(make):
    services = make("offline")["compose"]["services"]
    assert services["prometheus"]["ports"] == ["127.0.0.1:9090:9090"]
    assert services["alertmanager"]["ports"] == ["127.0.0.1:9093:9093"]
    assert services["pushgateway"]["ports"] == ["127.0.0.1:9091:9091"]  # `switch` pushes
    assert services["redis-exporter"]["ports"] == []
    assert services["blackbox-exporter"]["ports"] == []


def test_redis_exporter_gets_the_password_from_the_environment_only(make):
    services = make("offline")["compose"]["services"]
    exporter = services["redis-exporter"]
    assert exporter["environment"] == {
        "REDIS_ADDR": "redis://redis:6379",
        "REDIS_PASSWORD": "${REDIS_PASSWORD:?set REDIS_PASSWORD in .env}"}
    assert "command" not in exporter  # no --redis.password on a command line


def test_prometheus_mounts_its_generated_folder_and_the_rules(make):
    prom = make("offline")["compose"]["services"]["prometheus"]
    assert prom["command"][0] == "--config.file=/etc/prometheus/stackctl/prometheus.yml"
    assert prom["volumes"] == ["./prometheus:/etc/prometheus/stackctl:ro",
                               "../../../monitoring/prometheus:/etc/prometheus/rules:ro",
                               "prometheus-data:/prometheus"]
    assert PROMETHEUS_RULES == "/etc/prometheus/rules/alerts.yml"


def test_disabled_services_leave_no_trace(make):
    def edit(d: Any) -> None:
        for name in ("alertmanager", "pushgateway", "blackbox_exporter"):
            d["monitoring"][name] = {"enabled": False}

    gen = make("offline", stack=edit)
    services = gen["compose"]["services"]
    assert {"alertmanager", "pushgateway", "blackbox-exporter"}.isdisjoint(services)
    assert {"alertmanager-data", "pushgateway-data"}.isdisjoint(gen["compose"]["volumes"])
    assert "alertmanager/alertmanager.yml" not in gen["texts"]
    prom = gen["prometheus"]
    assert "alerting" not in prom
    assert list(jobs(prom)) == ["prometheus", "litellm", "provider", "redis"]


def test_no_cache_no_redis_exporter(make):
    def edit(d: Any) -> None:
        d["cache"]["enabled"] = False

    gen = make("offline", stack=edit)
    assert "redis-exporter" not in gen["compose"]["services"]
    assert "redis" not in jobs(gen["prometheus"])


def test_grafana_can_be_switched_off_in_the_shipped_registry(make):
    def edit(d: Any) -> None:
        d["monitoring"]["grafana"] = {"enabled": False}

    compose = make("shipped", stack=edit)["compose"]
    assert "grafana" not in compose["services"] and "grafana-data" not in compose["volumes"]
    assert "grafana_admin_password" not in compose["secrets"]


def test_registry_defaults_match_the_shipped_stack():
    """config/stack.yaml sets no monitoring image: the shipped stack runs the defaults."""
    reg = load_registry(REPO / "config")
    assert reg.stack.monitoring.prometheus.image.startswith("prom/prometheus:")
    assert reg.stack.monitoring.alerts.receivers == []
