"""Hostile registries: the classes of issue #22 (tests/hostile_cases.py: one change each to
the offline example, judged against what a careful operator expects), then thousands of
seeded edits of both shipped registries through `validate` and `generate`
(tests/mutations.py), counted by outcome: accepted, refused with
located errors, and every broken promise by kind (a traceback by exception type, an
unlocated error, a leaked secret, files changed by a failing run, a slow run).

Run: python benchmarks/bench_hostile.py [--runs N] [--edits K] [--classes-only]
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
from tests import hostile_cases  # noqa: E402
from tests.mutations import judge, load, mutate  # noqa: E402


def by_class(tmp: Path) -> None:
    """Each case of tests/hostile_cases.py: accepted dangerous, leaked, traceback, unlocated."""
    base = hostile_cases.load_offline()
    kinds: dict[str, Counter[str]] = {}
    examples: dict[str, str] = {}
    for case in hostile_cases.CASES:
        v = hostile_cases.judge(case, tmp / "case", base)
        row = kinds.setdefault(case.kind, Counter())
        row["cases"] += 1
        for k in v.kinds:
            row[k] += 1
            examples.setdefault(k, case.id)
    total: Counter[str] = sum(kinds.values(), Counter())
    print(f"hostile cases by class: {total['cases']}")
    for kind, row in kinds.items():
        bad = ", ".join(f"{k} {n}" for k, n in row.items() if k != "cases") or "all handled"
        print(f"  {kind:<14} {row['cases']:3} cases: {bad}")
    for k in ("accepted dangerous", "secret or escape leaked", "unlocated refusal"):
        print(f"  {k}: {total[k]}" + (f"   e.g. {examples[k]}" if total[k] else ""))
    crashes = sum(n for k, n in total.items() if k.startswith("traceback"))
    print(f"  tracebacks: {crashes}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=1500, help="mutated registries per registry")
    ap.add_argument("--edits", type=int, default=3, help="at most this many edits each")
    ap.add_argument("--classes-only", action="store_true", help="only the cases by class")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        by_class(Path(tmp))
    if args.classes_only:
        return
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
