"""No module of pyoci imports a module that imports it back, directly or
through others.

The graph is read from the source with ast: every ``import`` and ``from
... import`` of a pyoci module anywhere in a file (at the top, inside a
function, under ``if TYPE_CHECKING:``) is an edge, and so is importing a
package's module from a module outside that package (Python runs the
package's __init__.py first).  A cycle is reported with its path.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PKG = REPO / "pyoci"


def module_names() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for path in sorted(PKG.rglob("*.py")):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    is_pkg = path.name == "__init__.py"
    package = name if is_pkg else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")
                up = up[: len(up) - (node.level - 1)]
                base = ".".join(up + ([base] if base else []))
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        for t in targets:
            if t not in modules:
                continue
            found.add(t)
            # importing a.b.c runs a/__init__.py and a/b/__init__.py first
            parts = t.split(".")
            for i in range(1, len(parts)):
                parent = ".".join(parts[:i])
                if parent in modules and not name.startswith(parent + ".") and name != parent:
                    found.add(parent)
    found.discard(name)
    return found


def graph() -> dict[str, set[str]]:
    modules = module_names()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def find_cycle(g: dict[str, set[str]]) -> list[str] | None:
    WHITE, GREY, BLACK = 0, 1, 2
    color = dict.fromkeys(g, WHITE)
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        color[n] = GREY
        stack.append(n)
        for m in sorted(g[n]):
            if color[m] == GREY:
                return stack[stack.index(m):] + [m]
            if color[m] == WHITE and (c := visit(m)):
                return c
        stack.pop()
        color[n] = BLACK
        return None

    for n in sorted(g):
        if color[n] == WHITE and (c := visit(n)):
            return c
    return None


def test_the_graph_sees_the_package() -> None:
    g = graph()
    assert "pyoci.cgroups.manager" in g and "pyoci.cgroups.common" in g["pyoci.cgroups.manager"]
    assert "pyoci.cgroups.v2" in g["pyoci.cgroups.manager"]      # a lazy import counts


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_module_imports_a_module_that_imports_it_back() -> None:
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_only_the_cgroup_manager_is_imported_from_outside_its_package() -> None:
    """The rest of pyoci reaches the cgroups through one Manager
    (pyoci.cgroups.manager); the modules behind it are the package's own."""
    g = graph()
    inside = "pyoci.cgroups."
    bad = sorted(f"{name} imports {dep}" for name, deps in g.items() if not name.startswith(inside)
                 for dep in deps if dep.startswith(inside) and dep != "pyoci.cgroups.manager")
    assert not bad, bad
