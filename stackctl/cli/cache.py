"""stackctl cache stats|keys|flush: the gateway's Redis cache (its namespace only)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.live import Live
from rich.text import Text

from stackctl.cache.client import connect
from stackctl.cache.flush import count
from stackctl.cache.flush import flush as flush_namespace
from stackctl.cache.keys import list_keys
from stackctl.cache.metrics import gateway_metrics
from stackctl.cache.stats import StatsOptions, collect_stats
from stackctl.cache.target import CacheError, model_names, password_of, target_of
from stackctl.cli.common import (
    FAILED,
    OK,
    Failed,
    config_dir_option,
    echo_json,
    exit_codes,
    json_errors,
    load_or_fail,
    ops_errors,
    sub_config_dir_option,
)

UNREACHABLE = ("Redis does not answer or refuses the password, the cache is disabled or "
               "not\n       published (stack.yaml), registry errors")
EPILOG = {
    "stats": exit_codes({OK: "the report was printed (--watch: stopped with Ctrl-C)",
                         FAILED: UNREACHABLE}),
    "keys": exit_codes({OK: "the keys were listed", FAILED: UNREACHABLE}),
    "flush": exit_codes({
        OK: "the namespace's keys were deleted, or there were none",
        FAILED: "declined at the prompt, or no terminal to ask and no --yes; also:\n       "
                + UNREACHABLE}),
}
EPILOG["cache"] = exit_codes({OK: "done (stats --watch: stopped with Ctrl-C)",
                              FAILED: UNREACHABLE + "; flush declined or not confirmed"})


json_option = click.option("--json", "as_json", is_flag=True,
                           help="Print the result as JSON (see README).")


@click.group(epilog=EPILOG["cache"])
@config_dir_option
def cache(config_dir: Path) -> None:
    """Inspect or empty the gateway's Redis response cache.

    Only keys under stack.yaml's cache.namespace (`stackctl:` by default) are read or
    deleted: LiteLLM's cached responses and its short-lived counters. Redis is reached on
    127.0.0.1:cache.host_port with the password named by cache.password_env (in .env).
    """


def _open(config_dir: Path) -> tuple[Any, Any, Any, dict[str, str]]:
    """(registry, target, connected client, stored model → public name)."""
    reg = load_or_fail(config_dir)
    with ops_errors():
        target = target_of(reg)
        client = connect(target, password_of(reg, target))
    return reg, target, client, model_names(reg)


# -- stats ------------------------------------------------------------------------------------

@cache.command(epilog=EPILOG["stats"])
@sub_config_dir_option
@click.option("--watch", type=click.FloatRange(min=0.2), is_flag=False, flag_value=2.0,
              default=None, metavar="[SECONDS]",
              help="Refresh every SECONDS (default 2) until Ctrl-C, in place on a terminal; "
                   "with --json one document per line.")
@click.option("--sample", type=click.IntRange(min=0), default=200, show_default=True,
              help="Keys of each kind whose TTL, size and model are read.")
@click.option("--scan-limit", type=click.IntRange(min=1), default=100_000, show_default=True,
              help="Keys SCAN may walk through; beyond, counts are a lower bound (≥).")
@json_option
@json_errors
def stats(config_dir: Path, watch: float | None, sample: int, scan_limit: int,
          as_json: bool) -> None:
    """Keys, memory, TTLs and hit ratio of the gateway's cache, per model.

    Hits and misses are the gateway's own counters (LiteLLM /metrics/, since the gateway
    started; a miss is a successful response not served from the cache). When the gateway
    does not answer, Redis' keyspace_hits/misses are shown instead: those are server-wide
    (every key and client). Per model means the model that answered (after any fallback),
    read from each cached response; entries, sizes and TTLs come from a sample of the keys.
    """
    reg, target, client, names = _open(config_dir)
    opts = StatsOptions(sample=sample, scan_limit=scan_limit)
    metrics = gateway_metrics(reg)

    def read() -> Any:
        return collect_stats(client, target, names, metrics, opts)

    with ops_errors():
        first = read()
    if watch is None:
        if as_json:
            click.echo(first.model_dump_json(indent=2))
        else:
            click.echo("\n".join(stats_lines(first)))
        return
    try:
        _watch(read, first, watch, as_json, CacheError)
    except KeyboardInterrupt:  # the way to end a watch: not a failure
        pass


def _sleep(seconds: float) -> None:
    time.sleep(seconds)


def _watch(read: Any, first: Any, every: float, as_json: bool, errors: type) -> None:
    def views() -> Any:
        current: Any = first
        while True:
            yield current
            _sleep(every)
            try:
                current = read()
            except errors as exc:  # Redis restarting: say so, keep watching
                current = exc

    if as_json:
        for st in views():
            click.echo(st.model_dump_json() if not isinstance(st, Exception)
                       else json.dumps({"ok": False, "error": str(st)}))
        return
    console = _console()
    if not console.is_terminal:
        for st in views():
            click.echo(f"{time.strftime('%H:%M:%S')}  {st}" if isinstance(st, Exception)
                       else "\n".join(stats_lines(st, every)))
            click.echo()
        return
    with Live(console=console, auto_refresh=False, transient=False) as live:
        for st in views():
            live.update(_stats_view(st, every), refresh=True)


def _stats_view(st: Any, every: float | None = None) -> Any:
    if isinstance(st, Exception):
        return Text(f"{time.strftime('%H:%M:%S')}  {st}", style="red")
    return Text("\n".join(stats_lines(st, every)))


def stats_lines(st: Any, every: float | None = None) -> list[str]:
    """The text report, one line each (plain: greppable, never wrapped)."""
    t, ns, r, h = st.target, st.namespace, st.redis, st.hits
    ge = "" if ns.complete else "≥"
    head = f"Redis {r.version} on {t.address}, namespace '{ns.namespace}:', cache.ttl {t.ttl}s"
    if every:
        head += f"  ({time.strftime('%H:%M:%S', time.localtime(st.at))}, every {every:g}s, " \
                "Ctrl-C stops)"
    spread = ns.ttl
    ttl = (f"min {spread.min}s, median {spread.median}s, max {spread.max}s"
           if spread.min is not None else "-")
    if spread.no_expiry:
        ttl += f", {_n(spread.no_expiry, 'key')} never expire"
    if spread.count:
        ttl += f" (cached responses, {'all' if spread.count >= ns.responses else 'a sample of'}" \
               f" {spread.count})"
    lines = [
        head,
        f"keys     {ge}{ns.keys} under '{ns.namespace}:' ({ge}{_n(ns.responses, 'cached response')}, "
        f"{ge}{_n(ns.other, 'LiteLLM counter')}); {r.keys} in the database",
        f"memory   namespace {'≈' if ns.sampled < ns.keys else ''}{_size(ns.bytes)}; Redis uses "
        f"{r.used_memory_human} (maxmemory {_size(r.maxmemory) if r.maxmemory else 'none'}, "
        f"{r.maxmemory_policy}, {r.evicted_keys} evicted)",
        f"ttl      {ttl}",
        f"hits     {_n(h.hits, 'hit')}, {_n(h.misses, 'miss', 'misses')} ({_ratio(h.ratio)}): "
        + _hit_scope(st),
    ]
    if h.source == "gateway":
        lines.append(f"         Redis server-wide: {_n(r.keyspace_hits, 'hit')}, "
                     f"{_n(r.keyspace_misses, 'miss', 'misses')} ({_ratio(r.ratio)}): every key "
                     "and client")
    else:
        lines.append(f"         (the gateway's own counters are unavailable: {st.gateway.reason})")
    if st.models:
        rows = [[m.model, str(m.entries), _size(m.bytes) if m.entries else "-", _num(m.hits),
                 _num(m.requests),
                 _ratio(m.hits / m.requests if m.requests and m.hits is not None else None)]
                for m in st.models]
        lines += [""] + _columns(["model", "entries", "memory", "hits", "requests", "ratio"],
                                 rows, left=1)
        if ns.sampled < ns.keys:
            lines.append(f"(entries and memory per model: a sample of {ns.sampled} of "
                         f"{ge}{ns.keys} keys, --sample)")
    return lines


def _hit_scope(st: Any) -> str:
    if st.hits.source == "redis":
        return "Redis server-wide, every key and client"
    since = st.gateway.since
    ago = f", gateway started {_duration(st.at - since)} ago" if since else ""
    return f"the gateway's responses (LiteLLM /metrics/{ago})"


def _console() -> Any:
    return Console(highlight=False)


# -- keys -------------------------------------------------------------------------------------

@cache.command(epilog=EPILOG["keys"])
@sub_config_dir_option
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True,
              help="List at most this many keys (a bounded SCAN).")
@json_option
@json_errors
def keys(config_dir: Path, limit: int, as_json: bool) -> None:
    """List keys under the gateway's namespace with kind, model, TTL and size.

    Cached responses come first, the newest (most TTL left) first; then LiteLLM's counters.
    """
    _, target, client, names = _open(config_dir)
    with ops_errors():
        listing = list_keys(client, target, names, limit)
    if as_json:
        click.echo(listing.model_dump_json(indent=2))
        return
    where = f"under '{target.namespace}:' in Redis {target.address}"
    if not listing.keys:
        click.echo(f"no keys {where}")
        return
    rows = [[k.key, k.kind, k.model or "-", "never" if k.ttl is None else f"{k.ttl}s",
             _size(k.bytes)] for k in listing.keys]
    for line in _columns(["key", "kind", "model", "ttl", "size"], rows, left=3):
        click.echo(line)
    more = f"; more exist (--limit {limit} reached)" if listing.more else ""
    click.echo(f"{_n(len(listing.keys), 'key')} {where}{more}")


# -- flush ------------------------------------------------------------------------------------

def _interactive() -> bool:
    return sys.stdin.isatty()


@cache.command(epilog=EPILOG["flush"])
@sub_config_dir_option
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
@json_errors
def flush(config_dir: Path, yes: bool, as_json: bool) -> None:
    """Delete every key under the gateway's namespace, and nothing else.

    Asks first unless --yes; without a terminal to ask on, refuses unless --yes. Keys are
    found by SCAN and deleted with UNLINK in batches: Redis never blocks on a big namespace.
    Redis only: the gateway may still answer recent requests from its own in-memory copies
    (LiteLLM, per worker) until it restarts.
    """
    _, target, client, _ = _open(config_dir)
    where = f"'{target.namespace}:' in Redis {target.address}"
    with ops_errors():
        found = count(client, target)
    if found and not yes:
        if not _interactive():
            raise Failed(f"refusing to delete {_n(found, 'key')} under {where} without "
                         "confirmation: no terminal to ask on; pass --yes")
        if not click.confirm(f"Delete {_n(found, 'key')} under {where} (the gateway's cached "
                             "responses and counters; other keys stay)?", err=True):
            raise Failed("flush declined: nothing was deleted")
    with ops_errors():
        result = flush_namespace(client, target, found=found)
    if as_json:
        echo_json({"ok": True, **result.model_dump(mode="json")})
    elif not found:
        click.echo(f"nothing to flush: no keys under {where}")
    else:
        click.echo(f"deleted {_n(result.deleted, 'key')} under {where} in "
                   f"{result.seconds:.2f}s; {result.left_in_db} other keys in the database "
                   "untouched")
        click.echo(f"note: {result.note}")


# -- formatting -------------------------------------------------------------------------------

def _size(n: int | None) -> str:
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # not reached


def _n(count: int, one: str, many: str | None = None) -> str:
    return f"{count} {one if count == 1 else (many or one + 's')}"


def _columns(header: list[str], rows: list[list[str]], left: int) -> list[str]:
    """Aligned columns: the first `left` left-aligned, the others right-aligned."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return ["  ".join(cell.ljust(w) if i < left else cell.rjust(w)
                      for i, (cell, w) in enumerate(zip(row, widths, strict=True))).rstrip()
            for row in [header, *rows]]


def _ratio(r: float | None) -> str:
    return "-" if r is None else f"{100 * r:.1f}%"


def _num(n: int | None) -> str:
    return "-" if n is None else str(n)


def _duration(seconds: float) -> str:
    s = max(int(seconds), 0)
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60} min"
    return f"{s // 3600}h {s % 3600 // 60:02d}m"
