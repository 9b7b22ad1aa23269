"""`stackctl cache`: the decisions as data (key kinds, models, TTLs, the gateway's counters,
the report) and the commands on a fake Redis (tests/unit: no engine, no port but a closed
one). The real Redis and gateway: tests/integration/test_cache.py."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import pytest
import redis

from stackctl.cache.flush import flush
from stackctl.cache.keys import KeyInfo, describe, key_kind, scan, stored_model
from stackctl.cache.metrics import GatewayHits, ModelHits, gateway_hits, parse_metrics
from stackctl.cache.stats import redis_info, summarize, ttl_spread
from stackctl.cache.target import CacheError, CacheTarget, model_names
from stackctl.cli import cli

PASSWORD = "sk-unit-secret-do-not-print"
KEY = "sk-master-unit"
NS = "stackctl"
H1, H2, H3 = "a" * 64, "b" * 64, "0123456789abcdef" * 4
# what LiteLLM 1.106 writes for a chat completion (captured from the offline stack)
LITELLM_VALUE = (
    b'{"timestamp": 1795925007.615164, "response": "{\\"id\\":\\"chatcmpl-5f83\\",\\"created'
    b'\\":1795925007,\\"model\\":\\"ollama_chat/qwen2.5-coder:7b\\",\\"object\\":\\"chat.'
    b'completion\\",\\"system_fingerprint\\":null,\\"choices\\":[{\\"finish_reason\\":\\"stop'
    b'\\",\\"index\\":0,\\"message\\":{\\"content\\":\\"[stub ollama] reply to: Say hello\\",'
    b'\\"role\\":\\"assistant\\"}}],\\"usage\\":{\\"completion_tokens\\":6,\\"prompt_tokens'
    b'\\":2,\\"total_tokens\\":8}}"}')
# LiteLLM 1.106's /metrics/ after one miss and one hit (trimmed; labels as it writes them)
METRICS = """\
# HELP litellm_cache_hits_metric_total Total number of LiteLLM cache hits
# TYPE litellm_cache_hits_metric_total counter
litellm_cache_hits_metric_total{api_key_alias="None",api_provider="ollama_chat",end_user="None",\
hashed_api_key="litellm_proxy_master_key",model="qwen2.5-coder:7b",model_id="qwen2.5-coder:7b@ollama",\
team="None",team_alias="None",user="default_user_id"} 1.0
litellm_cache_hits_metric_created{model="qwen2.5-coder:7b",model_id="qwen2.5-coder:7b@ollama"} 1.79e+09
# HELP litellm_cache_misses_metric_total Total number of LiteLLM cache misses
# TYPE litellm_cache_misses_metric_total counter
litellm_requests_metric_total{api_provider="ollama_chat",client_ip="192.168.32.1",\
model="qwen2.5-coder:7b",model_id="qwen2.5-coder:7b@ollama",requested_model="qwen2.5-coder:7b",\
user_agent="curl/7.88.1"} 2.0
litellm_requests_metric_total{api_provider="openai",model="smollm2",model_id="smollm2@llama_cpp"} 3.0
litellm_proxy_total_requests_metric_total{route="/metrics/",status_code="None"} 1.0
process_start_time_seconds 1.79592499178e+09
"""


# -- a fake redis-py client -----------------------------------------------------------------

def _glob(pattern: str) -> re.Pattern[str]:
    """Redis' glob (`*`, `?`, `[…]`, `\\x` literal) as a regex."""
    out, i = "", 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            out, i = out + re.escape(pattern[i + 1]), i + 2
            continue
        out += {"*": ".*", "?": "."}.get(c, re.escape(c))
        i += 1
    return re.compile(out, re.S)


