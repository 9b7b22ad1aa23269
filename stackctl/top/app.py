"""The Textual app of `stackctl top`: renders each Snapshot (view.py's panels) and runs the
keys' actions (actions.py). It never gathers anything itself: `source()` gives a Snapshot
(live: a Collector; tests: a fixed one), called in a worker thread so a slow engine never
freezes the screen, at most one at a time."""

from __future__ import annotations

from collections.abc import Callable

from textual import work
from textual.app import App, ComposeResult, SuspendNotSupported
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, OptionList, RichLog, Static
from textual.widgets.option_list import Option

from stackctl.top import view
from stackctl.top.actions import Actions
from stackctl.top.snapshot import Snapshot

DOING = {"switch": "switching to", "load": "loading", "unload": "unloading"}


class MemberPicker(ModalScreen[str | None]):
    """Choose a member of a GPU group (Enter), or nothing (Escape)."""

    BINDINGS = [Binding("escape", "dismiss(None)", "cancel")]
    DEFAULT_CSS = """
    MemberPicker { align: center middle; }
    MemberPicker > OptionList { width: 60; height: auto; max-height: 16; border: round $accent; }
    """

    def __init__(self, title: str, choices: list[tuple[str, str]]):
        super().__init__()
        self.title_text, self.choices = title, choices

    def compose(self) -> ComposeResult:
        options = OptionList(*[Option(label, id=member) for member, label in self.choices])
        options.border_title = self.title_text
        yield options

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)


