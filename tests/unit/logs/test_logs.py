"""`stackctl logs` and the gateway's request lines (issue 10).

The callback module (stackctl/incontainer/trace_callback.py, generated as
compose/litellm/stackctl_trace.py) is exercised three ways: its pure record builders with
kwargs shaped like those LiteLLM 1.106 passes (seen on the real gateway), the proxy's own
loader (`get_instance_fn`) on the generated file, and a real `litellm.Router` falling back.
The reading side (stackctl/logs/records.py) is tested as data; the command through CliRunner
with the fake Docker adapter.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from stackctl.cli import cli
from stackctl.errors import PlanError
from stackctl.incontainer import trace_callback as tc
from stackctl.logs.records import (
    RequestFilter,
    RequestLogOptions,
    RequestRecord,
    Widths,
    check_services,
    docker_since,
    format_record,
    gateway_container,
    last,
    model_hint,
    parse_line,
    parse_since,
    request_records,
    widths_for,
)
from stackctl.registry.load import load_registry
from tests.fakes.docker import FakeDocker

OFFLINE = "examples/offline/config"
GATEWAY = "stackctl-offline-litellm-1"
T0 = 1_795_925_100.0  # 2026-11-29 04:05:00 UTC
SECRET_KEY = "sk-live-should-never-appear"
PROMPT = "the secret prompt text"
ANSWER = "the private answer text"


# -- what LiteLLM hands the callback (shapes seen on the real gateway) -------------------------

def success_kwargs(asked: str = "dolphin-uncensored-vllm", group: str = "qwen2.5-coder:7b",
                   deployment: str = "qwen2.5-coder:7b@ollama", fallbacks: int = 1,
                   cache_hit: bool | None = None, call_id: str = "call-1",
                   end: float = T0 + 2.8) -> dict:
    meta = {"user_api_key": SECRET_KEY, "user_api_key_hash": "hash",
            "litellm_received_at": datetime.fromtimestamp(T0, tz=UTC),
            "attempted_retries": 0, "model_info": {"id": deployment},
            "original_model_group": asked, "model_group": group,
            "attempted_fallbacks": fallbacks, "headers": {"authorization": f"Bearer {SECRET_KEY}"}}
    return {
        "litellm_call_id": call_id, "model": group, "stream": False, "api_key": SECRET_KEY,
        "messages": [{"role": "user", "content": PROMPT}],
        "original_response": json.dumps({"message": {"content": ANSWER}}),
        "litellm_params": {"metadata": meta, "api_key": SECRET_KEY},
        "standard_logging_object": {
            "litellm_call_id": call_id, "status": "success", "model_group": group,
            "model_id": deployment, "startTime": end - 0.0075, "endTime": end,
            "prompt_tokens": 2, "completion_tokens": 6, "cache_hit": cache_hit,
            "messages": [{"role": "user", "content": PROMPT}],
            "response": {"choices": [{"message": {"content": ANSWER}}]},
            "metadata": {"user_api_key_hash": "hash"}},
    }


class ServiceUnavailable(Exception):
    status_code = 503


def failure_request_data(asked: str = "qwen-coder-vllm") -> dict:
    return {"model": asked, "litellm_call_id": "call-9", "api_key": SECRET_KEY,
            "messages": [{"role": "user", "content": PROMPT}],
            "metadata": {"litellm_received_at": datetime.fromtimestamp(T0, tz=UTC),
                         "model_group": asked, "original_model_group": asked,
                         "attempted_fallbacks": 0, "attempted_retries": 1,
                         "model_info": {"id": f"{asked}@vllm-qwen"}, "user_api_key": SECRET_KEY},
            "start_time": datetime.fromtimestamp(T0, tz=UTC)}


def record(**over) -> RequestRecord:
    doc = {"time": T0, "call_id": "c", "status": "success", "model": "smollm2",
           "model_group": "smollm2", "deployment": "smollm2@llama_cpp", "latency_ms": 12.3,
           "tokens_in": 32, "tokens_out": 8, "http_status": 200}
    return RequestRecord.model_validate({**doc, **over})


# -- the callback: records ----------------------------------------------------------------------

def test_a_request_answered_by_a_fallback_says_so():
    rec = tc.success_record(success_kwargs())
    assert list(rec) == list(tc.FIELDS)
    assert rec["status"] == "success" and rec["http_status"] == 200
    assert rec["model"] == "dolphin-uncensored-vllm"  # asked
    assert rec["model_group"] == "qwen2.5-coder:7b"  # answered
    assert rec["deployment"] == "qwen2.5-coder:7b@ollama"
    assert rec["fallback"] is True and rec["attempted_fallbacks"] == 1
    assert rec["latency_ms"] == 2800.0  # since the gateway received it, not the last hop
    assert rec["upstream_ms"] == 7.5
    assert (rec["tokens_in"], rec["tokens_out"]) == (2, 6)
    assert rec["time"] == round(T0 + 2.8, 3) and rec["call_id"] == "call-1"


def test_a_request_the_routing_callback_diverted_is_a_fallback_from_the_model_asked():
    """Diverted before the router saw it (its member sleeps or is switched out): the router
    only knows the fallback model, the routing callback's metadata the one asked."""
    kwargs = success_kwargs(asked="qwen2.5-coder:7b", fallbacks=0)
    kwargs["litellm_params"]["metadata"]["stackctl_routing"] = {
        "asked": "dolphin-uncensored-vllm", "action": "diverted", "held_ms": 0}
    rec = tc.success_record(kwargs)
    assert rec["model"] == "dolphin-uncensored-vllm" and rec["model_group"] == "qwen2.5-coder:7b"
    assert rec["fallback"] is True and rec["attempted_fallbacks"] == 0