class FakeRedis:
    """The redis-py methods stackctl.cache uses, over a dict; SCAN pages `page` keys."""

    def __init__(self, keys: dict[str, tuple[bytes, int | None]] | None = None,
                 password: str = PASSWORD, page: int = 3):
        self.data = {k.encode(): v for k, v in (keys or {}).items()}
        self.password, self.page = password, page
        self.given: str | None = None
        self.unlinked: list[int] = []
        self.scans = 0
        self.gone: set[bytes] = set()
        self.hits, self.misses = 40, 10

    def __call__(self, **kwargs):  # stands in for the redis.Redis class
        self.given = kwargs.get("password")
        return self

    def ping(self) -> bool:
        if self.given != self.password:
            raise redis.AuthenticationError("WRONGPASS invalid username-password pair")
        return True

    def scan(self, cursor: int = 0, match: str | None = None, count: int | None = None):
        """Like Redis, a key present for the whole walk is returned even while others are
        deleted: the cursor counts positions in an order that deleting does not shift."""
        self.scans += 1
        order = sorted(set(self.data) | self.gone)
        page = [k for k in order[cursor:cursor + self.page] if k in self.data]
        rx = _glob(match or "*")
        nxt = cursor + self.page
        return (0 if nxt >= len(order) else nxt,
                [k for k in page if rx.fullmatch(k.decode())])

    def ttl(self, key: bytes) -> int:
        if key not in self.data:
            return -2
        ttl = self.data[key][1]
        return -1 if ttl is None else ttl

    def memory_usage(self, key: bytes) -> int | None:
        return len(key) + len(self.data[key][0]) + 50 if key in self.data else None

    def getrange(self, key: bytes, start: int, end: int) -> bytes:
        return self.data.get(key, (b"", None))[0][start:end + 1]

    def unlink(self, *keys: bytes) -> int:
        self.unlinked.append(len(keys))
        self.gone |= set(keys)
        return sum(self.data.pop(k, None) is not None for k in keys)

    def dbsize(self) -> int:
        return len(self.data)

    def info(self, section: str) -> dict:
        return {"server": {"redis_version": "7.0.15"},
                "memory": {"used_memory": 1294496, "used_memory_human": "1.23M",
                           "maxmemory": 0, "maxmemory_policy": "noeviction"},
                "stats": {"keyspace_hits": self.hits, "keyspace_misses": self.misses,
                          "evicted_keys": 0, "expired_keys": 4}}[section]

    def pipeline(self, transaction: bool = True):
        return FakePipeline(self)


class FakePipeline:
    def __init__(self, r: FakeRedis):
        self.r, self.queued = r, []

    def __getattr__(self, name: str):
        def queue(*args):
            self.queued.append((name, args))
            return self
        return queue

    def execute(self, raise_on_error: bool = True) -> list:
        return [getattr(self.r, name)(*args) for name, args in self.queued]


def fixture_keys() -> dict[str, tuple[bytes, int | None]]:
    return {f"{NS}:{H1}": (LITELLM_VALUE, 3500), f"{NS}:{H2}": (LITELLM_VALUE, 1200),
            f"{NS}:{H3}": (b'{"timestamp": 1, "response": {"model": "openai/smollm2"}}', 3000),
            f"{NS}:{{api_key:litellm_proxy_master_key}}:tokens": (b"16", 60),
            "other-app:session": (b"x", None), f"{NS}x:{H1}": (b"lookalike", None)}


def target(**kw) -> CacheTarget:
    base = dict(port=6379, namespace=NS, ttl=3600, password_env="REDIS_PASSWORD",
                env_file="/x/.env", service="redis", project="p")
    return CacheTarget(**{**base, **kw})


# -- deciding, as data ----------------------------------------------------------------------

def test_key_kind_tells_cached_responses_from_litellm_counters():
    assert key_kind(f"{NS}:{H3}", NS) == "response"
    assert key_kind(f"{NS}:{{user:default_user_id}}:tokens", NS) == "other"
    assert key_kind(f"{NS}:{H3.upper()}", NS) == "other"  # sha256 hex is lower case
    assert key_kind(f"{NS}:{H3}:x", NS) == "other"


