"""Running a bench: the warm-ups, then each concurrency's cells, requests sent by one thread
per concurrent client through an injected `send(target, prompt)`."""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Callable

from stackctl.bench.report import BenchOptions, Cell, Target
from stackctl.bench.stats import Sample, summarize

TOPICS = ("the sea", "a lighthouse", "bread", "a cat", "winter", "a train", "the moon", "rain",
          "a library", "mountains", "a garden", "coffee", "a bridge", "snow", "a violin")


def prompt(run: str, i: int) -> str:
    """Request i's prompt: varied (and tagged with the run), so no cache answers it."""
    return f"[{run}-{i}] Write a few sentences about {TOPICS[i % len(TOPICS)]}."


Send = Callable[[Target, str], Sample]


def run_cell(target: Target, concurrency: int, n: int, send: Send, run: str, first: int,
             advance: Callable[[], None] = lambda: None, stop: threading.Event | None = None,
             clock: Callable[[], float] = time.perf_counter) -> Cell:
    """`n` requests by `concurrency` threads (at most n); prompts first … first+n-1."""
    stop = stop or threading.Event()
    counter = itertools.count()
    lock = threading.Lock()
    samples: list[Sample] = []

    def worker() -> None:
        while not stop.is_set():
            with lock:
                i = next(counter)
            if i >= n:
                return
            s = send(target, prompt(run, first + i))
            with lock:
                samples.append(s)
            advance()

    threads = [threading.Thread(target=worker, daemon=True, name=f"bench-{k}")
               for k in range(min(concurrency, n))]
    t0 = clock()
    for t in threads:
        t.start()
    try:
        for t in threads:
            while t.is_alive():
                t.join(0.2)
    except KeyboardInterrupt:
        stop.set()
        raise
    return summarize(target, concurrency, samples, clock() - t0)


def run_bench(targets: list[Target], opts: BenchOptions, send: Send,
              on_cell: Callable[[str], None] = lambda label: None,
              advance: Callable[[], None] = lambda: None,
              stop: threading.Event | None = None) -> tuple[list[Cell], list[str]]:
    """Model after model: the warm-up of each of its routes, then at each concurrency one cell
    per route in turn, so gateway and direct see the same machine load (a drifting load
    would otherwise show up as gateway overhead). Returns the cells (per model, route,
    concurrency) and the problems: a target whose warm-up failed is not measured, one whose
    every request failed is named."""
    run = uuid.uuid4().hex[:6]
    cells: list[Cell] = []
    problems: list[str] = []
    counter = 0
    by_model: dict[str, list[Target]] = {}
    for t in targets:
        by_model.setdefault(t.model, []).append(t)

    def where(t: Target) -> str:
        return f"{t.model} via {t.route}" + (f" ({t.provider})" if t.provider else "")

    for group in by_model.values():
        live = []
        for target in group:
            on_cell(f"{where(target)}: warm-up")
            warm = send(target, prompt(run, counter))
            counter += 1
            advance()
            if warm.ok:
                live.append(target)
                continue
            problems.append(f"{where(target)}: unreachable ({warm.error}); not measured")
            for _ in range(len(opts.concurrency) * opts.requests):
                advance()
        measured: dict[int, list[Cell]] = {id(t): [] for t in live}
        for c in opts.concurrency:
            for target in live:
                on_cell(f"{where(target)} c={c}")
                measured[id(target)].append(
                    run_cell(target, c, opts.requests, send, run, counter, advance, stop))
                counter += opts.requests
        for target in live:
            mine = measured[id(target)]
            if not any(c.ok for c in mine):
                first = next((e for c in mine for e in c.error_samples), "?")
                problems.append(f"{where(target)}: every request failed (e.g. {first})")
            cells += mine
    return cells, problems
