"""pyproject.toml declares exactly what runs: every runtime dependency is
imported by pyoci (its source, or its compiled cffi module), and the test
tools are extras, not runtime dependencies."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
RUNTIME = [re.split(r"[<>=!~ \[;]", d, maxsplit=1)[0] for d in PYPROJECT["project"]["dependencies"]]
TEST_TOOLS = {"pytest", "ruff", "mypy", "container-runtime-interface-api"}


def _top_level_modules(dist: str) -> set[str]:
    """The importable top-level names a distribution installs."""
    names: set[str] = set()
    for f in importlib.metadata.files(dist) or []:
        first = f.parts[0]
        if first.endswith((".dist-info", ".egg-info")) or first in ("..", "__pycache__"):
            continue
        name = first.split(".", 1)[0]
        if first.endswith((".py", ".so")) or "." not in first:
            names.add(name)
    return names


def _imported_by_pyoci() -> set[str]:
    """Top-level modules named in an import statement of pyoci's source, and
    the modules pyoci's compiled cffi extension imports (_cffi_backend)."""
    found: set[str] = set()
    pattern = re.compile(r"^\s*(?:import|from)\s+([A-Za-z_]\w*)", re.MULTILINE)
    for path in (REPO / "pyoci").rglob("*.py"):
        found.update(pattern.findall(path.read_text(encoding="utf-8")))
    for so in (REPO / "pyoci").rglob("*.so"):
        if b"_cffi_backend" in so.read_bytes():
            found.add("_cffi_backend")
    return found


def test_runtime_dependencies_are_declared_once() -> None:
    assert sorted(RUNTIME) == sorted({"cffi", "jsonschema", "structlog", "pyroute2"})
    assert len(RUNTIME) == len(set(RUNTIME))


@pytest.mark.parametrize("dist", RUNTIME)
def test_runtime_dependency_is_imported(dist: str) -> None:
    modules = _top_level_modules(dist)
    assert modules, f"{dist} is not installed (make dev)"
    if not modules & _imported_by_pyoci():
        pytest.fail(f"{dist} is declared in pyproject.toml but pyoci never imports {sorted(modules)}")


def test_test_tools_are_extras_only() -> None:
    test_extra = PYPROJECT["project"]["optional-dependencies"]["test"]
    extras = {re.split(r"[<>=!~ \[;]", d, maxsplit=1)[0] for d in test_extra}
    assert TEST_TOOLS <= extras
    assert not TEST_TOOLS & set(RUNTIME)


def test_cffi_is_what_the_compiled_module_needs() -> None:
    assert "_cffi_backend" in _top_level_modules("cffi")
    if not list((REPO / "pyoci").rglob("*.so")):
        pytest.skip("pyoci.native._helper is not built here (make dev)")
    assert "_cffi_backend" in _imported_by_pyoci()
