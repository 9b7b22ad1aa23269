"""Contract of stackctl-local/alertmanager:0.25.0: a webhook URL (a secret) is not on its
status API, and alerts still reach it (issue #22).

Alertmanager 0.25 prints its loaded config on GET /api/v2/status, every webhook `url` in it
verbatim (the first test shows it: why the relay exists). The generated config of the offline
example with a receiver is run the way the generated compose file runs it (its entrypoint,
command and config folder; the URL as the secret file /run/secrets/ALERT_WEBHOOK_URL) beside
a webhook receiver on a private network: the config loads, the status API, Alertmanager's logs
and `docker inspect` hold no trace of the URL, and an alert posted to Alertmanager arrives at
the URL through the relay.
"""

from __future__ import annotations

import json
import secrets
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from ruamel.yaml import YAML

from stackctl.images.specs import ALERTMANAGER_TAG
from stackctl.registry.load import load_registry
from stackctl.registry.vocabulary import ALERTMANAGER_FILE, COMPOSE_FILE
from stackctl.render.compose import ALERTMANAGER_DIR
from stackctl.render.files import render_all
from tests import tc
from tests.conftest import apply_yaml_edit
from tests.paths import REPO

pytestmark = pytest.mark.integration

TOKEN = f"T0-B0-{secrets.token_hex(12)}"  # the secret part of the URL
HOOK = "alert-sink"  # the receiver's name on the private network
WEBHOOK_URL = f"http://{HOOK}:9000/services/{TOKEN}"
# a receiver that prints each POST (path and body) as one JSON line
RECEIVER = """
import http.server, json, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        print(json.dumps({"path": self.path, "type": self.headers.get("Content-Type"),
                          "body": json.loads(body)}), flush=True)
        self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *a): pass
print("receiver listening", flush=True)
http.server.HTTPServer(("0.0.0.0", 9000), H).serve_forever()
"""


def _readable(folder: Path) -> Path:
    """Alertmanager runs as Debian's `prometheus` user: the mounted folders are not root's."""
    folder.chmod(0o755)
    for p in folder.iterdir():
        p.chmod(0o644)
    return folder


def _alertmanager(command: list[str], config: Path, entrypoint: list[str] | None = None,
                  secrets_dir: Path | None = None) -> Any:
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.wait_strategies import HttpWaitStrategy

    am = (DockerContainer(ALERTMANAGER_TAG).with_command(command)
          .with_volume_mapping(str(config), ALERTMANAGER_DIR, "ro")
          .waiting_for(HttpWaitStrategy(9093, "/-/ready").with_startup_timeout(60)))
    if entrypoint is not None:
        am.with_kwargs(entrypoint=entrypoint)
    if secrets_dir is not None:
        am.with_volume_mapping(str(secrets_dir), "/run/secrets", "ro")
    tc.publish_on_loopback(am, 9093)
    return am


def _status(http: requests.Session, am: Any) -> dict[str, Any]:
    r = http.get(f"{tc.http_url(am, 9093)}/api/v2/status", timeout=10)
    r.raise_for_status()
    return r.json()


def test_a_plain_webhook_url_is_on_the_status_api(containers, http, tmp_path_factory):
    """0.25 as it is: `url` goes out verbatim (the reason for the relay)."""
    containers.require(ALERTMANAGER_TAG)
    config = tmp_path_factory.mktemp("plain")
    (config / "alertmanager.yml").write_text(
        "route: {receiver: ops}\n"
        f"receivers: [{{name: ops, webhook_configs: [{{url: '{WEBHOOK_URL}'}}]}}]\n")
    am = containers.start(_alertmanager(
        [f"--config.file={ALERTMANAGER_DIR}/alertmanager.yml", "--storage.path=/alertmanager",
         "--cluster.listen-address="], _readable(config)))
    status = _status(http, am)
    assert status["versionInfo"]["version"] == "0.25.0"
    assert TOKEN in status["config"]["original"]


