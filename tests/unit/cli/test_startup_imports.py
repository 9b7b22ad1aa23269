"""`stackctl --help` and `stackctl validate` must not import the heavy libraries.

litellm (seconds to import), python_on_whales, rich and requests belong to the commands that
need them. Each case runs a fresh interpreter with `-X importtime` (every module imported is
listed on stderr) and looks for them.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.paths import REPO

HEAVY = ("litellm", "python_on_whales", "rich", "requests", "httpx", "openai", "textual")
MAIN = "import sys; from stackctl.cli import main; sys.argv = ['stackctl', *sys.argv[1:]]; main()"


def imported_modules(*args: str, env: dict[str, str] | None = None
                     ) -> tuple[set[str], subprocess.CompletedProcess]:
    p = subprocess.run([sys.executable, "-X", "importtime", "-c", MAIN, *args], env=env,
                       check=False, capture_output=True, text=True, cwd=REPO, timeout=60)
    modules = set()
    for line in p.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name != "imported package":
                modules.add(name)
    return modules, p


def top_level(modules: set[str]) -> set[str]:
    return {m.split(".", 1)[0] for m in modules}


@pytest.mark.parametrize("args", [("--help",), ("validate",),
                                  ("validate", "-C", "examples/offline/config", "--json"),
                                  ("top", "--help")],
                         ids=["help", "validate", "validate-json", "top-help"])
def test_no_heavy_imports(args):
    modules, p = imported_modules(*args)
    assert p.returncode == 0, p.stdout + p.stderr[-2000:]
    assert "stackctl.cli" in modules, "importtime output not parsed"
    heavy = sorted(top_level(modules) & set(HEAVY))
    assert heavy == [], f"`stackctl {' '.join(args)}` imports {heavy}"


def test_help_imports_no_command_module():
    modules, p = imported_modules("--help")
    assert p.returncode == 0, p.stderr[-2000:]
    assert "validate" in p.stdout and "generate" in p.stdout
    loaded = sorted(m for m in modules if m.startswith("stackctl.") and m != "stackctl.cli")
    assert loaded == [], f"--help loads {loaded}"
    assert not {"pydantic", "ruamel"} & top_level(modules)
