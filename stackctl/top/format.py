"""Values as the short strings `top` shows (pure; the app and its tests share them)."""

from __future__ import annotations

import time

from stackctl.top.snapshot import MemberState

STATE_STYLE: dict[MemberState, tuple[str, str]] = {  # state → (glyph, rich style)
    "awake": ("●", "green"),
    "loading": ("◐", "yellow"),
    "asleep": ("◌", "cyan"),
    "stopped": ("○", "dim"),
    "unknown": ("?", "magenta"),
}


def bar(used: float | None, total: float | None, width: int = 20) -> str:
    """A memory bar, e.g. `██████░░░░ 12.0/24 GiB`; '' without a budget."""
    if total is None or total <= 0:
        return ""
    if used is None:
        return "?" * width + f" ?/{total:g} GiB"
    filled = min(width, round(width * used / total))
    over = " OVER" if used > total + 1e-9 else ""
    return "█" * filled + "░" * (width - filled) + f" {used:.1f}/{total:g} GiB{over}"


def ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value / 1000:.2f}s" if value >= 1000 else f"{value:.0f}ms"


def rate(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def count(value: float) -> str:
    return f"{value:g}" if value < 1e6 else f"{value:.3g}"


def age(then: float, now: float) -> str:
    """'5s ago', '3m ago', '2h ago', '4d ago'."""
    s = max(0.0, now - then)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{int(s // size)}{unit} ago"
    return f"{int(s)}s ago"


def clock(at: float) -> str:
    """HH:MM:SS, local time (the snapshot tests fix TZ)."""
    return time.strftime("%H:%M:%S", time.localtime(at))


def window(seconds: float | None) -> str:
    return "since the gateway started" if seconds is None else f"last {seconds:.0f}s"
