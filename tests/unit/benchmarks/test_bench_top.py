"""benchmarks/bench_top.py runs and prints every figure (small sizes; no engine: --docker
is left out)."""

from __future__ import annotations

import subprocess
import sys

from tests.paths import REPO


def test_bench_top_prints_the_cost_per_refresh():
    p = subprocess.run([sys.executable, "benchmarks/bench_top.py", "--refreshes", "3",
                        "--models", "2", "--keys", "1", "--workers", "2"],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    out = p.stdout
    assert "per refresh: 1 request(s)" in out
    assert "9 requests per refresh, 2 to the gateway" in out
    assert "gateway side of one GET /metrics/ (2 workers' files merged" in out
    assert "/metrics/ every 5s" in out and "10 instant queries per refresh" in out
