#!/usr/bin/env python3
"""Run one step of `make up` / `make test` quietly: a live "LABEL … 1m12s" line while it
runs, one line when it ends, its whole output in a log file.

    python3 scripts/step.py [--log FILE] [--detail PREFIX] [--tee] LABEL -- COMMAND [ARG...]

On a terminal the live line is a rich spinner (a plain stdlib one when rich is not
importable: the first step runs before the venv exists); elsewhere (CI) a line every minute
says the step is still running. On failure the last 20 log lines and the log's path are
printed and the exit code is the command's.

--detail PREFIX  output lines starting with PREFIX become the live line's detail, and the
                 last one is shown on the finishing line.
--tee            the command's output is shown as it comes (and logged): for commands whose
                 own output is the account (`stackctl up`); nothing is added on success.

Log files default to $STEP_LOG_DIR/<label>.log (STEP_LOG_DIR defaults to .logs).
Standard library only, apart from rich when it is importable.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

TAIL_LINES = 20
HEARTBEAT_FIRST = 20.0  # seconds before a non-terminal run says "still running"
HEARTBEAT_EVERY = 60.0
ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


def elapsed(seconds: float, precise: bool = False) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s" if precise else f"{int(seconds)}s"
    m, s = divmod(int(seconds), 60)
    return f"{m}m{s:02d}s"


def slug(label: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")[:60] or "step"


def _utf8(stream: object) -> bool:
    return "utf" in (getattr(stream, "encoding", None) or "").lower()


class Display:
    """Plain lines: what CI (or a pipe) sees."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.detail = ""
        self.started = time.monotonic()
        self.ok_mark, self.fail_mark = ("✓", "✗") if _utf8(sys.stdout) else ("ok", "FAILED")
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def now(self) -> float:
        return time.monotonic() - self.started

    def start(self) -> None:
        threading.Thread(target=self._heartbeat, daemon=True).start()

    def _heartbeat(self) -> None:
        wait = HEARTBEAT_FIRST
        while not self._stop.wait(wait):
            detail = f": {self.detail}" if self.detail else ""
            self.write(f"… {self.label}{detail} (still running, {elapsed(self.now())})")
            wait = HEARTBEAT_EVERY

    def write(self, text: str) -> None:
        with self._lock:
            sys.stdout.write(text + "\n")
            sys.stdout.flush()

    def stop(self) -> None:
        self._stop.set()

    def finish(self, line: str, style: str = "") -> None:
        self.write(line)


class TtyDisplay(Display):
    """A spinner line redrawn in place (stdlib only: before rich is installed)."""

    FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"

    def start(self) -> None:
        if not _utf8(sys.stdout):
            self.FRAMES = "-\\|/"
        threading.Thread(target=self._spin, daemon=True).start()

    def _line(self, frame: int) -> str:
        detail = f": {self.detail}" if self.detail else ""
        text = f"{self.FRAMES[frame % len(self.FRAMES)]} {self.label}{detail} … {elapsed(self.now())}"
        return text[: max(20, shutil.get_terminal_size().columns - 1)]

    def _spin(self) -> None:
        frame = 0
        while not self._stop.wait(0.1):
            with self._lock:
                sys.stdout.write("\r\x1b[K" + self._line(frame))
                sys.stdout.flush()
            frame += 1

    def write(self, text: str) -> None:
        with self._lock:
            sys.stdout.write("\r\x1b[K" + text + "\n")
            sys.stdout.flush()

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            sys.stdout.write("\r\x1b[K")
            sys.stdout.flush()


