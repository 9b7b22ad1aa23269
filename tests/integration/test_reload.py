"""`stackctl reload` on the real engine: refused edits, a graceful reload under load, rollback
of a config that never serves, backups and --restore.

The stack is the session's shared one (conftest.py); the registry files are put back as they
were at the end of the module (the last test restores the gateway's config from before)."""

from __future__ import annotations

import json
import shutil
import subprocess
import time

import pytest

from tests.integration.crashes import crash
from tests.integration.traffic import Traffic

pytestmark = pytest.mark.integration

QWEN = "qwen-coder-vllm"


@pytest.fixture(scope="module")
def stack(shared_stack):
    files = {f: (shared_stack.config / f).read_text()
             for f in ("model-mappings.yaml", "stack.yaml")}
    yield shared_stack
    for f, text in files.items():
        (shared_stack.config / f).write_text(text)


def started_at(stack) -> str:  # type: ignore[no-untyped-def]
    return json.loads(subprocess.run(
        ["docker", "inspect", f"{stack.project}-litellm-1"], capture_output=True, text=True,
        check=True).stdout)[0]["State"]["StartedAt"]


def listed(stack) -> list[str]:  # type: ignore[no-untyped-def]
    import requests

    r = requests.get(f"{stack.url}/v1/models", headers={"Authorization": f"Bearer {stack.key}"},
                     timeout=10)
    return [m["id"] for m in r.json()["data"]]


def gateway_config(stack) -> str:  # type: ignore[no-untyped-def]
    return (stack.root / "compose" / "litellm" / "config.yaml").read_text()


@pytest.mark.parametrize("edit, message", [
    # a model on a provider that is disabled
    (lambda d: d["exact_matches"]["smollm2"].__setitem__("provider", "vllm-gone"),
     "vllm-gone"),
    # an invalid router setting
    ("stack", "unknown key"),
])
def test_broken_edit_is_refused_before_anything_restarts(stack, edit, message):
    before, config = started_at(stack), gateway_config(stack)
    saved = {f: (stack.config / f).read_text() for f in ("model-mappings.yaml", "stack.yaml")}
    try:
        if edit == "stack":
            stack.edit("stack.yaml", lambda d: d["gateway"].__setitem__(
                "router", {"num_retries": 1, "retry_after_seconds": 2}))
        else:
            stack.edit("model-mappings.yaml", edit)
        r = stack.run("reload", "--yes")
        assert r.returncode == 1, r.stdout + r.stderr
        assert message in r.stderr and "Traceback" not in r.stderr
    finally:
        for f, text in saved.items():
            (stack.config / f).write_text(text)
    assert started_at(stack) == before and gateway_config(stack) == config


def test_reload_under_load_fails_no_request(stack):
    stack.edit("model-mappings.yaml", lambda d: d["exact_matches"]["smollm2"].__setitem__(
        "aliases", ["tiny"]))
    before = started_at(stack)
    with Traffic(stack.url, stack.key, [QWEN], rate=5.5) as traffic:
        assert traffic.wait_answered(QWEN, since=time.monotonic(), count=10)
        r = stack.run("reload", "--yes", "--json")
        assert traffic.wait_answered(QWEN, since=time.monotonic(), count=10)
    assert r.returncode == 0, r.stdout + r.stderr
    result = json.loads(r.stdout)
    assert result["applied"] and "tiny" in result["models"] and result["backup"]
    assert traffic.failures() == [], traffic.failures()[:3]
    assert started_at(stack) == before  # the container was not restarted
    assert "tiny" in listed(stack)
    r = stack.run("backups", "--json")
    assert r.returncode == 0 and result["backup"] in [b["id"] for b in json.loads(r.stdout)]


def test_a_reloaded_gateway_that_crashes_is_restarted_by_its_restart_policy(stack):
    # reload signals gunicorn from inside the container: after `docker kill -s`, Docker
    # would count the gateway as stopped by hand and leave it down after a crash
    stack.edit("model-mappings.yaml", lambda d: d["exact_matches"]["smollm2"].__setitem__(
        "aliases", ["tiny", "tinier"]))
    r = stack.run("reload", "--yes", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["applied"], r.stdout + r.stderr
    before = started_at(stack)
    crash(f"{stack.project}-litellm-1")
    end = time.monotonic() + 120
    while time.monotonic() < end and not (started_at(stack) != before and serves(stack)):
        time.sleep(1)
    assert started_at(stack) != before, "the crashed gateway was not restarted"
    assert "tinier" in listed(stack)


def serves(stack) -> bool:  # type: ignore[no-untyped-def]
    try:
        return QWEN in listed(stack)
    except (OSError, ValueError, KeyError):  # refused, or not answering JSON yet: starting
        return False


def test_config_that_never_serves_is_rolled_back_and_restore_works(stack):
    # a backup from before the master key's variable was renamed passes LiteLLM's own check
    # but cannot serve: the running gateway has no such variable
    good = listed(stack)
    backups = stack.root / "compose" / "backups"
    bad = backups / "20261101T000000Z"
    shutil.copytree(stack.root / "compose" / "litellm", bad)
    text = (bad / "config.yaml").read_text()
    (bad / "config.yaml").write_text(text.replace("os.environ/LITELLM_MASTER_KEY",
                                                  "os.environ/RENAMED_MASTER_KEY"))
    r = stack.run("reload", "--restore", "20261101T000000Z", "--yes", "--timeout", "45")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "did not serve" in r.stderr and "previous config serves again" in r.stderr
    assert sorted(listed(stack)) == sorted(good)
    assert "RENAMED_MASTER_KEY" not in gateway_config(stack)


def test_restore_puts_a_backup_back(stack):
    # the backup taken before the alias was added holds the config without it
    r = stack.run("backups", "--json")
    found = json.loads(r.stdout)
    older = next(b for b in found if "tiny" not in (stack.root / "compose" / "backups" / b["id"]
                                                     / "config.yaml").read_text()
                 and "RENAMED" not in (stack.root / "compose" / "backups" / b["id"]
                                       / "config.yaml").read_text())
    before = started_at(stack)
    r = stack.run("reload", "--restore", older["id"], "--yes")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "tiny" not in listed(stack) and "tiny" not in gateway_config(stack)
    assert started_at(stack) == before