def test_stored_model_from_litellm_value_whole_dict_or_truncated():
    assert stored_model(LITELLM_VALUE) == "ollama_chat/qwen2.5-coder:7b"
    assert stored_model(b'{"response": {"model": "hosted_vllm/q"}}') == "hosted_vllm/q"
    assert stored_model(LITELLM_VALUE[:300]) == "ollama_chat/qwen2.5-coder:7b"  # cut
    assert stored_model(b'{"timestamp": 1, "response": "{\\"id\\": 1}"}') is None
    assert stored_model(b"16") is None
    assert stored_model(b"\xff\xfe not json") is None


def test_model_names_map_the_providers_name_to_the_public_one(registry_dir, yaml_edit):
    from stackctl.registry.load import load_registry

    config = registry_dir("offline")
    names = model_names(load_registry(config))
    assert names["ollama_chat/qwen2.5-coder:7b"] == "qwen2.5-coder:7b"
    assert names["hosted_vllm/qwen-coder-vllm"] == "qwen-coder-vllm"
    assert names["openai/smollm2"] == names["smollm2"] == "smollm2"
    # a backend served under two public names cannot be told apart: the stored name stays
    yaml_edit(config / "model-mappings.yaml", lambda d: d["exact_matches"].update(
        {"coder": {"provider": "ollama", "backend_model": "qwen2.5-coder:7b"}}))
    names = model_names(load_registry(config))
    assert "ollama_chat/qwen2.5-coder:7b" not in names
    assert names["hosted_vllm/qwen-coder-vllm"] == "qwen-coder-vllm"  # the others stay


def test_ttl_spread():
    assert ttl_spread([3500, 1200, 3000, None]).model_dump() == {
        "count": 4, "min": 1200, "median": 3000, "max": 3500, "no_expiry": 1}
    assert ttl_spread([]).model_dump() == {
        "count": 0, "min": None, "median": None, "max": None, "no_expiry": 0}


def test_pattern_matches_the_namespace_literally():
    assert target().pattern == "stackctl:*"
    assert target(namespace="a*b[1]").pattern == r"a\*b\[1\]:*"
    assert _glob(target(namespace="a*b").pattern).fullmatch("a*b:x")
    assert not _glob(target(namespace="a*b").pattern).fullmatch("aXb:x")


def test_parse_metrics_reads_labels_values_and_timestamps():
    samples = parse_metrics('# HELP x y\nm_total{a="1",b="q\\"u\\\\o"} 2.5 1700000000\n'
                                "plain 3\n\nbad line here\nn{a=\"}\"} +Inf\n")
    assert [(s.name, s.labels, s.value) for s in samples] == [
        ("m_total", {"a": "1", "b": 'q"u\\o'}, 2.5), ("plain", {}, 3.0),
        ("n", {"a": "}"}, float("inf"))]


def test_gateway_hits_per_public_model_misses_from_requests_when_litellm_has_none():
    g = gateway_hits(parse_metrics(METRICS))
    assert (g.hits, g.requests, g.misses, g.ratio) == (1, 5, 4, 0.2)
    assert g.misses_from == "requests-hits"
    assert g.models == {"qwen2.5-coder:7b": ModelHits(hits=1, requests=2),
                        "smollm2": ModelHits(hits=0, requests=3)}
    assert g.since == pytest.approx(1795924991.78)
    # a LiteLLM that counts misses itself: its figure is used
    text = METRICS + 'litellm_cache_misses_metric_total{model_id="smollm2@llama_cpp"} 7.0\n'
    g = gateway_hits(parse_metrics(text))
    assert (g.hits, g.misses, g.misses_from, g.ratio) == (1, 7, "metric", 0.125)
    assert gateway_hits([]).ratio is None


