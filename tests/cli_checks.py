"""Running `stackctl validate` in a test, and checking that a command printed no traceback."""

from __future__ import annotations

import re

from stackctl.cli import cli


def validate(runner, *args: str):
    return runner.invoke(cli, ["validate", *args], catch_exceptions=False)


def assert_no_traceback(text: str) -> None:
    assert "Traceback" not in text, text
    assert not re.search(r'File ".*", line \d+', text), text
