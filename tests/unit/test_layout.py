"""The test tree's own layout: tests mirror the source tree and share through conftest.py.

- No test module imports another test module: fixtures shared by several modules live in
  the nearest conftest.py, plain helpers and constants in non-test modules under tests/
  (tests/paths.py, tests/registry_edits.py, tests/tools.py, ...). Importing a test module
  runs its module-level code again under another name and makes pytest see its fixtures
  twice; a test module is then no longer free to change.
- tests/unit/<package>/ exists only for a package stackctl/<package>/ (tests/unit/scripts/
  and tests/unit/benchmarks/ mirror the repository's scripts/ and benchmarks/ folders).
  A `__snapshots__` folder holds a test module's expected screens (data, not a package).
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.paths import REPO

TESTS = REPO / "tests"
UNIT = TESTS / "unit"
# test folder (relative to tests/unit) → the source folder it mirrors, when not stackctl/<same>
MIRRORS = {"scripts": REPO / "scripts", "benchmarks": REPO / "benchmarks"}


def _is_test_module(dotted: str) -> bool:
    return dotted.rpartition(".")[2].startswith("test_")


def _package_of(path: Path) -> str:
    """Dotted name of the package holding `path` (relative to the repository root)."""
    return ".".join(path.parent.relative_to(REPO).parts)


def _absolute(module: str | None, level: int, path: Path) -> str:
    if level == 0:
        return module or ""
    parts = _package_of(path).split(".")
    base = parts[: len(parts) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def _is_module_file(dotted: str) -> bool:
    return (REPO / Path(*dotted.split("."))).with_suffix(".py").is_file()


def imported_test_modules(text: str, where: Path) -> list[str]:
    """The test modules that `text`, the source of the file `where`, imports (dotted)."""
    found = []
    for node in ast.walk(ast.parse(text, str(where))):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if _is_test_module(a.name)]
        elif isinstance(node, ast.ImportFrom):
            module = _absolute(node.module, node.level, where)
            if _is_test_module(module):
                found.append(module)
            else:  # `from tests.unit.registry import test_validate`
                found += [f"{module}.{a.name}" for a in node.names
                          if a.name.startswith("test_") and _is_module_file(f"{module}.{a.name}")]
    return found


def test_no_test_module_imports_another_test_module():
    offenders = {}
    for path in sorted(TESTS.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        if imported := imported_test_modules(path.read_text(encoding="utf-8"), path):
            offenders[str(path.relative_to(REPO))] = imported
    assert offenders == {}, (
        "test modules import other test modules; move what they share into the nearest "
        f"conftest.py (fixtures) or a non-test module under tests/ (helpers): {offenders}")


def test_the_import_check_sees_every_form_of_import():
    where = UNIT / "registry" / "test_example.py"  # where the text pretends to live
    text = ("import tests.unit.registry.test_validate\n"
            "from tests.unit.registry.test_validate import key\n"
            "from tests.unit.registry import test_validate\n"
            "from .test_validate import key\n"
            "from . import test_validate\n"
            "from ..registry.test_validate import key\n")
    assert imported_test_modules(text, where) == ["tests.unit.registry.test_validate"] * 6
    fine = ("from tests.registry_edits import key\n"
            "from tests.unit.registry.conftest import x\n"
            "from tests.fakes.docker import FakeDocker\n")
    assert imported_test_modules(fine, where) == []


def test_unit_test_packages_mirror_the_source_packages():
    strays = []
    for folder in sorted(p for p in UNIT.rglob("*")
                         if p.is_dir() and p.name not in ("__pycache__", "__snapshots__")):
        rel = folder.relative_to(UNIT)
        mirror = MIRRORS.get(rel.parts[0])
        source = (mirror.joinpath(*rel.parts[1:]) if mirror is not None
                  else REPO / "stackctl" / rel)
        if not source.is_dir():
            strays.append(f"tests/unit/{rel.as_posix()} (no {source.relative_to(REPO).as_posix()}/)")
    assert strays == [], f"test packages that mirror no source package: {strays}"