def test_a_request_answered_by_its_own_model_is_no_fallback():
    kwargs = success_kwargs(asked="smollm2", group="smollm2", deployment="smollm2@llama_cpp",
                            fallbacks=0, cache_hit=True)
    rec = tc.success_record(kwargs)
    assert rec["fallback"] is False and rec["attempted_fallbacks"] == 0
    assert rec["model"] == rec["model_group"] == "smollm2" and rec["cache_hit"] is True


def test_a_failed_request_names_the_error_class_and_status():
    rec = tc.failure_record(failure_request_data(), ServiceUnavailable("upstream said no"),
                            now=T0 + 4.7)
    assert rec["status"] == "failure" and rec["http_status"] == 503
    assert rec["error"] == "ServiceUnavailable"
    assert rec["model"] == "qwen-coder-vllm" and rec["deployment"] == "qwen-coder-vllm@vllm-qwen"
    assert rec["attempted_retries"] == 1 and rec["latency_ms"] == 4700.0
    assert rec["tokens_in"] is None and rec["fallback"] is False


def test_a_proxy_error_with_a_string_code_and_no_routing():
    class ProxyException(Exception):
        code = "400"

    rec = tc.failure_record({"model": "nosuch", "metadata": {}}, ProxyException("bad"), now=T0)
    assert (rec["http_status"], rec["error"], rec["model"]) == (400, "ProxyException", "nosuch")
    assert rec["deployment"] is None and rec["latency_ms"] is None


def test_lines_hold_no_content_and_no_key():
    lines = [tc.line(tc.success_record(success_kwargs())),
             tc.line(tc.failure_record(failure_request_data(), ServiceUnavailable(PROMPT)))]
    for text in lines:
        assert text.startswith(tc.PREFIX) and "\n" not in text
        for secret in (SECRET_KEY, PROMPT, ANSWER, "hash", "Bearer"):
            assert secret not in text, (secret, text)


def test_odd_kwargs_never_raise():
    assert tc.success_record({})["status"] == "success"
    assert tc.success_record({"standard_logging_object": "junk", "litellm_params": None,
                              "metadata": ["x"]})["model"] is None
    assert tc.failure_record({}, RuntimeError())["error"] == "RuntimeError"


