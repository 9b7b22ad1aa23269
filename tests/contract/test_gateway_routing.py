"""The routing callback (stackctl/incontainer/routing_callback.py) on the real gateway.

stackctl-local/litellm:1.106.2 runs as the generated compose file runs it (`--run_gunicorn
--num_workers 2`, its config folder bind-mounted read-only at /app/litellm) with a config of
the test's own: three `hosted_vllm/` deployments, model-a, model-b and model-f, each on an
inference stub (vLLM flavor) of its own on a private Docker network, and
`callbacks: ["stackctl_routing.callback"]`. The folder holds config.yaml, the module (copied
verbatim, as `stackctl generate` does) and the state file at its default path, which the test
rewrites as stackctl does: a temporary file in the folder, `os.replace`-d over it.

Shown with real requests: a divert sends model-a to model-f (`x-litellm-model-id` and the
answer's text name model-f's deployment), streaming and /v1/completions included; a held
request waits and is answered by model-a once the file releases it, a second one expires to
the fallback after `seconds`; models in neither map, and other models while requests are held
on both workers, are unaffected.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from stackctl.incontainer import routing_callback
from tests import tc
from tests.contract import Target, chat, completion_text, sse_chunks, stream_text

# its time windows (a request held ~1 s) do not survive cores busy with other tests
pytestmark = [pytest.mark.integration, pytest.mark.alone]

MODELS = {"model-a": "stub-a", "model-b": "stub-b", "model-f": "stub-f"}  # model -> stub host


def deployment(model: str) -> str:
    return f"{model}@{MODELS[model]}"


CONFIG = "model_list:\n" + "".join(f"""\
  - model_name: {model}
    litellm_params:
      model: hosted_vllm/{model}-backend
      api_base: http://{host}:8000/v1
      api_key: none
    model_info:
      id: {deployment(model)}
""" for model, host in MODELS.items()) + """\
router_settings:
  num_retries: 0
  timeout: 60
litellm_settings:
  drop_params: true
  callbacks: ["stackctl_routing.callback"]
general_settings:
  master_key: os.environ/LITELLM_MASTER_KEY
