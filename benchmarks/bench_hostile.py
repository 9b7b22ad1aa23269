"""Hostile registries: thousands of seeded edits of both shipped registries through
`validate` and `generate` (tests/mutations.py), counted by outcome: accepted, refused with
located errors, and every broken promise by kind (a traceback by exception type, an
unlocated error, a leaked secret, files changed by a failing run, a slow run).

Run: python benchmarks/bench_hostile.py [--runs N] [--edits K]
"""

from __future__ import annotations

import argparse
import copy
import random
import statistics
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.mutations import judge, load, mutate  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=1500, help="mutated registries per registry")
    ap.add_argument("--edits", type=int, default=3, help="at most this many edits each")
    args = ap.parse_args()
    outcomes: Counter[str] = Counter()
    broken: Counter[str] = Counter()
    examples: dict[str, str] = {}
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        for registry in ("offline", "shipped"):
            base = load(registry)
            for seed in range(args.runs):
                rnd = random.Random(seed)
                files = copy.deepcopy(base)
                what = mutate(files, rnd, rnd.randint(1, args.edits))
                v = judge(files, Path(tmp) / "stack", registry)
                times.append(v.seconds)
                outcomes["accepted" if v.exit_codes[0] == 0 else "refused"] += 1
                kinds = ([f"traceback {v.crash.split(':')[0]}"] if v.crash else []) + \
                    (["unlocated error"] if v.unlocated else []) + \
                    (["secret leaked"] if v.leaked else []) + \
                    (["files changed by a failing run"] if v.changed_by_failure else []) + \
                    ([f"exit {v.exit_codes}"] if not set(v.exit_codes) <= {0, 1} else []) + \
                    (["slower than 10 s"] if v.seconds > 10 else [])
                for k in kinds:
                    broken[k] += 1
                    examples.setdefault(k, f"{registry} seed {seed}: {'; '.join(what)}")
    total = sum(outcomes.values())
    print(f"registries tried: {total} ({args.runs} per registry, 1-{args.edits} edits each)")
    print(f"  accepted {outcomes['accepted']}, refused with located errors "
          f"{outcomes['refused']}")
    print(f"  run time: median {statistics.median(times) * 1000:.0f} ms, "
          f"max {max(times) * 1000:.0f} ms")
    print(f"broken promises: {sum(broken.values())}")
    for kind, n in broken.most_common():
        print(f"  {n:5}  {kind}   e.g. {examples[kind]}")


if __name__ == "__main__":
    main()