def test_a_line_reads_back_as_the_same_record():
    rec = tc.success_record(success_kwargs())
    parsed = parse_line(tc.line(rec))
    assert parsed is not None
    assert parsed.model_dump() == {k: v for k, v in rec.items() if k != "v"}


# -- the callback inside LiteLLM ----------------------------------------------------------------

@pytest.fixture(scope="module")
def litellm():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "true")  # no network at import
        import litellm as mod
    return mod


def test_the_proxy_loads_the_generated_module_beside_its_config(litellm, tmp_path):
    """The gateway's own loader, on the file `generate` writes: an instance of LiteLLM's
    CustomLogger, so the proxy sends it the success and failure events."""
    from litellm.integrations.custom_logger import CustomLogger
    from litellm.proxy.types_utils.utils import get_instance_fn

    from stackctl.registry.vocabulary import TRACE_FILE
    from stackctl.render.callbacks import module_text
    from stackctl.render.litellm import TRACE_CALLBACK

    folder = tmp_path / "litellm"
    folder.mkdir()
    (folder / "config.yaml").write_text("model_list: []\n")
    (tmp_path / TRACE_FILE).write_text(module_text("trace_callback.py"))
    callback = get_instance_fn(TRACE_CALLBACK, config_file_path=str(folder / "config.yaml"))
    assert isinstance(callback, CustomLogger)
    assert type(callback).async_post_call_failure_hook is not \
        CustomLogger.async_post_call_failure_hook


def test_a_router_fallback_logs_one_line_naming_both_models(litellm, capsys):
    """A real litellm.Router: `primary` refuses connections (127.0.0.1:9), its fallback
    `backup` answers (mock). One line, for the request as a whole. `general`, an alias of
    `backup`, is no fallback."""
    callback = tc._make_callback()
    router = litellm.Router(
        model_list=[
            {"model_name": "primary", "model_info": {"id": "primary@down"},
             "litellm_params": {"model": "openai/primary", "api_key": "none",
                                "api_base": "http://127.0.0.1:9/v1"}},
            {"model_name": "backup", "model_info": {"id": "backup@up"},
             "litellm_params": {"model": "openai/backup", "api_key": "none",
                                "mock_response": "hello"}},
        ],
        fallbacks=[{"primary": ["backup"]}], model_group_alias={"general": "backup"},
        num_retries=0)

    async def ask(model: str) -> list[str]:
        before = list(litellm.callbacks)
        litellm.callbacks = [*before, callback]
        try:
            await router.acompletion(model=model, max_tokens=4,
                                     messages=[{"role": "user", "content": PROMPT}])
            for _ in range(100):  # success events are dispatched after the answer
                await asyncio.sleep(0.05)
                out = capsys.readouterr().out
                lines = [x for x in out.splitlines() if x.startswith(tc.PREFIX)]
                if lines:
                    await asyncio.sleep(0.3)  # a second line would show up by now
                    return lines + [x for x in capsys.readouterr().out.splitlines()
                                    if x.startswith(tc.PREFIX)]
            return []
        finally:
            litellm.callbacks = before

    lines = asyncio.run(ask("primary"))
    assert len(lines) == 1, lines
    rec = parse_line(lines[0])
    assert rec is not None and rec.ok
    assert (rec.model, rec.model_group, rec.deployment) == ("primary", "backup", "backup@up")
    assert rec.fallback and rec.attempted_fallbacks == 1
    assert PROMPT not in lines[0] and "hello" not in lines[0]

    # an alias is answered by its model's deployment, and that is no fallback
    (text,) = asyncio.run(ask("general"))
    rec = parse_line(text)
    assert rec is not None and (rec.model, rec.deployment) == ("general", "backup@up")
    assert not rec.fallback and rec.attempted_fallbacks == 0


