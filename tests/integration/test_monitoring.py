"""The monitoring profile on the real engine: the offline stack with Prometheus, Alertmanager,
the Pushgateway and the exporters; real traffic (a fallback, a cache hit, an error) and a
switch; then every alert rule and dashboard query is evaluated by Prometheus, the metric
names they use are read from the live series, and a killed provider's alert travels to a
webhook receiver in the project's network and resolves when the provider is back.

The stack is the session's shared one (conftest.py: its stack.yaml has this module's scrape
interval and webhook receiver from the start); this module adds the monitoring profile to
it, the last module to use it before its down test.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from datetime import datetime

import pytest
import requests
from python_on_whales import docker

from tests.integration.conftest import SCRAPE, WEBHOOK
from tests.monitoring_queries import SOURCES, alert_expressions, panel_queries, used_metric_names

WEBHOOK_LOG = "/tmp/alerts.jsonl"
# A stdlib receiver: each POSTed notification becomes one line of WEBHOOK_LOG.
RECEIVER = f"""
import http.server
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers['Content-Length']))
        with open('{WEBHOOK_LOG}', 'ab') as f:
            f.write(body.replace(b'\\n', b' ') + b'\\n')
        self.send_response(200); self.end_headers()
http.server.HTTPServer(('0.0.0.0', 9000), H).serve_forever()
"""
# Series that exist only after an event this test does not cause (each is verified against
# its exporter's source in tests/unit/monitoring/test_rules.py's SOURCES).
EVENT_ONLY = {
    "ALERTS": "only while an alert is pending or firing",
    "litellm_deployment_cooled_down_total": "only once the router cools a deployment down",
    "litellm_deployment_failed_fallbacks_total": "only when every fallback fails too",
    "litellm_spend_metric_total": "only for a model with a price (local models cost 0)",
    "alertmanager_notifications_failed_total": "only once a notification fails",
    # a request is held only by a sleep-mode switch (test_sleep_switch); this stack restarts
    "stackctl_gateway_held_requests": "only once the gateway has held a request",
    "stackctl_gateway_hold_seconds_bucket": "only once a held request has left the hold",
}


@pytest.fixture(scope="module")
def stack(shared_stack):
    s = shared_stack
    r = s.run("up", "-p", "llamacpp", "-p", "ollama", "-p", "vllm-qwen", "-p", "monitoring")
    assert r.returncode == 0, r.stdout + r.stderr
    receiver = docker.run("stackctl-local/base:bookworm", ["python3", "-c", RECEIVER],
                          detach=True, remove=True, name=f"{s.project}-{WEBHOOK}",
                          networks=[f"{s.project}_default"], network_aliases=[WEBHOOK])
    s.receiver = receiver
    yield s
    receiver.remove(force=True)


def prom(stack, path: str, **params) -> dict:
    r = requests.get(f"http://127.0.0.1:{stack.port('prometheus')}{path}", params=params,
                     timeout=10)
    assert r.ok, (path, params, r.text[:500])
    return r.json()["data"]


def query(stack, expr: str) -> list:
    return prom(stack, "/api/v1/query", query=expr)["result"]


def wait_for(what: str, check, timeout: float = 90, every: float = 1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    pytest.fail(f"{what}: not within {timeout:g}s")


def scraped_at(target: dict) -> float:
    """When Prometheus last started scraping `target` (its RFC 3339 `lastScrape`, with
    nanoseconds), as a Unix time."""
    m = re.fullmatch(r"(.*?:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)", target["lastScrape"])
    assert m, target["lastScrape"]
    head, frac, zone = m.groups()
    when = datetime.fromisoformat(head + ("+00:00" if zone == "Z" else zone))
    return when.timestamp() + float(frac or 0)

def chat(stack, model: str, content: str, key: str | None = None) -> requests.Response:
    return requests.post(f"{stack.url}/v1/chat/completions", timeout=60,
                         headers={"Authorization": f"Bearer {key or stack.key}"},
                         json={"model": model, "max_tokens": 8,
                               "messages": [{"role": "user", "content": content}]})


@pytest.fixture(scope="module")
def traffic(stack):
    """A cache hit, a fallback, errors and two switches, then two scrape rounds."""
    for _ in range(2):
        assert chat(stack, "smollm2", "the same question").ok  # the second is a cache hit
    for model in ("qwen-coder-vllm", "qwen2.5-coder:7b", "smollm2"):
        for _ in range(3):
            assert chat(stack, model, f"hello {uuid.uuid4()}").ok
    stream = requests.post(f"{stack.url}/v1/chat/completions", timeout=60, stream=True,
                           headers={"Authorization": f"Bearer {stack.key}"},
                           json={"model": "smollm2", "max_tokens": 8, "stream": True,
                                 "messages": [{"role": "user", "content": "stream, please"}]})
    assert stream.ok and b"[DONE]" in b"".join(stream.iter_content(None))  # time to first token
    # a fallback of the router's own: qwen's member answers 500 (the stub's error rate)
    stub = f"http://127.0.0.1:{stack.port('vllm-qwen')}/stub/config"
    assert requests.post(stub, json={"error_rate": 1.0}, timeout=5).ok
    try:
        assert chat(stack, "qwen-coder-vllm", f"fail over {uuid.uuid4()}").ok
    finally:
        assert requests.post(stub, json={"error_rate": 0.0}, timeout=5).ok
    assert chat(stack, "no-such-model", "x").status_code >= 400
    assert chat(stack, "smollm2", "x", key="sk-wrong").status_code in (400, 401)
    for member in ("vllm-dolphin", "vllm-qwen"):
        r = stack.run("switch", member)
        assert r.returncode == 0, r.stdout + r.stderr
        # dolphin's model while dolphin is switched out: diverted to its fallback
        fallback = chat(stack, "dolphin-uncensored-vllm", f"hi {uuid.uuid4()}")
        assert fallback.ok
    # two scrapes of every target since: a loaded machine delays a scrape, and a target's
    # health is its last scrape's (dolphin read "up", scraped before the switch stopped it)
    after = time.time()
    wait_for("every target scraped twice since the switches", lambda: all(
        scraped_at(t) > after + 2.0 for t in prom(stack, "/api/v1/targets")["activeTargets"]))


def test_every_target_is_scraped_with_provider_labels(stack, traffic):
    targets = prom(stack, "/api/v1/targets")["activeTargets"]
    health = {(t["labels"]["job"], t["labels"].get("provider", "")): t["health"]
              for t in targets}
    assert health == {
        ("prometheus", ""): "up", ("litellm", ""): "up", ("redis", ""): "up",
        ("alertmanager", ""): "up", ("pushgateway", ""): "up", ("blackbox", ""): "up",
        ("provider", "llama_cpp"): "up", ("provider", "vllm-qwen"): "up",
        ("provider", "vllm-dolphin"): "down",  # switched out on purpose: its standby
        ("provider-probe", "ollama"): "up"}
    dolphin = next(t for t in targets if t["labels"].get("provider") == "vllm-dolphin")
    assert (dolphin["labels"]["provider_type"], dolphin["labels"]["gpu_group"]) == ("vllm", "gpu0")


def test_every_rule_and_panel_evaluates_and_the_main_panels_have_data(stack, traffic):
    errors, empty = [], set()
    for where, expr in alert_expressions() + panel_queries():
        r = requests.get(f"http://127.0.0.1:{stack.port('prometheus')}/api/v1/query",
                         params={"query": expr}, timeout=10)
        if not r.ok or r.json().get("status") != "success":
            errors.append((where, expr, r.text[:300]))
        elif not r.json()["data"]["result"]:
            empty.add(expr)
    assert errors == []
    panels = [e for _, e in panel_queries()]
    for what, needle in (("request rate", "litellm_proxy_total_requests_metric"),
                         ("latency", "litellm_request_total_latency_metric"),
                         ("tokens", "litellm_total_tokens_metric"),
                         ("deployment state", "litellm_deployment_state"),
                         ("cache", "redis_keyspace_hits_total"),
                         ("Redis", "redis_memory_used_bytes"),
                         ("GPU group", "stackctl_gpu_group_active"),
                         ("vLLM", "vllm:"), ("llama.cpp", "llamacpp:")):
        mine = [e for e in panels if needle in e]
        assert mine, f"no panel queries {needle}"
        assert any(e not in empty for e in mine), f"{what}: every panel is empty: {mine}"
    active = {s["metric"]["provider"]: float(s["value"][1])
              for s in query(stack, 'stackctl_gpu_group_active{gpu_group="gpu0"}')}
    assert active == {"vllm-qwen": 1.0, "vllm-dolphin": 0.0}  # the last switch's record
    record = {s["metric"]["__name__"]: float(s["value"][1]) for s in query(
        stack, '{job="stackctl_switch", gpu_group="gpu0", phase=""}')}
    assert (record["stackctl_switch_success"], record["stackctl_switch_rolled_back"],
            record["stackctl_switch_in_progress"]) == (1, 0, 0)


def test_every_metric_the_rules_and_dashboards_use_is_exported(stack, traffic):
    live = set(prom(stack, "/api/v1/label/__name__/values"))
    known = set().union(*(set(src.series) for src in SOURCES.values())) | {"ALERTS"}
    assert set(EVENT_ONLY) <= known
    missing = used_metric_names() - live - set(EVENT_ONLY)
    assert missing == set(), f"used by rules or dashboards, exported by nothing running: {missing}"


def test_status_shows_firing_alerts(stack, traffic):
    """With Prometheus up, `status --json` carries its firing alerts (none or some)."""
    r = stack.run("status", "--json")
    doc = json.loads(r.stdout)
    assert isinstance(doc["alerts"], list)
    firing = {a["name"] for a in doc["alerts"]}
    api = {a["labels"]["alertname"] for a in prom(stack, "/api/v1/alerts")["alerts"]
           if a["state"] == "firing"}
    assert firing == api


def notifications(stack) -> list[dict]:
    out = stack.receiver.execute(["sh", "-c", f"cat {WEBHOOK_LOG} 2>/dev/null || true"])
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_killed_provider_alerts_the_webhook_and_resolves(stack, traffic):
    llama = f"{stack.project}-llama_cpp-1"
    killed = time.monotonic()
    docker.kill(llama)

    def fired(status: str):
        return [a for n in notifications(stack) for a in n["alerts"]
                if a["labels"]["alertname"] == "ProviderDown"
                and a["labels"].get("provider") == "llama_cpp" and a["status"] == status]

    try:
        wait_for("ProviderDown reaches the webhook", lambda: fired("firing"), timeout=120)
    except BaseException:  # say where the alert stopped
        am = requests.get(f"http://127.0.0.1:{stack.port('alertmanager')}/api/v2/alerts",
                          timeout=10).text
        print("prometheus alerts:", json.dumps(prom(stack, "/api/v1/alerts"))[:3000],
              "\nrules:", [(r["name"], r.get("health"), r.get("lastError"))
                           for g in prom(stack, "/api/v1/rules")["groups"] for r in g["rules"]],
              "\nalertmanager:", am[:3000], "\nreceiver:", stack.receiver.logs()[-2000:],
              "\nalertmanager logs:", docker.logs(f"{stack.project}-alertmanager-1")[-3000:])
        raise
    delay = time.monotonic() - killed
    print(f"\nProviderDown reached the webhook {delay:.1f}s after the kill "
          f"(scrape {SCRAPE}, for: 30s, group_wait 1s)")
    alert = fired("firing")[0]
    assert alert["labels"]["severity"] == "critical" and alert["annotations"]["runbook"]
    am = requests.get(f"http://127.0.0.1:{stack.port('alertmanager')}/api/v2/alerts",
                      timeout=10).json()
    assert any(a["labels"]["alertname"] == "ProviderDown" for a in am)

    docker.start(llama)
    wait_for("ProviderDown resolves at the webhook", lambda: fired("resolved"), timeout=120)
    assert 30 <= delay < 90
