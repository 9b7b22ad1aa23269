"""Shared fixtures and the `--no-skip` switch for the whole test suite.

Fixtures
    runner          click CliRunner; call it with `catch_exceptions=False` in tests.
    registry_dir    factory copying the shipped registry (`config/`) or the offline example
                    (`examples/offline/config/`) into tmp_path with the same sibling layout,
                    so `../compose` (and `../../../monitoring`) resolve inside tmp_path.
    yaml_edit       apply an edit to a YAML file with ruamel.yaml round-trip (comments,
                    order and layout of untouched lines are kept, so line numbers stay true).

`--no-skip` (or env STACKCTL_NO_SKIP=1)
    every skip — `pytest.skip`, `skipif`, `importorskip`, a skipped module — is reported as a
    failure carrying the skip reason. CI runs with it so a missing tool (docker compose,
    litellm, a Docker engine) cannot turn a red suite into a green one. Expected failures
    (`xfail`) are not skips and are left alone. A skip during setup (a skip mark, a fixture
    that skips) shows as ERROR, one in the test body as FAILED; a module skipped at import is
    listed in a summary section and sets the exit status to 1.

`-n N` (pytest-xdist, `make test-fast`)
    the --no-skip checks hold under it too; with `--dist loadgroup` a contract or
    integration module stays on one worker (its containers start once per module).

Integration fixtures live in tests/integration/conftest.py, the unit tests' in
tests/unit/conftest.py and tests/unit/<package>/conftest.py; keep this file generic. Helpers
that are not fixtures are plain modules beside this file (paths.py, registry_edits.py,
cli_checks.py, tools.py, fake_secrets.py, monitoring_queries.py, fakes/): a test module
never imports another test module (tests/unit/test_layout.py checks it).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.paths import REPO

# name → folder in the repo; it is copied to the same relative place under tmp_path
REGISTRIES: dict[str, Path] = {
    "shipped": Path("config"),
    "offline": Path("examples/offline/config"),
}


# -- --no-skip ------------------------------------------------------------------------------

def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--no-skip", action="store_true", default=False,
        help="report every skipped test as failed (also: env STACKCTL_NO_SKIP=1)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "integration: needs a real Docker engine and the local image set")
    config.pluginmanager.register(_CollectSkips(config), "stackctl-collect-skips")


def no_skip(config: pytest.Config) -> bool:
    env = os.environ.get("STACKCTL_NO_SKIP", "").strip().lower()
    return bool(config.getoption("--no-skip", default=False)) or env in ("1", "true", "yes")


def _skip_reason(longrepr: Any) -> str:
    # a skip's longrepr is (path, lineno, "Skipped: reason")
    # (a list once pytest-xdist has sent it from a worker)
    if isinstance(longrepr, tuple | list) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def _as_failure(report: Any, what: str) -> None:
    reason = _skip_reason(report.longrepr)
    report.outcome = "failed"
    report.longrepr = f"{what} was skipped, which --no-skip/STACKCTL_NO_SKIP=1 makes a " \
                      f"failure: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail") and no_skip(item.config):
        _as_failure(report, item.nodeid)


class _CollectSkips:
    """A module skipped at import (`pytest.importorskip`, `allow_module_level`) fails the run.

    Turning the collect report itself into a failure would abort the whole session
    ("Interrupted: 1 error during collection"), so the skip is recorded here, listed in the
    summary and the exit status is set to 1 at the end, after every other test has run.
    Recorded from `pytest_collectreport`, which under pytest-xdist (`-n`) the controller
    also calls for the skipped reports of its workers (it never collects itself).
    """

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.skipped: list[str] = []

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.skipped and no_skip(self.config):
            self.skipped.append(f"{report.nodeid or 'collection'}: {_skip_reason(report.longrepr)}")

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.skipped:
            terminalreporter.section("skipped modules (failures under --no-skip)", red=True)
            for line in self.skipped:
                terminalreporter.line(line)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.skipped and exitstatus in (0, 5):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


# -- pytest-xdist ---------------------------------------------------------------------------

# tests/<folder>: modules whose tests share containers started once per module
_ONE_WORKER_PER_MODULE = ("contract", "integration")


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups (after tests/integration's)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist with `--dist loadgroup` (`make test`, `make test-fast`), each
    contract or integration module runs on one worker, so its module-scoped containers start
    once (tests/integration/conftest.py groups the modules that share a stack); the unit
    tests are spread test by test."""
    tests = REPO / "tests"
    for item in items:
        if not item.path.is_relative_to(tests):
            continue
        rel = item.path.relative_to(tests).parts
        if len(rel) > 1 and rel[0] in _ONE_WORKER_PER_MODULE \
                and not item.get_closest_marker("xdist_group"):  # a group of several modules
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))


# -- fixtures -------------------------------------------------------------------------------

@pytest.fixture
def runner():
    from click.testing import CliRunner

    return CliRunner()


@pytest.fixture
def registry_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """Factory: `registry_dir("shipped" | "offline", with_output=False, chdir=True)` → config dir.

    The registry lands at the same relative place under tmp_path as in the repo
    (tmp/config or tmp/examples/offline/config), so the registry's relative paths (output
    `../compose`, monitoring `../../../monitoring`) resolve inside tmp_path and the generated
    text equals the one generated in the repo. `with_output` also copies the committed
    generated folder next to it; `chdir` makes tmp_path the working directory, so the
    problem messages name files as `config/providers.yaml` like in the repo.
    `registry_dir(files={"providers.yaml": "...", ...})` writes an ad-hoc registry to
    tmp/config instead.
    """

    def make(name: str = "shipped", *, with_output: bool = False, chdir: bool = True,
             files: dict[str, str] | None = None) -> Path:
        if files is not None:
            dest = tmp_path / "config"
            dest.mkdir(parents=True, exist_ok=True)
            for fname, text in files.items():
                (dest / fname).write_text(text, encoding="utf-8")
        else:
            rel = REGISTRIES[name]
            dest = tmp_path / rel
            shutil.copytree(REPO / rel, dest, dirs_exist_ok=True)
            if with_output:
                out = rel.parent / "compose"
                shutil.copytree(REPO / out, tmp_path / out, dirs_exist_ok=True)
        for folder in ("monitoring", "grafana-dashboards"):  # what the monitoring mounts
            if not (tmp_path / folder).exists():
                shutil.copytree(REPO / folder, tmp_path / folder)  # not a symlink: resolved
        if chdir:
            monkeypatch.chdir(tmp_path)
        return dest

    return make


def _yaml():
    from ruamel.yaml import YAML

    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


def apply_yaml_edit(path: Path, edit: Callable[[Any], Any]) -> Path:
    """Load `path` round-trip, call `edit(data)` to mutate the tree in place, save it back.

    The return value of `edit` is ignored (so `lambda d: d["x"].pop("y")` is fine).
    """
    yaml = _yaml()
    data = yaml.load(path.read_text(encoding="utf-8"))
    edit(data)
    with path.open("w", encoding="utf-8") as fh:
        yaml.dump(data, fh)
    return path


@pytest.fixture
def yaml_edit() -> Callable[[Path, Callable[[Any], Any]], Path]:
    return apply_yaml_edit