class TopApp(App[None]):
    TITLE = "stackctl top"
    ENABLE_COMMAND_PALETTE = False  # every action has its key; the palette would add noise
    CSS = """
    #header { height: 1; background: $boost; padding: 0 1; }
    #banner { background: $error 30%; color: $text; padding: 0 1; display: none; }
    #banner.shown { display: block; }
    #body { height: 1fr; }
    #body > Static { padding: 0 1; margin-bottom: 1; }
    #log { height: 5; border-top: solid $panel; display: none; }
    #log.shown { display: block; }
    """
    BINDINGS = [
        Binding("s", "switch", "switch"),
        Binding("l", "load", "load"),
        Binding("u", "unload", "unload"),
        Binding("r", "reload", "reload"),
        Binding("g", "requests", "request log"),
        Binding("q", "quit_top", "quit"),
        # Textual's own quit key: the same guard (a switch runs in this process)
        Binding("ctrl+q", "quit_top", "quit", show=False, priority=True),
    ]

    def __init__(self, source: Callable[[], Snapshot], actions: Actions, interval: float = 1.0):
        super().__init__()
        self.source, self.actions, self.interval = source, actions, interval
        self.snapshot: Snapshot | None = None
        self.busy: str | None = None  # the action running (a switch): one at a time
        self._collecting = False  # a refresh's worker runs
        self.said: list[str] = []  # every line of the log pane, in order

    def compose(self) -> ComposeResult:
        yield Static("stackctl top: collecting…", id="header")
        yield Static("", id="banner")
        with VerticalScroll(id="body"):
            yield Static("", id="groups")
            yield Static("", id="models")
            yield Static("", id="switches")
            yield Static("", id="alerts")
        yield RichLog(id="log", max_lines=200, wrap=True, markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.refresh_snapshot()
        if self.interval > 0:
            self.set_interval(self.interval, self.refresh_snapshot)

    # -- refreshing -------------------------------------------------------------------------
    def refresh_snapshot(self) -> None:
        """Collect in a worker thread, unless a collection still runs (a slow engine): the
        Collector is not shared between threads, and a late refresh is better than a pile."""
        if not self._collecting:
            self._collecting = True
            self._collect()

    @work(thread=True, group="refresh")
    def _collect(self) -> None:
        try:
            snap = self.source()
        except Exception as exc:  # a bug in collection: keep the screen, say it
            self.call_from_thread(self._failed, f"{type(exc).__name__}: {exc}")
        else:
            self.call_from_thread(self.show, snap)

    def _failed(self, problem: str) -> None:
        self._collecting = False
        banner = self.query_one("#banner", Static)
        banner.update(f"⚠ collecting failed ({problem}); showing the last snapshot")
        banner.add_class("shown")

    def show(self, snap: Snapshot) -> None:
        self._collecting = False
        self.snapshot = snap
        self.query_one("#header", Static).update(view.header(snap, self.interval))
        banner = self.query_one("#banner", Static)
        banner.update(view.banners(snap))
        banner.set_class(bool(snap.banners), "shown")
        self.query_one("#groups", Static).update(view.groups(snap))
        self.query_one("#models", Static).update(view.models(snap))
        self.query_one("#switches", Static).update(view.switches(snap))
        self.query_one("#alerts", Static).update(view.alerts(snap))

    def say(self, text: str) -> None:
        """A line of an action's progress, in the log pane at the bottom (shown from the
        first line on)."""
        self.said.append(text)
        log = self.query_one("#log", RichLog)
        log.add_class("shown")
        log.write(text)

    # -- keys -------------------------------------------------------------------------------
    def _choices(self, loaded: bool) -> list[tuple[str, str]]:
        """(member, label) of the members not awake; `loaded`: of the awake and loading
        ones instead (what `unload` can put away)."""
        snap = self.snapshot
        if snap is None:
            return []
        return [(m.name, f"{g.name}: {m.name} ({m.state})")
                for g in snap.groups for m in g.members
                if (m.state in ("awake", "loading")) == loaded]

    def _pick(self, title: str, verb: str, loaded: bool = False) -> None:
        if self.busy:
            self.notify(f"{self.busy} is running; wait for it", severity="warning")
            return
        choices = self._choices(loaded)
        if not choices:
            none = "none is loaded" if loaded else "all awake"
            self.notify(f"no member to choose (no GPU group, or {none})", severity="warning")
            return
        self.push_screen(MemberPicker(title, choices),
                         lambda member: self._act(verb, member))

    def action_switch(self) -> None:
        self._pick("switch a GPU group to", "switch")

    def action_load(self) -> None:
        self._pick("load (beside the others if they fit)", "load")

    def action_unload(self) -> None:
        self._pick("unload (sleep or stop)", "unload", loaded=True)

    def _act(self, verb: str, member: str | None) -> None:
        if member:
            self.busy = f"{verb} {member}"
            self.say(f"{DOING[verb]} {member}…")
            self.run_switch(member, verb)

    @work(thread=True, exclusive=True, group="switch")
    def run_switch(self, member: str, verb: str = "switch") -> None:
        def say(text: str) -> None:
            self.call_from_thread(self.say, text)
        try:
            done = self.actions.switch(member, say) if verb == "switch" else \
                self.actions.change(verb, member, say)
            self.call_from_thread(self._switched, done, None)
        except Exception as exc:  # the switch's own message: rollback included
            self.call_from_thread(self._switched, None, str(exc))

    def _switched(self, done: str | None, problem: str | None) -> None:
        self.busy = None
        if problem:
            self.say(problem)
            self.notify(problem.splitlines()[0], severity="error", timeout=8)
        else:
            self.say(done or "switched")
            self.notify(done or "switched")
        self.refresh_snapshot()

    def action_reload(self) -> None:
        self._outside("reload")

    def action_requests(self) -> None:
        self._outside("requests")

    def _outside(self, verb: str) -> None:
        """Run a whole stackctl command in the terminal, then come back."""
        argv = self.actions.command(verb)
        try:
            with self.suspend():
                code = self.actions.run(argv)
                if verb != "requests":  # let its result be read before the screen returns
                    input(f"\n[exit {code}] press Enter to return to stackctl top ")
        except SuspendNotSupported:
            shown = " ".join(["stackctl", *argv[3:]])  # argv: python -m stackctl …
            self.notify(f"cannot leave the screen here: run `{shown}` in another terminal",
                        severity="warning", timeout=6)
            return
        self.refresh_snapshot()

    def action_quit_top(self) -> None:
        if self.busy:
            # the switch runs in this process: leaving would cut it off half-way
            self.notify(f"{self.busy} is running; quit once it is done", severity="warning")
            return
        self.exit()
