"""What one refresh of `stackctl top` costs: requests, bytes and milliseconds.

    python benchmarks/bench_top.py [--refreshes N] [--models M] [--keys K] [--workers W]
                                   [--docker]

Three parts, measured apart (no stack is started, no container touched):

  metrics   top's own request: GET /metrics/ over a keep-alive session from a local HTTP
            server serving a LiteLLM-like exposition (tests/fakes/top.py: the real names,
            label sets and latency buckets; M models x K API keys, W gateway workers),
            then parsed, folded per model and turned into figures: the whole collect()
            with `status` faked, reading on every refresh (top itself reads /metrics
            every METRICS_EVERY = 5 s). Reports ms per read (median, p95), bytes.
  status    `status`'s collection (targets/compose_status.py) that top reuses, with the
            fake Docker adapter (every service running) and `requests` answered in
            process: how many requests per refresh, to whom (the gateway's share), and
            the Python time around them.
  gateway   (needs prometheus_client, the dev extra) what one GET /metrics/ costs the
            gateway itself: LiteLLM serves it with prometheus_client's MultiProcessCollector
            over its workers' files (PROMETHEUS_MULTIPROC_DIR), so the same series are
            written by W worker processes here and rendered the same way; also the gzip
            size (requests asks for gzip, prometheus_client's ASGI app compresses).
  docker    (--docker) one `docker container ls` of the adapter, for a project that has
            no containers, on the machine's engine (read-only): the engine's share.

Prints the figures and the gateway's load at one refresh per second.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from stackctl.registry.load import load_registry  # noqa: E402
from stackctl.top.collect import METRICS_EVERY, Collector, Sources  # noqa: E402
from stackctl.top.live import http_getter  # noqa: E402
from stackctl.top.prom import QUERIES  # noqa: E402
from tests.fakes.docker import FakeDocker  # noqa: E402
from tests.fakes.top import Load, exposition, stack_status  # noqa: E402
from tests.paths import CONFIGS  # noqa: E402


def serve(text: str) -> tuple[ThreadingHTTPServer, Counter]:
    body = text.encode()
    sent: Counter = Counter()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the real gateway (uvicorn)

        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            sent["requests"] += 1
            sent["bytes"] += len(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, sent


def timed(fn: Callable[[], object], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def p95(values: list[float]) -> float:
    return sorted(values)[max(0, round(0.95 * len(values)) - 1)]


def bench_metrics(reg, args) -> dict:
    loads = {f"model-{i}": Load(latencies=[0.05 * (1 + j % 20) for j in range(400)],
                                ttfts=[0.02] * 100, failed=3, output_tokens=50_000,
                                rerouted={"held": 4, "diverted": 2})
             for i in range(args.models)}
    text = exposition(loads, keys=args.keys, workers=args.workers, in_flight=2)
    server, sent = serve(text)
    status = stack_status(reg, {"vllm-dolphin": "asleep"})
    src = Sources(status=lambda: status, get=http_getter(), routing=dict,
                  switches=list, clock=time.time,
                  gateway_url=f"http://127.0.0.1:{server.server_address[1]}", gateway_key="k")
    collector = Collector(reg, src, metrics_every=0)  # every refresh reads: its full cost
    collector.collect()  # the session's connection, the first reading
    sent.clear()
    ms = timed(collector.collect, args.refreshes)
    server.shutdown()
    return {"ms": ms, "requests": sent["requests"] / args.refreshes,
            "bytes": sent["bytes"] / args.refreshes, "lines": text.count("\n")}


class Answer:
    """A canned `requests` response."""

    def __init__(self, url: str):
        self.url, self.status_code, self.ok, self.text = url, 200, True, "I'm alive!"

    def json(self) -> dict:
        if "/api/v1/alerts" in self.url:
            return {"status": "success", "data": {"alerts": []}}
        if "/is_sleeping" in self.url:
            return {"is_sleeping": False}
        if "/api/tags" in self.url:
            return {"models": [{"name": "qwen2.5-coder:7b"}]}
        return {"data": [{"id": "m"}]}


def bench_status(reg, args) -> dict:
    from stackctl.targets.compose_status import collect_status

    running = {name: {} for name, p in reg.providers.providers.items() if p.enabled and p.container}
    docker = FakeDocker(project=reg.stack.project, running={"litellm": {}, "redis": {},
                                                            "prometheus": {}, **running})
    asked: Counter = Counter()
    lock = threading.Lock()

    def answer(*a, **k):  # requests.get(url, ...) and requests.request(method, url, ...)
        url = a[1] if len(a) > 1 else a[0] if a else k["url"]
        with lock:
            asked[url.split("/")[2] + " " + "/" + "/".join(url.split("/")[3:])] += 1
        return Answer(url)

    with mock.patch("requests.get", answer), mock.patch("requests.request", answer), \
            mock.patch("stackctl.targets.compose_status._redis_ping", lambda *a: True):
        ms = timed(lambda: collect_status(reg, docker, timeout=0.8), args.refreshes)
    per = {url: n / args.refreshes for url, n in asked.items()}
    gateway = f"127.0.0.1:{reg.stack.gateway.host_port}"
    return {"ms": ms, "per": per, "gateway": sum(n for u, n in per.items() if u.startswith(gateway))}


WORKER = r"""
import sys
from prometheus_client import Counter, Gauge, Histogram
models, keys = int(sys.argv[1]), int(sys.argv[2])
caller = ["api_key_alias", "hashed_api_key", "team", "team_alias", "user", "end_user"]
req = Counter("litellm_proxy_total_requests_metric", "x", ["requested_model", *caller,
              "model_id", "api_provider", "route", "user_agent", "client_ip", "status_code"])