"""


class Gateway:
    def __init__(self, url: str, key: str, folder: Path) -> None:
        self.url, self.key, self.folder = url, key, folder

    def target(self, model: str) -> Target:
        return Target(self.url, model, key=self.key)

    def set_state(self, divert: dict[str, str] | None = None,
                  hold: dict[str, dict[str, Any]] | None = None) -> None:
        """Replace the state file atomically (a new inode), then give both workers' 50 ms
        stat interval time to pass so the next request sees it."""
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".gpu-routing.", suffix=".tmp")
        with os.fdopen(fd, "w") as fh:
            json.dump({"v": 1, "divert": divert or {}, "hold": hold or {}}, fh)
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600
        os.replace(tmp, self.folder / routing_callback.DEFAULT_NAME)
        time.sleep(0.12)

    def ask(self, http: requests.Session, model: str) -> tuple[requests.Response, float]:
        t0 = time.monotonic()
        r = chat(http, self.target(model), stream=False, max_tokens=8)
        return r, time.monotonic() - t0


@pytest.fixture(scope="module")
def gateway(containers: Any, tmp_path_factory: pytest.TempPathFactory) -> Gateway:
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.wait_strategies import HttpWaitStrategy, LogMessageWaitStrategy

    containers.require(tc.GATEWAY_IMAGE, tc.STUB_IMAGE)
    folder = tmp_path_factory.mktemp("litellm")
    (folder / "config.yaml").write_text(CONFIG)
    shutil.copy(routing_callback.__file__, folder / "stackctl_routing.py")
    for f in folder.iterdir():
        f.chmod(0o644)
    folder.chmod(0o755)

    net = containers.network()
    for model, host in MODELS.items():
        containers.start(
            DockerContainer(tc.STUB_IMAGE)
            .with_envs(STUB_FLAVOR="vllm", STUB_MODELS=f"{model}-backend", STUB_NAME=host)
            .with_network(net).with_network_aliases(host)
            .waiting_for(LogMessageWaitStrategy("ready: flavor=vllm")
                         .with_startup_timeout(60).with_poll_interval(0.2)))

    key = f"sk-contract-{secrets.token_hex(12)}"
    gw = (DockerContainer(tc.GATEWAY_IMAGE)
          .with_command(["--config", "/app/litellm/config.yaml", "--port", "4000",
                         "--host", "0.0.0.0", "--run_gunicorn", "--num_workers", "2"])
          .with_envs(LITELLM_MASTER_KEY=key, LITELLM_LOCAL_MODEL_COST_MAP="true")
          .with_volume_mapping(str(folder), "/app/litellm", "ro")
          .with_network(net)
          .waiting_for(HttpWaitStrategy(4000, "/health/readiness").with_startup_timeout(300)))
    tc.publish_on_loopback(gw, 4000)
    containers.start(gw)
    g = Gateway(tc.http_url(gw, 4000), key, folder)
    g.container = gw  # type: ignore[attr-defined]
    return g


def answered_by(r: requests.Response) -> str:
    text = completion_text(r)
    return text.split("]", 1)[0].removeprefix("[stub ")


@pytest.fixture(autouse=True)
def empty_state(gateway: Gateway) -> None:
    gateway.set_state()


def test_no_state_leaves_every_model_alone(gateway: Gateway, http: requests.Session) -> None:
    for model, host in MODELS.items():
        for _ in range(3):
            r, _ = gateway.ask(http, model)
            assert answered_by(r) == host
            assert r.headers.get("x-litellm-model-id") == deployment(model), r.headers


def test_divert_sends_a_to_f(gateway: Gateway, http: requests.Session) -> None:
    gateway.set_state(divert={"model-a": "model-f"})
    for _ in range(4):
        r, took = gateway.ask(http, "model-a")
        assert answered_by(r) == "stub-f"
        assert r.headers.get("x-litellm-model-id") == deployment("model-f"), r.headers
        # the body keeps the name the client asked; the model group header is the new one
        assert r.json()["model"] == "model-a", r.json()
        assert r.headers.get("x-litellm-model-group") == "model-f", r.headers
        assert took < 2, took
    r, _ = gateway.ask(http, "model-b")  # in neither map
    assert answered_by(r) == "stub-b"
    assert r.headers.get("x-litellm-model-id") == deployment("model-b")


def test_divert_applies_to_streams_and_text_completions(gateway: Gateway,
                                                        http: requests.Session) -> None:
    gateway.set_state(divert={"model-a": "model-f"})
    with chat(http, gateway.target("model-a"), stream=True, max_tokens=8) as r:
        header = r.headers.get("x-litellm-model-id")
        text = stream_text(sse_chunks(r))
    assert text.startswith("[stub stub-f]"), text
    assert header == deployment("model-f")
    r = http.post(f"{gateway.url}/v1/completions", headers=gateway.target("model-a").headers,
                  json={"model": "model-a", "prompt": "Say hello", "max_tokens": 8}, timeout=60)
    assert r.status_code == 200, r.text
    assert r.headers.get("x-litellm-model-id") == deployment("model-f"), r.headers
    assert "stub-f" in r.json()["choices"][0]["text"], r.json()


def test_a_held_request_is_answered_by_a_once_released(gateway: Gateway,
                                                       http: requests.Session) -> None:
    gateway.set_state(hold={"model-a": {"seconds": 3, "fallback": "model-f"}})
    with ThreadPoolExecutor(1) as pool:
        t0 = time.monotonic()
        held = pool.submit(gateway.ask, requests.Session(), "model-a")
        time.sleep(1.0)
        assert not held.done()
        gateway.set_state()  # released
        released_at = time.monotonic() - t0
        r, took = held.result(timeout=30)
    assert answered_by(r) == "stub-a"
    assert r.headers.get("x-litellm-model-id") == deployment("model-a"), r.headers
    # ~ the time until the release (the worker sees it within a 50 ms stat + 50 ms poll)
    assert released_at - 0.15 <= took < released_at + 0.6, (took, released_at)
    assert took < 2.5, took


def test_a_held_request_expires_to_the_fallback(gateway: Gateway,
                                                http: requests.Session) -> None:
    gateway.set_state(hold={"model-a": {"seconds": 3, "fallback": "model-f"}})
    r, took = gateway.ask(http, "model-a")
    assert answered_by(r) == "stub-f"
    assert r.headers.get("x-litellm-model-id") == deployment("model-f"), r.headers
    assert 3.0 <= took < 4.5, took


def test_a_held_request_released_into_a_divert(gateway: Gateway,
                                               http: requests.Session) -> None:
    gateway.set_state(hold={"model-a": {"seconds": 10, "fallback": None}})
    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(gateway.ask, requests.Session(), "model-a")
        time.sleep(0.5)
        gateway.set_state(divert={"model-a": "model-f"})
        r, took = held.result(timeout=30)
    assert answered_by(r) == "stub-f"
    assert r.headers.get("x-litellm-model-id") == deployment("model-f")
    assert took < 2, took


# Run inside the gateway: per process, how many established connections to port 4000 it
# holds (a held request keeps its client connection open on the worker that holds it).
CONNECTIONS_PER_PROCESS = r"""
import json, os
est = set()
for f in ("/proc/net/tcp", "/proc/net/tcp6"):
    try:
        rows = open(f).read().splitlines()[1:]
    except OSError:
        continue
    for row in rows:
        p = row.split()
        if p[1].rsplit(":", 1)[1] == "0FA0" and p[3] == "01":
            est.add(p[9])