# -- reading lines ------------------------------------------------------------------------------

def test_parse_line_finds_the_record_behind_docker_and_compose_prefixes():
    line = tc.line(tc.success_record(success_kwargs()))
    for text in (line, "2026-11-29T04:05:39.960123456Z " + line, "litellm-1  | " + line):
        rec = parse_line(text)
        assert rec is not None and rec.deployment == "qwen2.5-coder:7b@ollama", text
    for text in ("", "INFO:     127.0.0.1 - \"GET /health/liveliness HTTP/1.1\" 200 OK",
                 tc.PREFIX + "{not json", tc.PREFIX + "[1, 2]",
                 tc.PREFIX + json.dumps({"time": T0, "status": "maybe"})):
        assert parse_line(text) is None, text


def test_filters():
    fb = record(model="dolphin-uncensored-vllm", model_group="qwen2.5-coder:7b",
                deployment="qwen2.5-coder:7b@ollama", fallback=True)
    err = record(status="failure", model="qwen-coder-vllm", model_group="qwen-coder-vllm",
                 deployment="qwen-coder-vllm@vllm-qwen", http_status=500, time=T0 + 60)
    plain = record(time=T0 + 120)
    recs = [fb, err, plain]

    def kept(**kw) -> list[RequestRecord]:
        flt = RequestFilter(**kw)
        return [r for r in recs if flt.matches(r)]

    assert kept() == recs
    assert kept(errors_only=True) == [err]
    assert kept(models=("dolphin-uncensored-vllm",)) == [fb]  # asked
    assert kept(models=("qwen2.5-coder:7b",)) == [fb]  # answered (model group)
    assert kept(models=("qwen2.5-coder:7b@ollama",)) == [fb]  # answered (deployment)
    assert kept(models=("smollm2", "qwen-coder-vllm")) == [err, plain]
    assert kept(since=T0 + 30) == [err, plain]
    assert kept(since=T0 + 30, errors_only=True, models=("smollm2",)) == []
    assert last(recs, None) == recs and last(recs, 2) == [err, plain] and last(recs, 0) == []


@pytest.mark.parametrize(("text", "back"), [("90s", 90), ("10m", 600), ("1h30m", 5400),
                                            ("2d", 172800), ("0.5h", 1800)])
def test_since_durations(text, back):
    assert parse_since(text, now=T0) == T0 - back


def test_since_times():
    assert parse_since("1795925100", now=0) == T0
    assert parse_since("2026-11-29T04:05:00Z", now=0) == T0
    assert parse_since("2026-11-29 05:05:00+01:00", now=0) == T0
    local = datetime(2026, 11, 29, 4, 5).timestamp()  # no zone: local time
    assert parse_since("2026-11-29T04:05", now=0) == local
    assert parse_since("2026-11-29", now=0) == datetime(2026, 11, 29).timestamp()
    for bad in ("yesterday", "10 minutes", "5x", ""):
        with pytest.raises(ValueError, match="neither a duration .* nor a time"):
            parse_since(bad, now=T0)
    assert docker_since(T0 + 0.25) == "1795925100.250000"


