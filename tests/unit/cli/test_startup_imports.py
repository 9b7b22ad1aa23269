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


def test_switch_through_a_running_scheduler_loads_no_registry(tmp_path):
    """With the scheduler running, `switch` sends it the member and prints its answer: the
    registry, pydantic and the switching machinery (~250 ms) stay unimported, which is what
    keeps the command's overhead under the engines' own sleep + wake + 0.5 s."""
    import json
    import os
    import socket
    import threading

    from stackctl.resident import client

    env = {**os.environ, "STACKCTL_STATE_DIR": str(tmp_path)}
    os.environ["STACKCTL_STATE_DIR"] = str(tmp_path)
    try:
        path = client.control_socket(REPO / "examples/offline/config")
    finally:
        del os.environ["STACKCTL_STATE_DIR"]
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)
    asked: list[dict] = []

    def answer() -> None:
        conn, _ = server.accept()
        with conn:
            asked.append(json.loads(conn.makefile("rb").readline()))
            conn.sendall(json.dumps({"say": "waking vllm-dolphin"}).encode() + b"\n")
            conn.sendall(json.dumps({"ok": True, "lines": ["switched GPU group 'gpu0'"],
                                     "document": {"ok": True}}).encode() + b"\n")
    t = threading.Thread(target=answer, daemon=True)
    t.start()
    modules, p = imported_modules("switch", "dolphin", "-C", "examples/offline/config",
                                  env=env)
    server.close()
    assert p.returncode == 0, p.stdout + p.stderr[-2000:]
    assert asked and asked[0]["op"] == "switch" and asked[0]["member"] == "dolphin"
    assert "switched GPU group 'gpu0'" in p.stdout and "waking vllm-dolphin" in p.stdout
    heavy = sorted(m for m in modules if m.split(".")[0] == "pydantic"
                   or m.startswith(("stackctl.registry", "stackctl.switching", "ruamel")))
    assert heavy == [], f"`stackctl switch` through the scheduler imports {heavy[:8]}"