def test_summarize_prefers_the_gateway_and_estimates_memory_from_the_sample():
    info = redis_info(FakeRedis())
    found = ["response", "response", "response", "other"]
    sampled = [KeyInfo(key=f"{NS}:{H1}", kind="response", ttl=3500, bytes=700, model="m1"),
               KeyInfo(key=f"{NS}:{{x}}:tokens", kind="other", ttl=60, bytes=100)]
    gw = gateway_hits(parse_metrics(METRICS))
    st = summarize(target(), info, found, True, sampled, gw)
    ns = st.namespace
    assert (ns.keys, ns.responses, ns.other, ns.sampled) == (4, 3, 1, 2)
    assert ns.bytes == 700 * 3 + 100  # mean of the sampled responses × 3, the counter × 1
    assert (ns.ttl.min, ns.ttl.max, ns.ttl.count) == (3500, 3500, 1)  # responses only
    assert (st.hits.source, st.hits.hits, st.hits.misses) == ("gateway", 1, 4)
    rows = {r.model: r for r in st.models}
    assert (rows["m1"].entries, rows["m1"].hits) == (1, None)
    assert (rows["smollm2"].entries, rows["smollm2"].requests) == (0, 3)
    # the gateway cannot be asked: Redis' server-wide counters, said to be so
    down = GatewayHits(available=False, reason="the gateway does not answer")
    st = summarize(target(), info, found, False, sampled, down)
    assert (st.hits.source, st.hits.hits, st.hits.misses, st.hits.ratio) == ("redis", 40, 10, 0.8)
    assert "server-wide" in st.hits.scope and not st.namespace.complete


# -- doing, on the fake ----------------------------------------------------------------------

def test_scan_is_bounded_by_keys_or_calls():
    r = FakeRedis({f"{NS}:{i:064x}": (b"v", 10) for i in range(10)}, page=3)
    keys, complete = scan(r, "stackctl:*")
    assert (len(keys), complete, r.scans) == (10, True, 4)
    r.scans = 0
    keys, complete = scan(r, "stackctl:*", max_keys=4)
    assert (len(keys), complete, r.scans) == (6, False, 2)
    keys, complete = scan(r, "stackctl:*", max_calls=1)
    assert (len(keys), complete) == (3, False)


def test_describe_reads_ttl_size_model_and_drops_vanished_keys():
    r = FakeRedis(fixture_keys())
    names = {"ollama_chat/qwen2.5-coder:7b": "qwen2.5-coder:7b"}
    keys = [f"{NS}:{H1}".encode(), f"{NS}:{H3}".encode(), b"stackctl:gone",
            f"{NS}:{{api_key:litellm_proxy_master_key}}:tokens".encode()]
    infos = {k.key: k for k in describe(r, keys, NS, names)}
    assert set(infos) == {f"{NS}:{H1}", f"{NS}:{H3}", f"{NS}:{{api_key:litellm_proxy_master_key}}:tokens"}
    assert (infos[f"{NS}:{H1}"].model, infos[f"{NS}:{H1}"].ttl) == ("qwen2.5-coder:7b", 3500)
    assert infos[f"{NS}:{H3}"].model == "openai/smollm2"  # not in `names`: as stored
    counter = infos[f"{NS}:{{api_key:litellm_proxy_master_key}}:tokens"]
    assert (counter.kind, counter.model, counter.ttl) == ("other", None, 60)


def test_flush_unlinks_only_the_namespace_in_batches():
    r = FakeRedis({**fixture_keys(), **{f"{NS}:{i:064x}": (b"v", 10) for i in range(7)}}, page=5)
    result = flush(r, target(), found=11, batch=2)
    assert result.deleted == 11 and result.found == 11
    assert sorted(r.data) == [b"other-app:session", f"{NS}x:{H1}".encode()]
    assert result.left_in_db == 2
    assert max(r.unlinked) <= 2


# -- the commands ---------------------------------------------------------------------------

@pytest.fixture
def stack(registry_dir, monkeypatch) -> Path:
    """The offline registry with a .env holding the secrets; no host variable shadows them."""
    config = registry_dir("offline", with_output=True)
    (config.parent / ".env").write_text(f"REDIS_PASSWORD={PASSWORD}\nLITELLM_MASTER_KEY={KEY}\n")
    for var in ("REDIS_PASSWORD", "LITELLM_MASTER_KEY", "STACKCTL_CONFIG_DIR"):
        monkeypatch.delenv(var, raising=False)
    return config


