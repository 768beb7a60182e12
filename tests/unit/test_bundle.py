"""pyoci/bundle.py: modules served from one file, never stale."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LAUNCHER = REPO / ".venv" / "bin" / "pyoci"

_PROBE = r"""
import sys
sys.path[:0] = [sys.argv[1], sys.argv[2]]
from pyoci.bundle import install
install(sys.argv[3])
import pkgx.sub as s
import pkgx
print(type(s.__loader__).__name__, s.__file__, s.__spec__.origin, pkgx.__path__[0], s.VALUE, s.double(21))
try:
    s.fail()
except ZeroDivisionError as e:
    tb = e.__traceback__
    while tb.tb_next:
        tb = tb.tb_next
    print(tb.tb_frame.f_code.co_filename, tb.tb_lineno)
"""


def _package(base: Path, value: str) -> None:
    pkg = base / "pkgx"
    pkg.mkdir(exist_ok=True)
    (pkg / "__init__.py").write_text('"""a package"""\n')
    (pkg / "sub.py").write_text(f"VALUE = {value!r}\n\n\ndef double(x: int) -> int:\n    return 2 * x\n\n\n"
                                "def fail():\n    return 1 / 0\n\n\n"
                                "def documented(x: int) -> int:\n    'text'\n\n\n"
                                "class Kept:\n    'text'\n    field: int\n")


def _probe(base: Path, bundle: Path) -> list[str]:
    p = subprocess.run([sys.executable, "-I", "-S", "-c", _PROBE, str(REPO), str(base), str(bundle)],
                       capture_output=True, text=True, check=False, env={"PYTHONDONTWRITEBYTECODE": "1"})
    assert p.returncode == 0, p.stderr
    return p.stdout.splitlines()


def _build(base: Path, bundle: Path) -> int:
    sys.path.insert(0, str(REPO))
    try:
        from pyoci.bundle import build

        return build(str(bundle), str(base), "pkgx", extra=())
    finally:
        sys.path.remove(str(REPO))


def test_modules_come_from_the_bundle_with_their_real_names(tmp_path: Path) -> None:
    _package(tmp_path, "bundled")
    bundle = tmp_path / "mods.bin"
    assert _build(tmp_path, bundle) == 2
    first, second = _probe(tmp_path, bundle)
    loader, file, origin, path, value, doubled = first.split()
    sub = str(tmp_path / "pkgx" / "sub.py")
    assert (loader, file, origin, path, value, doubled) == (
        "BundleFinder", sub, sub, str(tmp_path / "pkgx"), "bundled", "42")
    assert second == f"{sub} 9"           # tracebacks name the real source and line


_LEAN = r"""
import sys
sys.path[:0] = [sys.argv[1], sys.argv[2]]
from pyoci.bundle import install
install(sys.argv[3])
import pkgx, pkgx.sub as s
print("|".join(map(repr, (pkgx.__doc__, s.documented.__doc__, s.documented.__annotations__,
                          s.double.__annotations__, s.Kept.__doc__, list(s.Kept.__annotations__)))))