def test_text_lines_line_up_and_mark_fallbacks():
    widths = Widths(model=23, deployment=26)
    utc = UTC
    fb = format_record(record(model="dolphin-uncensored-vllm", model_group="smollm2",
                              deployment="smollm2@llama_cpp", fallback=True,
                              attempted_fallbacks=2, latency_ms=6104.0), widths, tz=utc)
    one = format_record(record(model="qwen-coder-vllm", model_group="qwen2.5-coder:7b",
                               deployment="qwen2.5-coder:7b@ollama", fallback=True,
                               attempted_fallbacks=1), widths, tz=utc)
    ok = format_record(record(cache_hit=True, stream=True, time=T0 + 0.5), widths, tz=utc)
    err = format_record(record(status="failure", deployment="qwen-coder-vllm@vllm-qwen",
                               model="qwen-coder-vllm", http_status=500, latency_ms=None,
                               attempted_retries=1, error="InternalServerError"), widths, tz=utc)
    assert fb.startswith("2026-11-29 04:05:00.000  dolphin-uncensored-vllm  → smollm2@llama_cpp")
    assert "FALLBACK×2" in fb and "6104 ms" in fb and "tokens 32→8" in fb
    assert "FALLBACK " in one and "×" not in one.split("FALLBACK")[1].split()[0]
    assert "cached stream" in ok and "04:05:00.500" in ok and "FALLBACK" not in ok
    assert "✗ qwen-coder-vllm@vllm-qwen" in err and "retried×1" in err
    assert err.endswith("InternalServerError") and " 500 " in err and "- ms" in err
    # columns line up whatever the names' lengths
    for mark in ("→", " 200 "):
        assert fb.index(mark) == ok.index(mark), mark
    assert fb.index("→") == err.index("✗")


def test_widths_come_from_the_registry(registry_dir):
    reg = load_registry(registry_dir("offline"))
    w = widths_for(reg)
    assert w.model == len("dolphin-uncensored-vllm")
    assert w.deployment == len("dolphin-uncensored-vllm@vllm-dolphin")


def test_service_names_are_checked_with_a_hint(registry_dir):
    reg = load_registry(registry_dir("offline"))
    assert check_services(reg, ["litellm", "redis", "litellm"]) == ["litellm", "redis"]
    with pytest.raises(PlanError, match=r"no service 'litelm' in this stack; did you mean "
                                        r"'litellm'\? \(services: litellm, redis, "):
        check_services(reg, ["litelm"])
    assert model_hint(reg, "smollm2") is None
    assert model_hint(reg, "qwen2.5-coder:7b@ollama") is None
    assert model_hint(reg, "smollm") == "no model 'smollm' in the registry (did you mean " \
                                        "'smollm2'?)"


# -- reading the gateway's log (fake Docker) ----------------------------------------------------

def gateway(state: str = "running") -> FakeDocker:
    docker = FakeDocker(project="stackctl-offline", running={"litellm": {}})
    docker.state["litellm"].state = state
    return docker


def log_line(rec: RequestRecord) -> str:
    doc = {"v": 1, **rec.model_dump()}
    return "2026-11-29T04:05:00.000000000Z " + tc.PREFIX + json.dumps(doc)


def test_history_then_follow_without_duplicates():
    docker = gateway()
    old = [record(call_id=f"h{i}", time=T0 + i) for i in range(5)]
    failed = record(call_id="h5", time=T0 + 5, status="failure", http_status=500)
    docker.log_text = {GATEWAY: ["INFO: noise", *map(log_line, old), log_line(failed)]}
    new = record(call_id="n1", time=T0 + 9)
    # the follow re-reads from a little before the history was read: h4, h5 come again
    docker.log_new = {GATEWAY: [log_line(old[4]), log_line(failed), "noise", log_line(new)]}
    opts = RequestLogOptions(tail=2, follow=True, filter=RequestFilter(since=T0 + 1))
    got = list(request_records(docker, GATEWAY, opts, clock=lambda: T0 + 6))
    assert [r.call_id for r in got] == ["h4", "h5", "n1"]
    reads = [c for c in docker.calls if c[0] == "log_lines"]
    assert reads == [("log_lines", GATEWAY, docker_since(T0 + 1), False, None),
                     ("log_lines", GATEWAY, docker_since(T0 + 6 - 2.0), True, None)]


def test_history_only_keeps_the_newest_matching():
    docker = gateway()
    recs = [record(call_id=f"c{i}", time=T0 + i, status="failure" if i % 2 else "success",
                   http_status=500 if i % 2 else 200) for i in range(6)]
    docker.log_text = {GATEWAY: [log_line(r) for r in recs]}
    opts = RequestLogOptions(tail=2, filter=RequestFilter(errors_only=True))
    assert [r.call_id for r in request_records(docker, GATEWAY, opts)] == ["c3", "c5"]
    assert all(not c[3] for c in docker.calls if c[0] == "log_lines")  # never followed