class RichDisplay(Display):
    """rich's status spinner; its text is re-rendered with the elapsed time on each refresh."""

    def __init__(self, label: str, console) -> None:  # type: ignore[no-untyped-def]
        super().__init__(label)
        self.console = console
        self.status = None

    def __rich__(self):  # type: ignore[no-untyped-def]
        from rich.text import Text

        text = Text(self.label, style="bold")
        if self.detail:
            text.append(f": {self.detail}")
        text.append(f" … {elapsed(self.now())}", style="dim")
        text.truncate(max(20, self.console.width - 3), overflow="ellipsis")
        return text

    def start(self) -> None:
        self.status = self.console.status(self)
        self.status.start()

    def write(self, text: str) -> None:
        from rich.text import Text

        self.console.print(Text.from_ansi(text), soft_wrap=True)

    def stop(self) -> None:
        if self.status is not None:
            self.status.stop()

    def finish(self, line: str, style: str = "") -> None:
        from rich.text import Text

        self.console.print(Text(line, style=style), soft_wrap=True)


def make_display(label: str) -> Display:
    tty = sys.stdout.isatty() and os.environ.get("TERM") != "dumb"
    if not tty:
        return Display(label)
    try:
        from rich.console import Console
    except ImportError:
        return TtyDisplay(label)
    return RichDisplay(label, Console(highlight=False))


def run(label: str, cmd: list[str], log: Path, detail_prefix: str | None = None, tee: bool = False) -> int:
    log.parent.mkdir(parents=True, exist_ok=True)
    display = make_display(label)
    env = dict(os.environ)
    if tee and sys.stdout.isatty():  # the command writes to our pipe: keep its colours
        env.setdefault("FORCE_COLOR", "1")
        env.setdefault("COLUMNS", str(shutil.get_terminal_size().columns))
    with log.open("w", encoding="utf-8", errors="replace") as out:
        out.write(f"$ {' '.join(cmd)}\n")
        out.flush()
        try:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
        except OSError as exc:
            out.write(f"{exc}\n")
            display.finish(f"{display.fail_mark} {label}: cannot run {cmd[0]}: {exc}", "red")
            return 127
        display.start()
        assert proc.stdout is not None
        stdout = proc.stdout
        done = threading.Event()
        writing = threading.Lock()

        def pump() -> None:
            for raw in stdout:
                line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                plain = ANSI.sub("", line)
                with writing:
                    if done.is_set():
                        return
                    out.write(plain + "\n")
                    out.flush()
                    if tee:
                        display.write(line)
                if detail_prefix and plain.startswith(detail_prefix):
                    display.detail = plain[len(detail_prefix):].strip()

        # The step ends when its command exits, not when the pipe closes: a daemon the
        # command started (dockerd) may still hold the pipe, and the step would never end.
        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        try:
            rc = proc.wait()
            reader.join(timeout=2.0)
        except KeyboardInterrupt:
            proc.wait()
            rc = 130
        finally:
            with writing:
                done.set()
            display.stop()
    took = elapsed(display.now(), precise=True)
    if rc == 0:
        if not tee:
            detail = f"  ({display.detail})" if detail_prefix and display.detail else ""
            display.finish(f"{display.ok_mark} {label}  {took}{detail}", "green")
        return 0
    how = "interrupted" if rc == 130 else f"failed (exit {rc})"
    display.finish(f"{display.fail_mark} {label} {how} after {took}", "bold red")
    if not tee:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()[-TAIL_LINES:]
        for line in lines:
            display.finish("    " + line, "dim")
    display.finish(f"  full log: {log}", "bold")
    return rc


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--" not in argv:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    cut = argv.index("--")
    parser = argparse.ArgumentParser(prog="step.py")
    parser.add_argument("label")
    parser.add_argument("--log", type=Path, default=None)
    parser.add_argument("--detail", default=None, metavar="PREFIX")
    parser.add_argument("--tee", action="store_true")
    args = parser.parse_args(argv[:cut])
    cmd = argv[cut + 1:]
    if not cmd:
        parser.error("no command after --")
    log = args.log or Path(os.environ.get("STEP_LOG_DIR") or ".logs") / f"{slug(args.label)}.log"
    return run(args.label, cmd, log, args.detail, args.tee)


if __name__ == "__main__":
    sys.exit(main())