"""


def test_bundled_code_leaves_out_docstrings_and_annotations_of_functions(tmp_path: Path) -> None:
    """What only readers and type checkers use is not unmarshalled on every
    call; a module's own docstring (pyoci.cli.manpages reads them) and class
    annotations (NamedTuple needs them) stay."""
    _package(tmp_path, "bundled")
    bundle = tmp_path / "mods.bin"
    _build(tmp_path, bundle)
    p = subprocess.run([sys.executable, "-I", "-S", "-c", _LEAN, str(REPO), str(tmp_path), str(bundle)],
                       capture_output=True, text=True, check=False, env={"PYTHONDONTWRITEBYTECODE": "1"})
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "'a package'|None|{}|{}|None|['field']"


def test_the_launchers_bundle_has_no_column_positions() -> None:
    """pyoci.launcher builds the bundle under -X no_debug_ranges: line
    numbers only (tracebacks keep their lines, without the carets)."""
    import marshal

    sys.path.insert(0, str(REPO))
    try:
        from pyoci import bundle as b
    finally:
        sys.path.remove(str(REPO))
    path = REPO / ".venv" / "lib" / "pyoci-modules.bin"
    data = path.read_bytes()
    start = len(b.FORMAT) + len(b._external.MAGIC_NUMBER) + 8
    n = int.from_bytes(data[start - 8:start], "little")
    index = marshal.loads(data[start:start + n])
    _origin, off, length, _m, _s, _p = index["pyoci.errors"]
    code = marshal.loads(data[start + n + off:start + n + off + length])
    positions = list(code.co_positions())
    assert positions and any(line is not None for line, _, _, _ in positions)
    assert all(col is None and end is None for _, _, col, end in positions), positions[:5]


def test_a_changed_source_is_imported_normally(tmp_path: Path) -> None:
    _package(tmp_path, "bundled")
    bundle = tmp_path / "mods.bin"
    _build(tmp_path, bundle)
    _package(tmp_path, "edited")          # same length, new content and mtime
    st = os.stat(tmp_path / "pkgx" / "sub.py")
    os.utime(tmp_path / "pkgx" / "sub.py", ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    loader, _, _, _, value, _ = _probe(tmp_path, bundle)[0].split()
    assert (loader, value) == ("SourceFileLoader", "edited")


def test_a_missing_or_foreign_bundle_changes_nothing(tmp_path: Path) -> None:
    _package(tmp_path, "plain")
    assert _probe(tmp_path, tmp_path / "absent.bin")[0].split()[0] == "SourceFileLoader"
    foreign = tmp_path / "foreign.bin"
    _build(tmp_path, foreign)
    data = bytearray(foreign.read_bytes())
    data[len(b"pyoci-modules-2\n")] ^= 0xFF    # another Python's magic number
    foreign.write_bytes(bytes(data))
    assert _probe(tmp_path, foreign)[0].split()[0] == "SourceFileLoader"


def test_the_installed_launcher_serves_pyoci_from_its_bundle() -> None:
    """What `.venv/bin/pyoci` imports for `run` comes from the bundle, except
    modules edited since the install (those are imported normally)."""
    text = LAUNCHER.read_text()
    prelude = text.split("from pyoci.cli import entry")[0].split("\n", 1)[1]
    probe = prelude + (
        "import pyoci.cli.run, pyoci.lifecycle.container, pyoci.lifecycle.create, pyoci.native.spawn, pyoci.plan.build\n"
        "import pyoci.spec.load, pyoci.cgroups.manager\n"
        "for n, m in sorted(sys.modules.items()):\n"
        "    if m.__spec__ is None:\n"
        "        continue                 # cffi's pyoci.native._helper.lib and .ffi\n"
        "    if n.startswith('pyoci.') and n != 'pyoci.bundle' or n in ('_json', '_cffi_backend'):\n"
        "        print(n, type(m.__loader__).__name__, m.__spec__.origin)\n")
    p = subprocess.run([str(REPO / ".venv" / "bin" / "python"), "-I", "-S", "-c", probe],
                       capture_output=True, text=True, check=False)
    assert p.returncode == 0, p.stderr
    found = {n: (kind, origin) for n, kind, origin in (line.split() for line in p.stdout.splitlines())}
    assert len(found) > 20
    bundled = [n for n, (kind, _) in found.items() if kind == "BundleFinder"]
    assert len(bundled) > len(found) // 2, found
    # extension modules: found through the bundle, loaded by the usual loader
    for name in ("_json", "_cffi_backend", "pyoci.native._helper"):
        kind, origin = found[name]
        assert kind == "ExtensionFileLoader" and origin.endswith(".so"), found[name]
    # every pyoci module comes from the package the launcher runs (first on its path)
    first = re.search(r"sys\.path\[:0\] = \['([^']+)'", text)
    assert first, text
    for name, (_, origin) in found.items():
        if name.startswith("pyoci."):
            assert origin.startswith(first.group(1) + "/pyoci/"), (name, origin)


_CHOICE = r"""
import os, sys, sysconfig
sys.path.insert(0, sys.argv[1])
from pyoci import launcher
site = sys.argv[2]
sysconfig.get_paths = lambda *a, **k: {"purelib": site}
print(launcher.package_parent())
os.mkdir(os.path.join(site, "pyoci"))
print(launcher.package_parent())
text = launcher.launcher_text()
print(text.split("sys.path[:0] = ")[1].split("\n")[0])
"""


def test_a_regular_install_runs_and_bundles_its_own_package(tmp_path: Path) -> None:
    """`python -m pyoci.launcher` from the checkout (which -m puts
    first on sys.path) must name site-packages, not the checkout, once the
    package is installed there."""
    site = tmp_path / "site"
    site.mkdir()
    p = subprocess.run([sys.executable, "-I", "-S", "-c", _CHOICE, str(REPO), str(site)],
                       capture_output=True, text=True, check=False, cwd=REPO)
    assert p.returncode == 0, p.stderr
    editable, regular, paths = p.stdout.splitlines()
    assert editable == str(REPO)               # not installed there: the checkout
    assert regular == str(site)
    assert paths == repr([str(site)])