def test_the_gateway_must_have_a_container_and_run_to_be_followed():
    with pytest.raises(PlanError, match=r"has no container: run `stackctl up`"):
        gateway_container(FakeDocker(project="stackctl-offline"), follow=False)
    stopped = gateway("exited")
    assert gateway_container(stopped, follow=False) == (GATEWAY, False)
    with pytest.raises(PlanError, match=r"is not running \(exited\).*drop -f/--follow"):
        gateway_container(stopped, follow=True)


# -- the command --------------------------------------------------------------------------------

@pytest.fixture
def offline(registry_dir) -> Path:
    return registry_dir("offline", with_output=True)


@pytest.fixture
def fake(monkeypatch) -> FakeDocker:
    docker = gateway()
    fb = record(call_id="a", model="dolphin-uncensored-vllm", model_group="qwen2.5-coder:7b",
                deployment="qwen2.5-coder:7b@ollama", fallback=True, attempted_fallbacks=1,
                latency_ms=2776.6, tokens_in=2, tokens_out=6)
    err = record(call_id="b", time=T0 + 1, status="failure", model="qwen-coder-vllm",
                 model_group="qwen-coder-vllm", deployment="qwen-coder-vllm@vllm-qwen",
                 http_status=500, error="InternalServerError", tokens_in=None, tokens_out=None)
    plain = record(call_id="c", time=T0 + 2)
    docker.log_text = {GATEWAY: [log_line(r) for r in (fb, err, plain)]}
    monkeypatch.setattr("stackctl.docker.adapter.Docker", lambda *a, **k: docker)
    return docker


def run(runner, *args: str):
    return runner.invoke(cli, ["logs", "-C", OFFLINE, *args], catch_exceptions=False)


def test_requests_as_text(runner, offline, fake):
    r = run(runner, "--requests")
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert len(lines) == 3, r.stdout
    assert "dolphin-uncensored-vllm  → qwen2.5-coder:7b@ollama" in lines[0]
    assert "FALLBACK" in lines[0] and "2777 ms" in lines[0] and "tokens 2→6" in lines[0]
    assert "✗ qwen-coder-vllm@vllm-qwen" in lines[1] and "InternalServerError" in lines[1]
    assert "FALLBACK" not in lines[2]


def test_requests_as_json_lines(runner, offline, fake):
    r = run(runner, "--requests", "--json", "--model", "dolphin-uncensored-vllm")
    assert r.exit_code == 0, r.output
    docs = [json.loads(x) for x in r.stdout.splitlines()]
    assert len(docs) == 1
    doc = docs[0]
    assert doc["time"] == "2026-11-29T04:05:00.000Z" and doc["fallback"] is True
    assert (doc["model"], doc["deployment"]) == ("dolphin-uncensored-vllm",
                                                  "qwen2.5-coder:7b@ollama")
    assert set(doc) == set(RequestRecord.model_fields)


def test_errors_and_tail_and_unknown_model(runner, offline, fake):
    r = run(runner, "--requests", "--errors")
    assert r.exit_code == 0 and len(r.stdout.splitlines()) == 1 and "✗" in r.stdout
    r = run(runner, "--requests", "-n", "1")
    assert r.exit_code == 0 and len(r.stdout.splitlines()) == 1 and "smollm2" in r.stdout
    r = run(runner, "--requests", "--model", "smollm")
    assert r.exit_code == 0, r.output
    assert r.stdout == ""
    assert "warning: no model 'smollm' in the registry (did you mean 'smollm2'?)" in r.stderr


def test_requests_since_is_passed_on_and_applied(runner, offline, fake):
    r = run(runner, "--requests", "--since", "2026-11-29T04:05:01Z")
    assert r.exit_code == 0, r.output
    assert len(r.stdout.splitlines()) == 2
    assert ("log_lines", GATEWAY, docker_since(T0 + 1), False, None) in fake.calls


