"""A Snapshot as rich renderables, one per panel of the screen (pure: no Textual here, so
the panels are tested as text and `top --once` never loads Textual)."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from stackctl.top import format as fmt
from stackctl.top.snapshot import Snapshot


def header(snap: Snapshot, interval: float) -> Text:
    gw = snap.gateway
    t = Text.assemble((snap.project, "bold"), "  gateway ", gw.url.removeprefix("http://"), " ")
    t.append("up" if gw.up else "DOWN", style="green" if gw.up else "bold red")
    if gw.in_flight is not None:
        t.append(f" ({fmt.count(gw.in_flight)} in flight)")
    t.append("  engine ")
    t.append("up" if snap.engine else "DOWN", style="green" if snap.engine else "bold red")
    t.append(f"  {fmt.clock(snap.taken_at)}, every {interval:g}s", style="dim")
    return t


def banners(snap: Snapshot) -> Text:
    return Text("\n".join(f"⚠ {b}" for b in snap.banners))


def groups(snap: Snapshot) -> RenderableType:
    if not snap.groups:
        return Text("No GPU groups in the registry.", style="dim")
    parts: list[RenderableType] = [Text("GPU groups", style="bold")]
    for g in snap.groups:
        title = Text.assemble(f"  {g.name} ({g.mode})  ")
        if g.memory_gib is not None:
            title.append(fmt.bar(g.used_gib, g.memory_gib),
                         style="red" if (g.used_gib or 0) > g.memory_gib else "blue")
        else:
            title.append("exclusive: one member at a time", style="dim")
        if g.switching_to:
            title.append(f"  switching → {g.switching_to} (its requests are held)",
                         style="bold yellow")
        table = Table(box=None, show_header=False, padding=(0, 1), pad_edge=False)
        for m in g.members:
            glyph, style = fmt.STATE_STYLE[m.state]
            gib = f"{m.footprint_gib:.1f} GiB" if m.footprint_gib is not None else ""
            table.add_row(Text(f"   {glyph}", style=style), m.name, Text(m.state, style=style),
                          m.model or "-", gib,
                          f"{fmt.count(m.waiting)} waiting" if m.waiting else "",
                          Text("held", style="yellow") if m.held else "")
        parts += [title, table]
    return Group(*parts)


def models(snap: Snapshot) -> RenderableType:
    title = Text("Models", style="bold")
    if not snap.gateway.metrics:
        return Group(title, Text("  no figures: " + (snap.gateway.problem or "gateway down"),
                                 style="dim"))
    read = f", read {snap.figures_age_s:.0f}s ago" if snap.figures_age_s else ""
    title.append(f" ({fmt.window(snap.window_s)}, from {snap.figures_from}{read})",
                 style="not bold")
    if not snap.models:
        return Group(title, Text("  no requests yet", style="dim"))
    table = Table("model", "req", "req/s", "err", "p50", "p95", "TTFT p50", "tok/s",
                  "held/diverted", box=None, padding=(0, 1), header_style="bold")
    for m in snap.models:
        table.add_row(m.model, fmt.count(m.requests), fmt.rate(m.rps),
                      Text(fmt.count(m.errors), style="red" if m.errors else ""),
                      fmt.ms(m.p50_ms), fmt.ms(m.p95_ms), fmt.ms(m.ttft_p50_ms),
                      fmt.rate(m.tokens_per_s), fmt.count(m.rerouted) if m.rerouted else "-")
    return Group(title, table)


def switches(snap: Snapshot) -> RenderableType:
    title = Text("Recent switches", style="bold")
    if not snap.switches:
        return Group(title, Text("  none recorded", style="dim"))
    table = Table(box=None, show_header=False, padding=(0, 1))
    for s in snap.switches:
        outcome = (Text("ok", style="green") if s.success else
                   Text("rolled back", style="yellow") if s.rolled_back else
                   Text("FAILED", style="red"))
        table.add_row(f"  {fmt.age(s.at, snap.taken_at)}", s.group,
                      f"{s.previous or '-'} → {s.target}", outcome, f"{s.seconds:.1f}s", s.reason)
    return Group(title, table)


def alerts(snap: Snapshot) -> RenderableType:
    title = Text("Alerts", style="bold")
    if not snap.engine:
        return Group(title, Text("  not known: no Docker engine answers", style="dim"))
    if snap.alerts is None:
        return Group(title, Text("  Prometheus does not run (monitoring profile off)",
                                 style="dim"))
    if not snap.alerts:
        return Group(title, Text("  none firing", style="green"))
    colours = {"critical": "red", "warning": "yellow"}
    rows = [Text.assemble(("  " + a.severity.ljust(8), colours.get(a.severity, "dim")),
                          f" {a.name}: {a.summary}") for a in snap.alerts]
    return Group(title, *rows)
