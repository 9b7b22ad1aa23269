"""What runs inside containers ships with the wheel, and the stub stays runnable there.

The in-container code is found through the package (stackctl.incontainer's paths), so an
installed, non-editable copy builds the images as a checkout does. The stub runs on the
image's bare python3 as the top-level package `inference_stub`: standard library and
relative imports only.
"""

from __future__ import annotations

import ast
import sys
import tomllib

from setuptools import find_packages

from stackctl import incontainer
from tests.paths import REPO


def test_the_in_container_code_is_in_the_packages_the_wheel_ships() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    setuptools = pyproject["tool"]["setuptools"]
    packages = find_packages(str(REPO), **setuptools["packages"]["find"])
    assert {"stackctl.incontainer", "stackctl.incontainer.inference_stub"} <= set(packages)
    assert "images/contexts/**/*" in setuptools["package-data"]["stackctl"]


def test_the_paths_point_into_the_package() -> None:
    assert incontainer.HERE == REPO / "stackctl" / "incontainer"
    for path in (incontainer.VERIFY_IMAGE, incontainer.GATEWAY_CHECK, incontainer.GRACEFUL_SHUTDOWN):
        assert path.is_file(), path
    assert (incontainer.INFERENCE_STUB / "__main__.py").is_file()


def test_the_stub_imports_only_the_standard_library_and_itself() -> None:
    for path in sorted(incontainer.INFERENCE_STUB.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            foreign = [n for n in names if n.split(".")[0] not in sys.stdlib_module_names | {"__future__"}]
            assert not foreign, f"{path.name}:{node.lineno} imports {foreign}"


def test_every_stub_module_stays_well_under_600_lines() -> None:
    sizes = {p.name: len(p.read_text(encoding="utf-8").splitlines())
             for p in incontainer.INFERENCE_STUB.glob("*.py")}
    assert max(sizes.values()) < 450, sizes
