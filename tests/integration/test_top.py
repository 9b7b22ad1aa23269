"""`stackctl top` in a terminal (tmux) on the shared stack, read from the screen while a
switch runs (#23). The module leaves vllm-qwen the active member, as it found it."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time

import pytest

from tests.tools import require_tool

pytestmark = pytest.mark.integration
SOCKET = f"stackctl-top-{os.getpid()}"  # a tmux server of its own, with this test's environment


def tmux(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["tmux", "-L", SOCKET, "-f", "/dev/null", *args],
                          capture_output=True, text=True, timeout=10)


def screen() -> str:
    return tmux("capture-pane", "-p", "-t", "top").stdout


def member(text: str, name: str) -> str | None:
    found = re.search(rf"{name}\s+(awake|asleep|loading|stopped|unknown)", text)
    return found.group(1) if found else None


def wait_screen(predicate, timeout: float) -> str:  # type: ignore[no-untyped-def]
    end, text = time.monotonic() + timeout, ""
    while time.monotonic() < end:
        text = screen()
        if predicate(text):
            return text
        time.sleep(0.1)
    raise AssertionError(f"the screen never showed it in {timeout:g}s:\n{text}")


@pytest.fixture
def top(shared_stack):  # type: ignore[no-untyped-def]
    require_tool("tmux")
    command = shlex.join([sys.executable, "-m", "stackctl", "top", "-C",
                          str(shared_stack.config)])
    r = tmux("new-session", "-d", "-s", "top", "-x", "120", "-y", "45", command)
    assert r.returncode == 0, r.stderr
    yield shared_stack
    tmux("kill-server")
    assert shared_stack.run("switch", "qwen").returncode == 0  # a no-op when qwen is active


def test_top_shows_a_switch_as_it_happens_and_quits_on_q(top):
    stack = top
    before = wait_screen(lambda t: member(t, "vllm-qwen") == "awake", 30)
    assert member(before, "vllm-dolphin") == "stopped" and "gpu0" in before

    switch = subprocess.Popen([sys.executable, "-m", "stackctl", "switch", "dolphin", "-C",
                               str(stack.config)], cwd=stack.root, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    seen: set[str] = set()
    while switch.poll() is None:  # what the screen shows while the switch runs
        text = screen()
        if "switching → vllm-dolphin" in text or member(text, "vllm-dolphin") == "loading":
            seen.add("in progress")
        time.sleep(0.1)
    assert switch.returncode == 0, switch.stdout.read() if switch.stdout else ""
    assert seen == {"in progress"}, "the screen never showed the switch in progress"

    def newest_switch(text: str) -> str:
        """The first row of Recent switches (its cells may wrap onto a second line)."""
        section = (text.split("Recent switches", 1)[1:] or [""])[0]
        rows = re.split(r"\d+[smhd] ago", section)
        return rows[1] if len(rows) > 1 else ""

    def switched(text: str) -> bool:
        row = newest_switch(text)
        return member(text, "vllm-dolphin") == "awake" and member(text, "vllm-qwen") == \
            "stopped" and "vllm-qwen →" in row and "vllm-dolphin" in row and " ok " in row

    wait_screen(switched, 10)

    tmux("send-keys", "-t", "top", "q")
    end = time.monotonic() + 10
    while tmux("has-session", "-t", "top").returncode == 0 and time.monotonic() < end:
        time.sleep(0.1)
    assert tmux("has-session", "-t", "top").returncode != 0, "q did not end top"