@pytest.fixture(scope="module")
def stack(containers: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The receiver and Alertmanager as the generated compose file runs it."""
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.wait_strategies import LogMessageWaitStrategy

    containers.require(ALERTMANAGER_TAG)
    root = tmp_path_factory.mktemp("offline")
    cfg = root / "examples" / "offline" / "config"
    shutil.copytree(REPO / "examples" / "offline" / "config", cfg)

    def receivers(d: Any) -> None:
        d["monitoring"]["alerts"] = {
            "receivers": [{"name": "ops", "webhook_url_env": "ALERT_WEBHOOK_URL"}],
            "group_wait": "1s", "group_interval": "2s"}
    apply_yaml_edit(cfg / "stack.yaml", receivers)
    reg = load_registry(cfg)
    for f in render_all(reg):
        f.path.parent.mkdir(parents=True, exist_ok=True)
        f.path.write_text(f.text, encoding="utf-8")
    out = reg.output_dir
    service = YAML(typ="safe").load((out / COMPOSE_FILE).read_text())["services"]["alertmanager"]
    assert service["secrets"] == ["ALERT_WEBHOOK_URL"]
    secrets_dir = root / "secrets"  # what Compose makes of the secret
    secrets_dir.mkdir()
    (secrets_dir / "ALERT_WEBHOOK_URL").write_text(WEBHOOK_URL)

    net = containers.network()
    hook = containers.start(
        DockerContainer(ALERTMANAGER_TAG).with_kwargs(entrypoint=["python3", "-c", RECEIVER])
        .with_network(net).with_network_aliases(HOOK)
        .waiting_for(LogMessageWaitStrategy("receiver listening").with_startup_timeout(60)))
    # Compose turns the file's `$$` into `$` before the shell sees the script
    entrypoint = [part.replace("$$", "$") for part in service["entrypoint"]]
    am = _alertmanager(service["command"], _readable(out / Path(ALERTMANAGER_FILE).parent),
                       entrypoint, _readable(secrets_dir)).with_network(net)
    containers.start(am)
    return {"am": am, "hook": hook, "url": tc.http_url(am, 9093)}


def test_the_generated_config_loads_without_the_url_on_the_status_api(stack, http):
    status = _status(http, stack["am"])
    original = status["config"]["original"]
    assert "url: http://127.0.0.1:9095/ALERT_WEBHOOK_URL" in original  # ours, loaded
    assert TOKEN not in json.dumps(status) and HOOK not in original
    r = http.get(f"{stack['url']}/api/v2/receivers", timeout=10)
    assert {x["name"] for x in r.json()} == {"null", "ops"}


def test_an_alert_reaches_the_webhook_through_the_relay(stack, http):
    name = f"ContractAlert{secrets.token_hex(4)}"
    r = http.post(f"{stack['url']}/api/v2/alerts", timeout=10,
                  json=[{"labels": {"alertname": name, "severity": "warning"}}])
    assert r.status_code == 200, r.text
    deadline, posts = time.monotonic() + 60, []
    while time.monotonic() < deadline and not posts:
        lines = stack["hook"].get_wrapped_container().logs().decode().splitlines()
        posts = [json.loads(line) for line in lines if line.startswith("{")]
        posts = [p for p in posts if p["body"]["groupLabels"].get("alertname") == name]
        time.sleep(0.5)
    assert posts, "the alert did not reach the webhook in 60 s"
    assert posts[0]["path"] == f"/services/{TOKEN}"
    assert posts[0]["type"] == "application/json"
    assert posts[0]["body"]["receiver"] == "ops" and posts[0]["body"]["status"] == "firing"


def test_no_log_line_and_no_inspect_field_holds_the_url(stack, http):
    container = stack["am"].get_wrapped_container()
    container.reload()
    assert TOKEN not in container.logs().decode(errors="replace")
    assert TOKEN not in json.dumps(container.attrs)  # env, entrypoint, command, mounts
