"""stackctl bench: latency, TTFT, tokens/s and throughput of the stack's models, through the
gateway and (--direct) straight to their providers, over a concurrency sweep."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from stackctl.bench.compare import compare, load_report
from stackctl.bench.plan import UnknownModels, plan_targets
from stackctl.bench.report import BenchOptions, BenchReport
from stackctl.bench.run import run_bench
from stackctl.bench.sender import HttpSender
from stackctl.bench.stats import overheads, sweeps
from stackctl.cli.common import (
    FAILED,
    OK,
    Failed,
    Say,
    config_dir_option,
    echo_json,
    exit_codes,
    json_errors,
    load_or_fail,
)
from stackctl.gateway.client import Gateway
from stackctl.health.probes import checks
from stackctl.store.envfile import EnvFileError, compose_value


class Concurrency(click.ParamType):
    """`1,2,4,8`: the sweep's concurrency steps."""

    name = "LIST"

    def convert(self, value, param, ctx):  # type: ignore[no-untyped-def]
        if isinstance(value, list):
            return value
        try:
            steps = [int(part) for part in str(value).split(",") if part.strip()]
        except ValueError:
            self.fail(f"{value!r} is not a comma-separated list of whole numbers "
                      "(e.g. 1,2,4,8)", param, ctx)
        if not steps or any(s < 1 for s in steps):
            self.fail(f"{value!r}: each concurrency must be 1 or more (e.g. 1,2,4,8)", param, ctx)
        return sorted(set(steps))


@click.command(epilog=exit_codes({
    OK: "every model answered (the table shows any single failed request)",
    FAILED: "an unknown or unreachable model, a model × route whose every request\n"
            "       failed, a regression found by --compare; also: registry errors,\n"
            "       the gateway not answering, an unreadable --compare file",
}))
@config_dir_option
@click.option("-m", "--model", "models", multiple=True, metavar="MODEL",
              help="Model to measure (repeatable; an alias works too). Default: every model "
                   "whose provider is running (the output says which).")
@click.option("--direct", is_flag=True,
              help="Also send the requests straight to each model's provider (its port on "
                   "127.0.0.1, OpenAI-compatible /v1, its own model name) and show the "
                   "gateway's overhead: p50 difference and ratio.")
@click.option("-c", "--concurrency", type=Concurrency(), default="1,2,4,8", show_default=True,
              help="Concurrent clients of each step of the sweep, comma-separated.")
@click.option("-n", "--requests", type=click.IntRange(min=1), default=20, show_default=True,
              help="Requests per model × route × concurrency (after one warm-up request "
                   "per model × route, not counted).")
@click.option("--max-tokens", type=click.IntRange(min=1), default=64, show_default=True,
              help="max_tokens of every request.")
@click.option("--stream", is_flag=True,
              help="Stream the answers (SSE) and measure time to first token.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=60,
              show_default=True, help="Seconds one request may take.")
@click.option("--compare", "compare_file", metavar="FILE",
              type=click.Path(path_type=Path),  # checked by the command: exit 1, not 2
              help="An earlier `bench --json` output: flag the cells that got worse.")
@click.option("--threshold", type=click.FloatRange(min=0), default=10.0, show_default=True,
              help="With --compare: percent by which a metric must get worse to count as a "
                   "regression (times also by more than 1 ms; errors: any rise).")
@click.option("--json", "as_json", is_flag=True,
              help="Print the results as JSON (every cell, knees, overhead, comparison; never "
                   "the key); no progress bar.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no notes: the results "
              "and errors only.")
@click.option("-v", "--verbose", is_flag=True, help="Also show which deployment answered each "
              "cell's requests, each cell's first errors and every metric --compare compared.")
