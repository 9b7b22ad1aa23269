"""The generated gateway (gunicorn workers, Redis cache and metrics callbacks on) against a
default single-worker LiteLLM (bare config, same image), both in front of the same
inference stub, at concurrency 1, 8 and 16, interleaved in one run.

Every request has its own prompt: the generated gateway pays a cache lookup and write on
each, as in real use, and never answers from the cache. Target: ≥ 1.5× the default's
requests/s at concurrency 16, and no slower sequential requests (p50 at concurrency 1).

The load comes from wrk (Debian's package; `make bench` installs it) when it is there: a
Python client on the same 2 cores saturates near 125 requests/s, below what two gateway
workers serve, and would hide the difference. Without wrk a Python client is used, and the
figures say so.

Run: python benchmarks/bench_gateway.py [--requests N] [--rounds R] [--seconds S]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
import uuid
from pathlib import Path

import requests
from common import median, offline_copy, stackctl, verdict
from python_on_whales import docker

MODEL = "qwen-coder-vllm"
DEFAULT_PORT = 14900
BARE = f"""model_list:
  - model_name: {MODEL}
    litellm_params: {{model: hosted_vllm/{MODEL}, api_base: "http://vllm-qwen:8000/v1", api_key: none}}
general_settings:
  master_key: os.environ/LITELLM_MASTER_KEY
"""


def load(url: str, key: str, concurrency: int, total: int) -> tuple[float, float, int]:
    """(requests/s, p50 latency s, failures) for `total` requests on `concurrency` threads."""
    latencies: list[float] = []
    failures = 0
    lock = threading.Lock()
    left = iter(range(total))

    def worker() -> None:
        nonlocal failures
        session = requests.Session()
        while True:
            with lock:
                if next(left, None) is None:
                    return
            body = {"model": MODEL, "max_tokens": 8,
                    "messages": [{"role": "user", "content": f"bench {uuid.uuid4()}"}]}
            t = time.perf_counter()
            try:
                ok = session.post(f"{url}/v1/chat/completions", json=body, timeout=120,
                                  headers={"Authorization": f"Bearer {key}"}).ok
            except requests.RequestException:
                ok = False
            with lock:
                latencies.append(time.perf_counter() - t)
                failures += not ok

    start = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return total / (time.perf_counter() - start), median(latencies), failures


WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %s"
n = 0
request = function()
  n = n + 1
  local body = '{"model":"%s","max_tokens":8,"messages":[{"role":"user","content":"bench '
    .. math.random(1, 1000000000) .. ' ' .. n .. '"}]}'
  return wrk.format(nil, "/v1/chat/completions", nil, body)
end
"""


def wrk_load(url: str, key: str, concurrency: int, seconds: float) -> tuple[float, float, int]:
    """(requests/s, p50 latency s, non-2xx answers) from wrk."""
    import re
    import subprocess

    script = Path(tempfile.mkdtemp(prefix="stackctl-wrk-")) / "post.lua"
    script.write_text(WRK_SCRIPT % (key, MODEL))
    out = subprocess.run(["wrk", f"-t{min(2, concurrency)}", f"-c{concurrency}",
                          f"-d{seconds:g}s", "--latency", "-s", str(script), url],
                         capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    value, unit = re.search(r"\s50%\s+([\d.]+)(us|ms|s)", out).groups()
    p50 = float(value) / {"us": 1e6, "ms": 1e3, "s": 1}[unit]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return rps, p50, int(bad.group(1)) if bad else 0


def wait_ready(url: str, key: str) -> None:
    for _ in range(600):
        try:
            if requests.get(f"{url}/v1/models", headers={"Authorization": f"Bearer {key}"},
                            timeout=2).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise SystemExit(f"{url} never became ready")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=160, help="requests per measurement")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (medians)")
    ap.add_argument("--seconds", type=float, default=8, help="wrk: seconds per measurement")
    args = ap.parse_args()
    import shutil

    use_wrk = shutil.which("wrk") is not None
    print("load: " + ("wrk" if use_wrk else "a Python client (no wrk: figures capped near "
                      "125 requests/s by the client)"))
    project = "stackctl-bench-gw"
    cfg = offline_copy(project)
    stackctl("up", "-C", str(cfg), "-p", "vllm-qwen")
    from stackctl.store.envfile import read_env

    key = read_env(cfg.parent / ".env")["LITELLM_MASTER_KEY"]
    bare = Path(tempfile.mkdtemp(prefix="stackctl-bare-")) / "config.yaml"
    bare.write_text(BARE)
    default = docker.run(
        "stackctl-local/litellm:1.106.2", ["--config", "/app/config.yaml", "--port", "4000"],
        detach=True, remove=True, name=f"{project}-default-gateway",
        networks=[f"{project}_default"], publish=[(f"127.0.0.1:{DEFAULT_PORT}", 4000)],
        envs={"LITELLM_MASTER_KEY": key, "LITELLM_LOCAL_MODEL_COST_MAP": "true"},
        volumes=[(bare, "/app/config.yaml", "ro")])
    gateways = {"default (1 worker, bare)": f"http://127.0.0.1:{DEFAULT_PORT}",
                "generated (stackctl)": "http://127.0.0.1:4000"}
    try:
        for url in gateways.values():
            wait_ready(url, key)
            load(url, key, 4, 20)  # warm both
        results: dict[tuple[str, int], list[tuple[float, float, int]]] = {}
        for _ in range(args.rounds):
            for c in (1, 8, 16):
                n = args.requests if c > 1 else max(20, args.requests // 4)
                for name, url in gateways.items():
                    results.setdefault((name, c), []).append(
                        wrk_load(url, key, c, args.seconds) if use_wrk else load(url, key, c, n))
        print(f"{'gateway':28} {'c':>3} {'req/s':>7} {'p50 ms':>7} failed   (medians of "
              f"{args.rounds} rounds)")
        summary = {}
        for (name, c), runs in results.items():
            rps = median([r[0] for r in runs])
            p50 = median([r[1] for r in runs])
            summary[(name, c)] = (rps, p50)
            print(f"{name:28} {c:>3} {rps:7.1f} {1000 * p50:7.1f} {sum(r[2] for r in runs)}")
        names = list(gateways)
        for c in (1, 8, 16):
            ratio = summary[(names[1], c)][0] / summary[(names[0], c)][0]
            print(f"concurrency {c}: generated/default requests/s ratio {ratio:.2f}")
        print(verdict("default/generated requests/s at 16 (inverse of the ratio)",
                      summary[(names[0], 16)][0] / summary[(names[1], 16)][0], 1 / 1.5))
        print(verdict("generated/default p50 at concurrency 1",
                      summary[(names[1], 1)][1] / summary[(names[0], 1)][1], 1.1))
    finally:
        default.remove(force=True)
        stackctl("down", "-C", str(cfg), "--volumes", check=False)


if __name__ == "__main__":
    main()