lat = Histogram("litellm_request_total_latency_metric", "x", ["requested_model", "model",
                "model_group", *caller], buckets=BUCKETS)
ttft = Histogram("litellm_llm_api_time_to_first_token_metric", "x", ["requested_model",
                 "model", "model_group", *caller], buckets=BUCKETS)
out = Counter("litellm_output_tokens_metric", "x", ["requested_model", "model", *caller])
Gauge("litellm_in_flight_requests", "x", multiprocess_mode="all").set(1)
for m in range(models):
    for k in range(keys):
        who = [f"key{k}", f"{k:064x}", "None", "None", "None", "None"]
        req.labels(f"model-{m}", *who, f"model-{m}@p", "openai", "/chat/completions",
                   "python-requests", "172.18.0.1", "200").inc(100)
        for v in (0.05, 0.2, 0.9, 3.0):
            lat.labels(f"model-{m}", f"model-{m}", f"model-{m}", *who).observe(v)
            ttft.labels(f"model-{m}", f"model-{m}", f"model-{m}", *who).observe(v / 10)
        out.labels(f"model-{m}", f"model-{m}", *who).inc(1000)
"""


def bench_gateway(args) -> dict | None:
    """The gateway's side of one GET /metrics/: MultiProcessCollector over W workers."""
    import gzip
    import os
    import subprocess
    import tempfile

    try:
        from prometheus_client import CollectorRegistry, generate_latest
        from prometheus_client.multiprocess import MultiProcessCollector
    except ImportError:
        return None
    from tests.fakes.top import BUCKETS

    folder = tempfile.mkdtemp(prefix="stackctl-bench-top-")
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": folder}
    code = WORKER.replace("BUCKETS", repr(tuple(b for b in BUCKETS if b != float("inf"))))
    for _ in range(args.workers):
        subprocess.run([sys.executable, "-c", code, str(args.models), str(args.keys)],
                       env=env, check=True)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=folder)
    body = generate_latest(registry)
    ms = timed(lambda: generate_latest(registry), max(10, args.refreshes // 2))
    return {"ms": ms, "bytes": len(body), "gzip": len(gzip.compress(body)),
            "lines": body.count(b"\n")}


def bench_docker(reg, n: int) -> list[float]:
    from stackctl.docker.adapter import Docker

    docker = Docker(None, "stackctl-bench-top-no-such-project")
    docker.containers()
    return timed(docker.containers, n)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--refreshes", type=int, default=50)
    ap.add_argument("--models", type=int, default=6)
    ap.add_argument("--keys", type=int, default=5, help="API keys (LiteLLM labels by key)")
    ap.add_argument("--workers", type=int, default=4, help="gateway workers (gauges per pid)")
    ap.add_argument("--docker", action="store_true", help="also time `docker container ls`")
    args = ap.parse_args()
    reg = load_registry(CONFIGS["offline"])

    m = bench_metrics(reg, args)
    print(f"metrics: {args.models} models x {args.keys} keys, {args.workers} workers: "
          f"{m['lines']} lines, {m['bytes'] / 1024:.1f} KiB per GET /metrics/")
    print(f"  per refresh: {m['requests']:.0f} request(s), {m['bytes'] / 1024:.1f} KiB, "
          f"collect() {statistics.median(m['ms']):.1f} ms median, {p95(m['ms']):.1f} ms p95 "
          f"(HTTP on loopback + parse + figures; status faked)")
    s = bench_status(reg, args)
    print(f"status (reused, offline registry, every service running): "
          f"{sum(s['per'].values()):.0f} requests per refresh, {s['gateway']:.0f} to the gateway; "
          f"Python around them {statistics.median(s['ms']):.1f} ms median")
    for url, n in sorted(s["per"].items()):
        print(f"    {n:g} x GET {url}")
    g = bench_gateway(args)
    if g is None:
        print("gateway: prometheus_client is not installed (the dev extra has it)")
    else:
        print(f"gateway side of one GET /metrics/ ({args.workers} workers' files merged, "
              f"{g['lines']} lines): {statistics.median(g['ms']):.1f} ms median, "
              f"{p95(g['ms']):.1f} ms p95 of one core; {g['bytes'] / 1024:.1f} KiB, "
              f"{g['gzip'] / 1024:.1f} KiB gzipped on the wire")
    if args.docker:
        d = bench_docker(reg, max(5, args.refreshes // 5))
        print(f"docker: `docker container ls` via the adapter {statistics.median(d):.0f} ms "
              f"median, {p95(d):.0f} ms p95 (one per refresh)")
    every = METRICS_EVERY
    print(f"gateway load at 1 refresh/s without Prometheus: {s['gateway'] + 1 / every:.1f} "
          f"requests/s (/health/liveliness and /v1/models each refresh, /metrics/ every "
          f"{every:g}s)" + (f": /metrics {statistics.median(g['ms']) / every / 10:.2f}% of "
                            f"one core ({statistics.median(g['ms']) / 10:.1f}% if read every "
                            "second)" if g else ""))
    print(f"with Prometheus running: {s['gateway']:.0f} requests/s (top asks Prometheus, "
          f"{len(QUERIES) + 1} instant queries per refresh, instead of the gateway's /metrics)")


if __name__ == "__main__":
    main()