@json_errors
def bench(config_dir: Path, models: tuple[str, ...], direct: bool, concurrency: list[int],
          requests: int, max_tokens: int, stream: bool, timeout: float,
          compare_file: Path | None, threshold: float, as_json: bool, quiet: bool,
          verbose: bool) -> None:
    """Measure the stack's models: latency p50/p95/p99, time to first token (--stream),
    tokens/s (per request and aggregate) and requests/s, over a concurrency sweep with its
    knee marked (the last concurrency where more clients still bring ≥ 10 % more requests/s
    while p50 latency grows less than the number of clients).

    Requests go through the gateway (its response cache bypassed, every prompt different);
    with --direct also straight to each provider. Compare runs with `--json > before.json`
    and, later, `--compare before.json`.
    """
    say = Say(quiet, verbose, as_json)
    opts = BenchOptions(models=list(models), direct=direct, concurrency=concurrency,
                        requests=requests, max_tokens=max_tokens, stream=stream,
                        timeout=timeout)
    old = _old_report(compare_file)
    reg = load_or_fail(config_dir)
    report = _measure(reg, opts, say, progress=not (as_json or quiet))
    if old is not None and compare_file is not None:
        report.comparison = compare(old, report, threshold, file=str(compare_file))
    regressions = report.comparison.regressions if report.comparison else 0
    report.ok = not report.problems and not regressions
    if as_json:
        doc = report.model_dump(mode="json")
    else:
        _print(report, verbose)
    if report.ok:
        if as_json:
            echo_json(doc)
        return
    why = list(report.problems)
    if regressions:
        why.append(f"{regressions} regression(s) against {compare_file}")
    raise Failed("; ".join(why), FAILED, doc=doc if as_json else None)


