"""Property: whatever a hostile edit does to a valid registry, `validate` and `generate`
exit 0 or 1 with no traceback, every error is located, a failing generate changes no file,
the planted secret is echoed nowhere, and each run stays fast (tests/mutations.py)."""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.mutations import judge, load, mutate


@pytest.mark.parametrize("registry", ["offline", "shipped"])
@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), edits=st.integers(1, 3))
def test_hostile_edits_never_crash_leak_or_half_write(registry, seed, edits):
    files = load(registry)
    what = mutate(files, random.Random(seed), edits)
    with tempfile.TemporaryDirectory() as tmp:
        verdict = judge(files, Path(tmp) / "stack", registry)
    assert verdict.crash is None, (what, verdict.crash)
    assert set(verdict.exit_codes) <= {0, 1}, (what, verdict.exit_codes)
    assert verdict.unlocated == [], (what, verdict.unlocated)
    assert not verdict.leaked, (what, "the planted secret reached the output")
    assert not verdict.changed_by_failure, (what, "a failing generate changed files")
    assert verdict.seconds < 10, (what, verdict.seconds)