@pytest.fixture
def fake(monkeypatch) -> FakeRedis:
    r = FakeRedis(fixture_keys())
    monkeypatch.setattr(redis, "Redis", r)
    monkeypatch.setattr("stackctl.cli.cache.gateway_metrics", lambda reg, timeout=5.0: lambda: METRICS)
    return r


def run(runner, *args: str, input: str | None = None):
    return runner.invoke(cli, list(args), catch_exceptions=False, input=input)


def test_stats_text_shows_keys_memory_ttls_hits_and_models(runner, stack, fake):
    r = run(runner, "cache", "stats", "-C", str(stack))
    assert r.exit_code == 0, r.output
    out = r.output
    assert "keys     4 under 'stackctl:' (3 cached responses, 1 LiteLLM counter); 6 in the" in out
    assert "Redis uses 1.23M" in out
    assert "ttl      min 1200s, median 3000s, max 3500s (cached responses, all 3)" in out
    assert "hits     1 hit, 4 misses (20.0%): the gateway's responses (LiteLLM /metrics/" in out
    assert "Redis server-wide: 40 hits, 10 misses (80.0%)" in out
    table = {line.split()[0]: line.split() for line in out.splitlines()[-3:]}
    assert table["qwen2.5-coder:7b"][1] == "2" and table["qwen2.5-coder:7b"][-1] == "50.0%"
    assert table["smollm2"][1] == "1" and table["smollm2"][-3:] == ["0", "3", "0.0%"]
    assert fake.given == PASSWORD and PASSWORD not in out


