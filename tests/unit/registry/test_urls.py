"""`stackctl urls`: rows from the registry (data), then the command."""

from __future__ import annotations

import json

from stackctl.cli import cli
from stackctl.registry.load import load_registry
from stackctl.registry.urls import host_of, urls
from tests.paths import CONFIGS


def test_every_enabled_published_ui_with_its_login_variable():
    rows = {r.service: r for r in urls(load_registry(CONFIGS["shipped"]))}
    assert list(rows) == ["litellm", "prometheus", "alertmanager", "pushgateway", "grafana",
                          "loki"]
    assert rows["litellm"].url == "http://127.0.0.1:4000/v1"
    assert rows["litellm"].login_env == "LITELLM_MASTER_KEY" and rows["litellm"].profile is None
    assert rows["grafana"].url == "http://127.0.0.1:3000/"
    assert rows["grafana"].login == "user admin, password in $GRAFANA_ADMIN_PASSWORD"
    assert rows["prometheus"].login is None and rows["prometheus"].profile == "monitoring"


def test_only_what_the_registry_enables(registry_dir, yaml_edit):
    offline = {r.service for r in urls(load_registry(CONFIGS["offline"]))}
    assert offline == {"litellm", "prometheus", "alertmanager", "pushgateway"}  # no Grafana
    cfg = registry_dir("shipped")
    yaml_edit(cfg / "stack.yaml", lambda d: d.update(
        bind_address="0.0.0.0", gateway={"host_port": 4100},
        monitoring={"prometheus": {"host_port": None}, "loki": {"enabled": False}}))
    rows = {r.service: r for r in urls(load_registry(cfg))}
    assert "prometheus" not in rows and "loki" not in rows
    assert rows["litellm"].url == "http://127.0.0.1:4100/v1"  # 0.0.0.0 is opened on loopback
    assert host_of("::1") == "[::1]" and host_of("10.0.0.5") == "10.0.0.5"


def test_urls_command_never_shows_a_secret(runner, registry_dir):
    cfg = registry_dir("shipped")
    (cfg.parent / ".env").write_text("LITELLM_MASTER_KEY=sk-very-secret-value-1234\n")
    r = runner.invoke(cli, ["urls", "-C", str(cfg)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert r.output.splitlines()[0].split() == [
        "litellm", "http://127.0.0.1:4000/v1", "OpenAI-compatible", "endpoint", "(/v1)",
        "login:", "Bearer", "key", "in", "$LITELLM_MASTER_KEY"]
    assert "sk-very-secret" not in r.output
    doc = json.loads(runner.invoke(cli, ["urls", "--json", "-C", str(cfg)]).stdout)
    assert doc[0]["login_env"] == "LITELLM_MASTER_KEY" and len(doc) == 6
    (cfg / "providers.yaml").write_text("providers: [\n")
    r = runner.invoke(cli, ["urls", "-C", str(cfg), "--json"])
    assert r.exit_code == 1 and json.loads(r.stdout)["ok"] is False
