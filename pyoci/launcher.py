"""Write pyoci's fast launcher over the console script pip made.

pip's wrapper starts the interpreter normally: `site` runs (~6 ms, more
with an editable install's import hooks) and the wrapper imports `re`.
Engines exec the runtime several times per container, so the launcher starts
Python with -I -S (isolated: no PYTHON* variables, no user site, no site
module) and puts exactly two directories on sys.path: the one holding the
pyoci package (the checkout for an editable install) and the venv's
site-packages (for _cffi_backend).  It turns the garbage collector off (the
commands that wait turn it on again) and installs the module bundle this
writer builds beside it (pyoci/bundle.py).  Its first line names the
interpreter by absolute path, as engines call the runtime without PATH.

    python -m pyoci.launcher .venv/bin/pyoci
"""

from __future__ import annotations

import os
import sys
import sysconfig


def bundle_path() -> str:
    """Where the module bundle (pyoci/bundle.py) of this environment lives."""
    return os.path.join(sys.prefix, "lib", "pyoci-modules.bin")


def package_parent() -> str:
    """The directory holding the pyoci package the launcher runs (and the
    bundle is built from): for a regular install the venv's site-packages,
    with its compiled helper, never the checkout this may run from (which
    `python -m` puts first on sys.path); for an editable one the checkout."""
    site = sysconfig.get_paths()["purelib"]
    if os.path.isdir(os.path.join(site, "pyoci")):
        return site
    import pyoci

    return os.path.dirname(os.path.dirname(os.path.abspath(pyoci.__file__)))


def launcher_text() -> str:
    site = sysconfig.get_paths()["purelib"]
    parent = package_parent()
    paths = [site] if parent == site else [parent, site]
    return (f"#!{sys.executable} -IS\n"
            "# pyoci launcher (pyoci/launcher.py): -I -S skip `site`, which every\n"
            "# engine call would pay for.\n"
            "import gc\n"
            "import sys\n"
            "# A CLI call lasts milliseconds and its garbage goes with the process;\n"
            "# the commands that wait (run, exec, events) enable the collector again.\n"
            "gc.disable()\n"
            f"sys.path[:0] = {paths!r}\n"
            "# pyoci's modules from one file, compiled at install (pyoci/bundle.py)\n"
            "from pyoci.bundle import install\n"
            f"install({bundle_path()!r})\n"
            "from pyoci.cli import entry\n"
            "entry()\n")


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        sys.stderr.write("usage: python -m pyoci.launcher PATH\n")
        return 2
    path = argv[0]
    if "no_debug_ranges" not in sys._xoptions:
        # The bundle's code without column positions (pyoci.bundle.build).
        os.execv(sys.executable, [sys.executable, "-X", "no_debug_ranges", "-m", "pyoci.launcher", path])
    from pyoci.bundle import build

    build(bundle_path(), package_parent())
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(launcher_text())
    os.chmod(tmp, 0o755)
    os.replace(tmp, path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