def test_stats_json_and_redis_counters_when_the_gateway_cannot_be_asked(runner, stack, fake,
                                                                       monkeypatch):
    def refused():
        raise CacheError("the gateway refused LITELLM_MASTER_KEY on http://127.0.0.1:4000/metrics/")

    monkeypatch.setattr("stackctl.cli.cache.gateway_metrics", lambda reg, timeout=5.0: refused)
    r = run(runner, "cache", "stats", "-C", str(stack), "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["hits"]["source"] == "redis" and doc["hits"]["ratio"] == 0.8
    assert "server-wide" in doc["hits"]["scope"]
    assert doc["gateway"] == {**doc["gateway"], "available": False,
                              "reason": "the gateway refused LITELLM_MASTER_KEY on "
                                        "http://127.0.0.1:4000/metrics/"}
    assert doc["namespace"]["responses"] == 3 and doc["target"]["password_env"] == "REDIS_PASSWORD"
    assert PASSWORD not in r.output and KEY not in r.output
    text = run(runner, "cache", "stats", "-C", str(stack)).output
    assert "Redis server-wide, every key and client" in text
    assert "the gateway's own counters are unavailable: the gateway refused" in text


def test_stats_sample_and_scan_limit_bound_the_reading(runner, stack, fake):
    fake.page = 2
    r = run(runner, "cache", "stats", "-C", str(stack), "--json", "--sample", "1",
            "--scan-limit", "1")
    doc = json.loads(r.output)
    assert doc["namespace"]["complete"] is False and doc["namespace"]["sampled"] <= 2
    text = run(runner, "cache", "stats", "-C", str(stack), "--sample", "1").output
    assert "(entries and memory per model: a sample of 2 of 4 keys, --sample)" in text
    assert "namespace ≈" in text


def test_watch_refreshes_until_ctrl_c_which_exits_0(runner, stack, fake, monkeypatch):
    calls = []

    def sleep(seconds: float) -> None:
        calls.append(seconds)
        if len(calls) == 2:
            fake.data[f"{NS}:{'c' * 64}".encode()] = (LITELLM_VALUE, 3600)
        if len(calls) == 3:
            raise KeyboardInterrupt

    import stackctl.cli.cache as cli_cache

    monkeypatch.setattr(cli_cache, "_sleep", sleep)
    r = run(runner, "cache", "stats", "-C", str(stack), "--watch", "0.5", "--json")
    assert r.exit_code == 0, r.output
    docs = [json.loads(line) for line in r.output.splitlines()]
    assert [d["namespace"]["responses"] for d in docs] == [3, 3, 4] and calls == [0.5] * 3
    calls.clear()
    r = run(runner, "cache", "stats", "-C", str(stack), "--watch")  # no value: every 2 s
    assert r.exit_code == 0 and calls == [2.0] * 3
    assert r.output.count("every 2s, Ctrl-C stops") == 3


def test_watch_keeps_going_when_redis_goes_away(runner, stack, fake, monkeypatch):
    import stackctl.cli.cache as cli_cache

    n = []

    def sleep(seconds: float) -> None:
        n.append(1)
        if len(n) == 1:
            fake.scan = lambda **kw: (_ for _ in ()).throw(redis.ConnectionError("refused"))
        if len(n) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(cli_cache, "_sleep", sleep)
    r = run(runner, "cache", "stats", "-C", str(stack), "--watch", "1", "--json")
    lines = [json.loads(line) for line in r.output.splitlines()]
    assert r.exit_code == 0 and lines[1]["ok"] is False
    assert "no Redis answers on 127.0.0.1:6379" in lines[1]["error"]


def test_keys_lists_responses_first_with_model_ttl_size_and_honours_limit(runner, stack, fake):
    r = run(runner, "cache", "keys", "-C", str(stack))
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[0].split() == ["key", "kind", "model", "ttl", "size"]
    rows = [line.split() for line in lines[1:-1]]
    assert [row[0] for row in rows] == [f"{NS}:{H1}", f"{NS}:{H3}", f"{NS}:{H2}",
                                        f"{NS}:{{api_key:litellm_proxy_master_key}}:tokens"]
    assert rows[0][1:4] == ["response", "qwen2.5-coder:7b", "3500s"]
    assert rows[1][2] == "smollm2"  # stored as openai/smollm2: the registry's public name
    assert rows[3][1:4] == ["other", "-", "60s"]
    assert lines[-1] == "4 keys under 'stackctl:' in Redis 127.0.0.1:6379"
    assert "other-app" not in r.output and "stackctlx" not in r.output
    r = run(runner, "cache", "keys", "-C", str(stack), "--limit", "2", "--json")
    doc = json.loads(r.output)
    assert len(doc["keys"]) == 2 and doc["more"] is True
    assert {"key", "kind", "ttl", "bytes", "model"} == set(doc["keys"][0])


def test_flush_without_yes_and_without_a_terminal_refuses(runner, stack, fake):
    r = run(runner, "cache", "flush", "-C", str(stack))
    assert r.exit_code == 1
    assert "refusing to delete 4 keys under 'stackctl:' in Redis 127.0.0.1:6379 without " \
           "confirmation: no terminal to ask on; pass --yes" in r.output
    assert len(fake.data) == 6 and fake.unlinked == []


def test_flush_asks_on_a_terminal_declined_keeps_everything(runner, stack, fake, monkeypatch):
    import stackctl.cli.cache as cli_cache

    monkeypatch.setattr(cli_cache, "_interactive", lambda: True)
    r = run(runner, "cache", "flush", "-C", str(stack), input="n\n")
    assert r.exit_code == 1, r.output
    assert "Delete 4 keys under 'stackctl:' in Redis 127.0.0.1:6379" in r.output
    assert "flush declined: nothing was deleted" in r.output and len(fake.data) == 6
    r = run(runner, "cache", "flush", "-C", str(stack), input="y\n")
    assert r.exit_code == 0, r.output
    assert "deleted 4 keys under 'stackctl:'" in r.output and len(fake.data) == 2
    assert "note: the gateway may still answer recent requests from its own memory" in r.output


def test_flush_yes_deletes_only_the_namespace(runner, stack, fake):
    r = run(runner, "cache", "flush", "-C", str(stack), "--yes", "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert (doc["ok"], doc["found"], doc["deleted"], doc["left_in_db"]) == (True, 4, 4, 2)
    # what a Redis flush cannot reach is said, with the way to drop it
    assert doc["note"].endswith("until it restarts: docker restart stackctl-offline-litellm-1")
    assert sorted(fake.data) == [b"other-app:session", f"{NS}x:{H1}".encode()]
    r = run(runner, "cache", "flush", "-C", str(stack))  # nothing left: no question
    assert r.exit_code == 0 and "nothing to flush: no keys under 'stackctl:'" in r.output


def test_config_dir_before_cache_or_before_the_subcommand(runner, stack, fake, tmp_path):
    assert run(runner, "-C", str(stack), "cache", "keys").exit_code == 0
    assert run(runner, "cache", "-C", str(stack), "keys").exit_code == 0
    r = run(runner, "cache", "-C", str(tmp_path / "nowhere"), "keys", "-C", str(stack))
    assert r.exit_code == 0, r.output


# -- clear errors ---------------------------------------------------------------------------

def test_cache_disabled(runner, stack, yaml_edit, fake):
    yaml_edit(stack / "stack.yaml", lambda d: d["cache"].update({"enabled": False}))
    for sub in ("stats", "keys", "flush"):
        r = run(runner, "cache", sub, "-C", str(stack))
        assert r.exit_code == 1
        assert "the cache is disabled in stack.yaml (cache.enabled: false)" in r.output


def test_cache_not_published(runner, stack, yaml_edit, fake):
    yaml_edit(stack / "stack.yaml", lambda d: d["cache"].update({"host_port": None}))
    r = run(runner, "cache", "stats", "-C", str(stack), "--json")
    assert r.exit_code == 1
    assert "cache.host_port: null" in json.loads(r.stdout)["error"]


def test_wrong_password_names_the_variable_never_the_value(runner, stack, fake, monkeypatch):
    fake.password = "the-one-redis-was-started-with"
    r = run(runner, "cache", "stats", "-C", str(stack))
    assert r.exit_code == 1
    assert "refused the password in REDIS_PASSWORD" in r.output
    assert str(stack.parent / ".env") in r.output and "`stackctl up`" in r.output
    assert PASSWORD not in r.output and fake.password not in r.output
    monkeypatch.setenv("REDIS_PASSWORD", "from-the-shell")
    r = run(runner, "cache", "keys", "-C", str(stack))
    assert "refused the password in REDIS_PASSWORD (the environment)" in r.output
    assert "from-the-shell" not in r.output


def test_password_missing_from_env_file(runner, stack, fake):
    (stack.parent / ".env").write_text(f"LITELLM_MASTER_KEY={KEY}\n")
    r = run(runner, "cache", "flush", "-C", str(stack), "--yes")
    assert r.exit_code == 1
    assert "REDIS_PASSWORD is not set in" in r.output and "`stackctl up` creates it" in r.output
    (stack.parent / ".env").write_text(f'REDIS_PASSWORD="{PASSWORD}\n')  # unterminated quote
    r = run(runner, "cache", "stats", "-C", str(stack))
    assert r.exit_code == 1 and "cannot read REDIS_PASSWORD from" in r.output
    assert PASSWORD not in r.output


def test_redis_not_running_names_the_service_and_stackctl_up(runner, stack, yaml_edit):
    with socket.socket() as s:  # a port nothing listens on (real redis-py, refused at once)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    yaml_edit(stack / "stack.yaml", lambda d: d["cache"].update({"host_port": port}))
    r = run(runner, "cache", "stats", "-C", str(stack))
    assert r.exit_code == 1
    assert f"no Redis answers on 127.0.0.1:{port} (service 'redis' of stack " \
           "'stackctl-offline'): start the stack with `stackctl up`" in r.output
    assert "Traceback" not in r.output


def test_help_lists_the_exit_codes(runner):
    for sub in ((), ("stats",), ("keys",), ("flush",)):
        r = run(runner, "cache", *sub, "--help")
        assert r.exit_code == 0
        codes = re.findall(r"^\s+(\d+)\s", r.output.split("Exit codes:")[1], re.M)
        assert codes == ["0", "1", "2", "130"], (sub, r.output)
    assert "--watch [SECONDS]" in run(runner, "cache", "stats", "--help").output