def _old_report(path: Path | None):  # type: ignore[no-untyped-def]
    """Read --compare's file before measuring anything: a bad file fails at once."""
    if path is None:
        return None
    if not path.is_file():
        raise Failed(f"--compare {path}: " + ("is a folder, not a file" if path.is_dir() else
                     "no such file") + " (write one with `stackctl bench --json > "
                     "before.json`, then compare with `--compare before.json`)")
    try:
        return load_report(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise Failed(f"--compare {path}: cannot read it ({exc})") from None
    except ValueError as exc:
        raise Failed(f"--compare {path}: {exc}") from None


def _measure(reg, opts, say: Say, progress: bool):  # type: ignore[no-untyped-def]
    env = reg.stack.gateway.master_key_env
    try:
        key = compose_value(reg.env_file, env)
    except (EnvFileError, OSError) as exc:
        raise Failed(f"cannot read {env} from {reg.env_file}: {exc}") from None
    if not key:
        raise Failed(f"{env} is not set in {reg.env_file} or the environment: "
                     "start the stack with `stackctl up` (it creates the key)")
    url = f"http://127.0.0.1:{reg.stack.gateway.host_port}"
    if not Gateway(url, key).live(timeout=3):
        raise Failed(f"the gateway at {url} does not answer /health/liveliness: start the "
                     "stack with `stackctl up`")
    providers = {n for n, p in reg.providers.providers.items() if p.enabled and p.container}
    probes = {n: c for n, c in checks(reg).items() if n in providers}
    with ThreadPoolExecutor(max_workers=max(1, len(probes))) as pool:
        passed = {n: pool.submit(c) for n, c in probes.items()}
        running = {n for n, f in passed.items() if f.result()}
    try:
        targets, notes = plan_targets(reg, opts, url, running)
    except UnknownModels as exc:
        raise Failed(str(exc)) from None
    for note in notes:
        say.progress(note)
    if not targets:
        raise Failed("no provider of any model is running: start the stack (`stackctl up`) "
                     "or name models with --model")
    started = datetime.now(UTC).isoformat(timespec="seconds")
    send = HttpSender(opts, key)
    total = len(targets) * (1 + len(opts.concurrency) * opts.requests)
    if progress:
        bar = Progress(TextColumn("{task.description:<40}"), BarColumn(), MofNCompleteColumn(),
                       TimeElapsedColumn(), console=Console(stderr=True), transient=True)
        with bar:
            task = bar.add_task("bench", total=total)
            cells, problems = run_bench(
                targets, opts, send,
                on_cell=lambda label: bar.update(task, description=label),
                advance=lambda: bar.advance(task))
    else:
        cells, problems = run_bench(targets, opts, send, on_cell=say.detail)
    knees = sweeps(cells)
    return BenchReport(ok=not problems, started_at=started, gateway=url, options=opts,
                       targets=targets, cells=cells, sweeps=knees, overhead=overheads(cells),
                       notes=notes, problems=problems)


def _ms(x: float | None) -> str:
    return "-" if x is None else (f"{x:.1f}" if x < 100 else f"{x:.0f}")


def _print(report, verbose: bool) -> None:  # type: ignore[no-untyped-def]
    console = Console(highlight=False, soft_wrap=True)  # lines are not wrapped
    if not console.is_terminal:  # piped or redirected: wide enough for every column
        console = Console(highlight=False, soft_wrap=True, width=max(console.width, 120))
    o = report.options
    console.print(f"bench via {report.gateway}: {o.requests} requests per cell, max_tokens "
                  f"{o.max_tokens}, {'streaming' if o.stream else 'not streaming'}; times in ms")
    table = Table("model", "route", "c", "n", "err", "ttft p50", "p50", "p95", "p99",
                  "tok/s req", "tok/s", "req/s", "", box=None)
    last = None
    for c in report.cells:
        lat = c.latency_ms
        first = (c.model, c.route) != last
        last = (c.model, c.route)
        table.add_row(c.model if first else "", c.route if first else "", str(c.concurrency),
                      str(c.requests), f"[red]{c.errors}[/]" if c.errors else "0",
                      _ms(c.ttft_ms.p50 if c.ttft_ms else None), _ms(lat and lat.p50),
                      _ms(lat and lat.p95), _ms(lat and lat.p99),
                      "-" if c.tokens_per_s_request is None else f"{c.tokens_per_s_request:.1f}",
                      f"{c.tokens_per_s:.1f}", f"{c.requests_per_s:.2f}",
                      "[bold]◀ knee[/]" if c.knee else "")
    console.print(table)
    for t in report.targets:
        if t.route == "direct":
            console.print(f"{t.model} direct: {t.provider} at {t.url} as {t.backend!r}")
    for s in report.sweeps:
        if s.knee is not None and s.beyond_sweep:
            console.print(f"{s.model} {s.route}: every step scaled; not saturated at c={s.knee}")
    for ov in report.overhead:
        console.print(f"gateway overhead {ov.model} c={ov.concurrency}: p50 "
                      f"{ov.diff_ms:+.1f} ms ({ov.gateway_p50_ms:.1f} vs "
                      f"{ov.direct_p50_ms:.1f}" + (f", ×{ov.ratio:.2f})" if ov.ratio else ")"))
    if verbose:
        for c in report.cells:
            detail = []
            if c.served_by:
                detail.append("answered by " + ", ".join(f"{k} ×{v}"
                                                         for k, v in c.served_by.items()))
            if c.error_samples:
                detail.append("errors: " + "; ".join(c.error_samples))
            if detail:
                console.print(f"  {c.model} {c.route} c={c.concurrency}: " + "; ".join(detail))
    elif any(c.errors for c in report.cells):
        console.print("some requests failed: -v shows the first errors of each cell")
    cmp = report.comparison
    if cmp is not None:
        console.print(f"compared with {cmp.file} (threshold {cmp.threshold_pct:g}%): "
                      f"{cmp.regressions} regression(s) in {len(cmp.deltas)} metrics")
        for note in cmp.notes + cmp.not_compared:
            console.print(f"  note: {note}")
        for d in cmp.deltas:
            if d.regression or verbose:
                change = "" if d.change_pct is None else f" ({d.change_pct:+.1f}%)"
                mark = "[red]REGRESSION[/] " if d.regression else ""
                console.print(f"  {mark}{d.model} {d.route} c={d.concurrency} {d.metric}: "
                              f"{d.old:g} → {d.new:g}{change}")