def test_no_gateway_container_fails_with_1(runner, offline, fake):
    fake.state.clear()
    r = run(runner, "--requests")
    assert r.exit_code == 1 and "has no container: run `stackctl up`" in r.stderr
    r = run(runner, "--requests", "--json")
    assert r.exit_code == 1
    assert json.loads(r.stdout) == {"ok": False, "exit_code": 1, "error": (
        "the gateway (service litellm) has no container: run `stackctl up`")}


def test_a_stopped_gateway_is_read_but_not_followed(runner, offline, fake):
    fake.state["litellm"].state = "exited"
    r = run(runner, "--requests")
    assert r.exit_code == 0 and len(r.stdout.splitlines()) == 3
    assert "is not running: its last log follows" in r.stderr
    r = run(runner, "--requests", "-f")
    assert r.exit_code == 1 and "is not running (exited)" in r.stderr


def test_no_engine_exits_4(runner, offline, fake, monkeypatch):
    def unreachable(*a, **k):
        from stackctl.docker.adapter import EngineUnreachable

        raise EngineUnreachable("no Docker engine answers (Cannot connect to the Docker daemon)")

    monkeypatch.setattr(fake, "containers", unreachable)
    monkeypatch.setattr(fake, "service_log_lines", unreachable)
    assert run(runner, "--requests").exit_code == 4
    assert run(runner, "litellm").exit_code == 4


def test_no_engine_and_no_env_file_exits_4_naming_the_engine(runner, offline, fake):
    # before any `up` there is no .env: Compose fails on its variables before it asks the
    # engine, so that error must not stand for the missing engine (it exited 1)
    from stackctl.docker.adapter import DockerError

    def interpolation_fails(*a, **k):  # type: ignore[no-untyped-def]
        raise DockerError("docker compose logs: required variable REDIS_PASSWORD is missing "
                          "a value: set REDIS_PASSWORD in .env")
    fake.engine = None
    fake.service_log_lines = interpolation_fails  # type: ignore[method-assign]
    for args in ((), ("litellm",)):
        r = run(runner, *args)
        assert r.exit_code == 4, r.output
        assert "no Docker engine answers" in r.stderr and "REDIS_PASSWORD" not in r.stderr


def test_service_logs_through_compose(runner, offline, fake):
    r = run(runner, "litellm", "redis", "-f", "-n", "5", "-t", "--since", "10m")
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines() == ["litellm-1  | log of litellm", "redis-1  | log of redis"]
    (call,) = [c for c in fake.calls if c[0] == "service_log_lines"]
    assert call[1:3] == (("litellm", "redis"), True) and call[4:] == (5, True)
    since = float(call[3])
    assert abs(since - (datetime.now(UTC) - timedelta(minutes=10)).timestamp()) < 60


def test_unknown_service_exits_1_with_a_hint(runner, offline, fake):
    r = run(runner, "litelm")
    assert r.exit_code == 1
    assert "no service 'litelm' in this stack; did you mean 'litellm'?" in r.stderr
    assert not [c for c in fake.calls if c[0] == "service_log_lines"]


@pytest.mark.parametrize("args", [("--model", "smollm2"), ("--errors",), ("--json",),
                                  ("--requests", "litellm"), ("--requests", "-t"),
                                  ("--since", "yesterday"), ("-n", "-1")])
def test_usage_errors_exit_2(runner, offline, fake, args):
    r = run(runner, *args)
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output


def test_help_lists_the_exit_codes(runner):
    r = runner.invoke(cli, ["logs", "--help"], catch_exceptions=False)
    assert r.exit_code == 0
    for line in ("Exit codes:", "  0 ", "  1 ", "  2 ", "  4 ", "  130 "):
        assert line in r.output, line
    assert "--requests" in r.output and "FALLBACK" in r.output
