"""The Textual app, driven by its pilot (App.run_test) on fixed Snapshots: SVG snapshots of
the four screens, and the keys' actions through recorded fakes.

The snapshots are deterministic: a fixed size, the fixed clock NOW (TZ=UTC), and the
versions of textual and rich that pyproject.toml's dev extra pins. A changed screen fails
with the new SVG's path; `STACKCTL_UPDATE_SNAPSHOTS=1` rewrites them (look at them, then
commit). docs/top.svg, the README's screenshot, is the healthy one
(test_readme_screenshot_is_the_healthy_snapshot).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from stackctl.top.app import MemberPicker, TopApp
from tests.paths import REPO

SIZE = (100, 26)
SNAPSHOTS = Path(__file__).parent / "__snapshots__"
SCREENSHOT = REPO / "docs" / "top.svg"


class FakeActions:
    def __init__(self, fail: str | None = None):
        self.calls: list[tuple] = []
        self.fail = fail

    def switch(self, member, say):
        self.calls.append(("switch", member))
        say(f"waking {member}")
        if self.fail:
            raise RuntimeError(self.fail)
        return f"switched GPU group 'gpu0' to {member} in 0.4s"

    def change(self, verb, member, say):
        self.calls.append((verb, member))
        return f"{verb}ed {member} in GPU group 'gpu0' (0.3s)"

    def command(self, verb):
        return ["python", "-m", "stackctl", "logs", "--requests", "-f"] \
            if verb == "requests" else ["python", "-m", "stackctl", verb]

    def run(self, argv):
        self.calls.append(("run", argv))
        return 0


def run(app: TopApp, *keys: str, size=SIZE) -> str:
    """Start the app, let its first refresh land, press `keys`; the screen as SVG."""
    async def go() -> str:
        async with app.run_test(size=size) as pilot:
            await app.workers.wait_for_complete()
            await pilot.pause()
            for key in keys:
                await pilot.press(key)
                await app.workers.wait_for_complete()
                await pilot.pause()
            return app.export_screenshot(title="stackctl top")
    return asyncio.run(go())


def assert_snapshot(name: str, svg: str, tmp_path: Path) -> None:
    path = SNAPSHOTS / f"{name}.svg"
    if os.environ.get("STACKCTL_UPDATE_SNAPSHOTS") == "1":
        path.write_text(svg, encoding="utf-8")
        return
    if not path.exists() or path.read_text(encoding="utf-8") != svg:
        actual = tmp_path / f"{name}.svg"
        actual.write_text(svg, encoding="utf-8")
        pytest.fail(f"the {name} screen differs from {path.relative_to(REPO)}: see {actual} "
                    "(STACKCTL_UPDATE_SNAPSHOTS=1 rewrites the snapshots)")


@pytest.mark.parametrize("name", ["healthy", "switching", "gateway_down", "engine_down"])
def test_screen(scenario, name, tmp_path):
    snap = scenario(name)
    svg = run(TopApp(lambda: snap, FakeActions(), interval=1.0))
    assert_snapshot(name, svg, tmp_path)


def test_snapshots_are_deterministic(scenario):
    snap = scenario("switching")
    assert run(TopApp(lambda: snap, FakeActions())) == run(TopApp(lambda: snap, FakeActions()))


def test_readme_screenshot_is_the_healthy_snapshot():
    assert SCREENSHOT.read_text(encoding="utf-8") == \
        (SNAPSHOTS / "healthy.svg").read_text(encoding="utf-8"), \
        "docs/top.svg is stale: copy tests/unit/top/__snapshots__/healthy.svg over it"


def _app(scenario, actions, name="healthy"):
    snap = scenario(name)
    return TopApp(lambda: snap, actions, interval=1.0)


def test_s_switches_to_the_chosen_member(scenario):
    actions = FakeActions()
    app = _app(scenario, actions)

    async def go():
        async with app.run_test(size=SIZE) as pilot:
            await app.workers.wait_for_complete()
            await pilot.press("s")
            await pilot.pause()
            assert isinstance(app.screen, MemberPicker)  # the members not awake
            assert [m for m, _ in app.screen.choices] == ["vllm-dolphin"]
            await pilot.press("enter")
            await app.workers.wait_for_complete()
            await pilot.pause()
            assert not isinstance(app.screen, MemberPicker)
            assert app.said == ["switching to vllm-dolphin…", "waking vllm-dolphin",
                                "switched GPU group 'gpu0' to vllm-dolphin in 0.4s"]
            assert app.busy is None
    asyncio.run(go())
    assert actions.calls == [("switch", "vllm-dolphin")]


def test_l_loads_by_switching_and_escape_cancels(scenario):
    actions = FakeActions()
    app = _app(scenario, actions)

    async def go():
        async with app.run_test(size=SIZE) as pilot:
            await app.workers.wait_for_complete()
            await pilot.press("l")
            await pilot.pause()
            assert isinstance(app.screen, MemberPicker)
            assert "load" in app.screen.title_text
            await pilot.press("escape")
            await pilot.pause()
            assert not isinstance(app.screen, MemberPicker)
    asyncio.run(go())
    assert actions.calls == []


def test_a_failed_switch_says_why(scenario):
    actions = FakeActions(fail="vllm-dolphin failed: did not wake; vllm-qwen is healthy again")
    app = _app(scenario, actions)

    async def go():
        async with app.run_test(size=SIZE) as pilot:
            await app.workers.wait_for_complete()
            await pilot.press("s", "enter")
            await app.workers.wait_for_complete()
            await pilot.pause()
            assert "did not wake" in app.said[-1]
            assert app.busy is None
    asyncio.run(go())


def test_u_unloads_an_awake_member_and_l_loads_one_that_is_not(scenario):
    actions = FakeActions()
    app = _app(scenario, actions)

    async def go():
        async with app.run_test(size=SIZE) as pilot:
            await app.workers.wait_for_complete()
            await pilot.press("u")
            await pilot.pause()
            assert isinstance(app.screen, MemberPicker) and "unload" in app.screen.title_text
            assert [m for m, _ in app.screen.choices] == ["vllm-qwen"]  # the awake one
            await pilot.press("enter")
            await app.workers.wait_for_complete()
            await pilot.pause()
            assert app.said[-2:] == ["unloading vllm-qwen…",
                                     "unloaded vllm-qwen in GPU group 'gpu0' (0.3s)"]
            await pilot.press("l", "enter")
            await app.workers.wait_for_complete()
            await pilot.pause()
            assert app.busy is None
    asyncio.run(go())
    assert actions.calls == [("unload", "vllm-qwen"), ("load", "vllm-dolphin")]


@pytest.mark.parametrize(("key", "shown"), [("g", "stackctl logs --requests -f"),
                                             ("r", "stackctl reload")])
def test_commands_outside_the_screen(scenario, key, shown):
    """The headless test driver cannot suspend: the app says which command to run instead
    (in a terminal it suspends, runs actions.run(argv), and comes back)."""
    actions = FakeActions()
    app = _app(scenario, actions)

    async def go():
        async with app.run_test(size=SIZE) as pilot:
            await app.workers.wait_for_complete()
            await pilot.press(key)
            await pilot.pause()
            assert any(f"`{shown}`" in n.message for n in app._notifications)
    asyncio.run(go())


def test_q_waits_for_a_running_switch(scenario):
    app = _app(scenario, FakeActions())

    async def go():
        async with app.run_test(size=SIZE) as pilot:
            await app.workers.wait_for_complete()
            app.busy = "switch to vllm-dolphin"
            await pilot.press("q", "ctrl+q")
            await pilot.pause()
            assert app.is_running
            app.busy = None
            await pilot.press("q")
            await pilot.pause()
            assert not app.is_running
    asyncio.run(go())


def test_a_failing_collection_keeps_the_screen(scenario):
    snaps = [scenario("healthy")]

    def source():
        if snaps:
            return snaps.pop()
        raise RuntimeError("boom")
    app = TopApp(source, FakeActions())

    async def go():
        async with app.run_test(size=SIZE) as pilot:
            await app.workers.wait_for_complete()
            app.refresh_snapshot()
            await app.workers.wait_for_complete()
            await pilot.pause()
            assert app.snapshot is not None and app.is_running
            assert "collecting failed (RuntimeError: boom)" in str(
                app.query_one("#banner").render())
    asyncio.run(go())


def test_one_collection_at_a_time(scenario):
    snap = scenario("healthy")
    calls = []

    def source():
        calls.append(1)
        return snap
    app = TopApp(source, FakeActions())

    async def go():
        async with app.run_test(size=SIZE) as pilot:
            await app.workers.wait_for_complete()
            await pilot.pause()
            app._collecting = True  # as while a slow collection runs
            app.refresh_snapshot()
            app.refresh_snapshot()
            await app.workers.wait_for_complete()
    asyncio.run(go())
    assert len(calls) == 1