out = {}
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
    except OSError:
        continue
    out[pid] = sum(1 for t in links if t.startswith("socket:[") and t[8:-1] in est)
print(json.dumps(out))
"""


def held_per_worker(gateway: Gateway) -> dict[str, int]:
    code, out = gateway.container.get_wrapped_container().exec_run(  # type: ignore[attr-defined]
        ["python", "-c", CONNECTIONS_PER_PROCESS])
    assert code == 0, out
    return {pid: n for pid, n in json.loads(out).items() if n}


def test_holds_do_not_delay_other_requests_on_the_same_worker(
        gateway: Gateway, http: requests.Session) -> None:
    """With requests held on both gunicorn workers (checked: each holds a client connection),
    model-b is as fast as before: a hold awaits, it does not block the worker's event loop."""
    baseline = [gateway.ask(requests.Session(), "model-b")[1] for _ in range(10)]
    gateway.set_state(hold={"model-a": {"seconds": 30, "fallback": None}})
    with ThreadPoolExecutor(32) as pool:
        held = []
        while len(held) < 32:  # until both workers hold some (the kernel picks the worker)
            held.append(pool.submit(gateway.ask, requests.Session(), "model-a"))
            time.sleep(0.1)
            per_worker = held_per_worker(gateway)
            if len(held) >= 4 and len(per_worker) >= 2:
                break
        assert len(per_worker) == 2 and sum(per_worker.values()) == len(held), per_worker
        during = []
        for _ in range(10):
            r, took = gateway.ask(requests.Session(), "model-b")  # a new connection each
            assert answered_by(r) == "stub-b"
            during.append(took)
        assert not any(f.done() for f in held)
        gateway.set_state()
        results = [f.result(timeout=30) for f in held]
    assert all(answered_by(r) == "stub-a" for r, _ in results)
    print(f"\nmodel-b latency: baseline median {statistics.median(baseline) * 1000:.0f} ms; "
          f"with {len(held)} held {per_worker}: median {statistics.median(during) * 1000:.0f}"
          f" ms, max {max(during) * 1000:.0f} ms")
    assert max(during) < 1.0, during
    assert statistics.median(during) < statistics.median(baseline) + 0.1, (baseline, during)


def test_an_invalid_state_file_fails_open(gateway: Gateway, http: requests.Session) -> None:
    path = gateway.folder / routing_callback.DEFAULT_NAME
    tmp = gateway.folder / ".broken.tmp"
    tmp.write_text('{"v": 1, "divert": {"model-a": ')
    tmp.chmod(0o644)
    os.replace(tmp, path)
    time.sleep(0.12)
    for _ in range(3):
        r, _ = gateway.ask(http, "model-a")
        assert answered_by(r) == "stub-a"
    logs = gateway.container.get_wrapped_container().logs().decode(  # type: ignore[attr-defined]
        errors="replace")
    warnings = [line for line in logs.splitlines()
                if line.startswith(routing_callback.WARNING_PREFIX) and "invalid" in line]
    assert 1 <= len(warnings) <= 2, warnings  # one per worker that saw it, not per request
