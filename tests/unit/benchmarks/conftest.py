"""Fixtures of the benchmarks' tests.

    sim   benchmarks/sim_scheduler.py as a module (the benchmarks are scripts, not a package)
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

import pytest

from tests.paths import REPO


@pytest.fixture(scope="session")
def sim() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sim_scheduler",
                                                  REPO / "benchmarks" / "sim_scheduler.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module
