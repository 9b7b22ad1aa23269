"""The package's import graph: no circles, and the layers point one way.

The registry layer holds the stack's vocabulary and reads the config; the renderers turn
it into documents and know nothing of files on disk, Docker or the CLI. So
`stackctl.registry` imports only itself (and the two leaf modules every layer may use), and
`stackctl.render` only itself and the registry.

Every import counts: at module level or inside a function (an import deferred to a call is
still a dependency, only a later one), under `if TYPE_CHECKING:`, relative or absolute.
The graph is read from the source (ast), never by importing it. The Docker build contexts
(stackctl/images/contexts) hold no Python, and stackctl/incontainer's modules import
nothing of stackctl (they run inside the gateway's container): both are read like the rest.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

from tests.paths import REPO

PACKAGE = REPO / "stackctl"
SHARED = {"stackctl.hints", "stackctl.errors"}  # leaf modules any layer may import
# layer → what its modules may import from stackctl (anything else of stackctl is refused)
ALLOWED = {
    "stackctl.registry": {"stackctl.registry"} | SHARED,
    "stackctl.render": {"stackctl.render", "stackctl.registry"} | SHARED,
}

Edges = dict[str, dict[str, list[str]]]  # importer → imported → where ("path:line")


def module_names(package: Path) -> dict[str, Path]:
    """Dotted module name → file, for every .py file below `package`."""
    out = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imports(name: str, path: Path, modules: dict[str, Path]) -> list[tuple[str, int]]:
    """(module of the package imported, line) for every import statement in the file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # `from ..x import y`: relative to the importer's package
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            # `from pkg import sub` imports the module pkg.sub (and runs pkg's __init__)
            subs = [f"{source}.{a.name}" for a in node.names if f"{source}.{a.name}" in modules]
            if source != name or not subs:
                out.append((source, node.lineno))
            out += [(sub, node.lineno) for sub in subs]
    return [(m, line) for m, line in out if m in modules]


def import_graph(package: Path) -> Edges:
    modules = module_names(package)
    edges: Edges = {name: defaultdict(list) for name in modules}
    for name, path in modules.items():
        for imported, line in imports(name, path, modules):
            edges[name][imported].append(f"{path.relative_to(package.parent)}:{line}")
    return edges


def reachable(edges: Edges, start: str) -> set[str]:
    """Modules reached from `start` through one import or more."""
    seen: set[str] = set()
    todo = list(edges[start])
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo += edges[module]
    return seen


def circles(edges: Edges) -> list[list[str]]:
    """Every circle as its modules, sorted: a set of modules that all reach each other (a
    strongly connected component), or one module that imports itself."""
    reach = {module: reachable(edges, module) for module in edges}
    out: list[list[str]] = []
    for module in sorted(edges):
        if module in reach[module] and not any(module in c for c in out):
            out.append(sorted(m for m in reach[module] if module in reach[m]))
    return out


def describe_circle(edges: Edges, circle: list[str]) -> str:
    lines = [f"{len(circle)} modules: {', '.join(circle)}"]
    for a in circle:
        for b in sorted(set(edges[a]) & set(circle)):
            lines.append(f"    {a} -> {b}  ({', '.join(edges[a][b])})")
    return "\n".join(lines)


def outside(edges: Edges, layer: str, allowed: set[str]) -> list[str]:
    """`importer -> imported (where)` for each import of a `layer` module beyond `allowed`."""
    def within(module: str, prefixes: set[str]) -> bool:
        return any(module == p or module.startswith(p + ".") for p in prefixes)

    return [f"{a} -> {b}  ({', '.join(where)})"
            for a in sorted(edges) if within(a, {layer})
            for b, where in sorted(edges[a].items()) if not within(b, allowed)]


@pytest.fixture(scope="module")
def graph() -> Edges:
    return import_graph(PACKAGE)


def test_no_import_circles(graph):
    found = circles(graph)
    assert not found, ("import circles in stackctl (move the shared piece to the module "
                       "both sides may import):\n" + "\n".join(describe_circle(graph, c)
                                                              for c in found))


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_layer_imports(graph, layer):
    bad = outside(graph, layer, ALLOWED[layer])
    assert not bad, (f"{layer} may import only {', '.join(sorted(ALLOWED[layer]))}:\n"
                     + "\n".join(bad))


def test_the_graph_is_read(graph, tmp_path):
    """Function-level, TYPE_CHECKING and relative imports are edges; the check finds the
    circles they close (a package written for this test)."""
    assert graph["stackctl.render.compose"]["stackctl.registry.load"]  # sanity: real edges
    package = tmp_path / "stackctl"
    files = {
        "__init__.py": "",
        "a/__init__.py": "",
        "a/one.py": "def f():\n    from stackctl.a import two\n",
        "a/two.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                    "    from .three import X\n",
        "a/three.py": "from ..b import four\n",
        "b/__init__.py": "",
        "b/four.py": "import stackctl.a.one\n",
        "b/self.py": "from stackctl.b import self\n",
        "b/alone.py": "from stackctl.a import two\n",
    }
    for rel, text in files.items():
        (package / rel).parent.mkdir(parents=True, exist_ok=True)
        (package / rel).write_text(text)
    edges = import_graph(package)
    assert circles(edges) == [["stackctl.a.one", "stackctl.a.three", "stackctl.a.two",
                               "stackctl.b.four"], ["stackctl.b.self"]]
    assert "stackctl/a/two.py:3" in describe_circle(edges, circles(edges)[0])
    assert outside(edges, "stackctl.a", {"stackctl.a"}) == [
        "stackctl.a.three -> stackctl.b  (stackctl/a/three.py:1)",
        "stackctl.a.three -> stackctl.b.four  (stackctl/a/three.py:1)"]
