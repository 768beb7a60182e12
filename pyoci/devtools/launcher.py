"""Write pyoci's fast launcher over the console script pip made.

pip's wrapper starts the interpreter normally: `site` runs (~6 ms, more
with an editable install's import hooks) and the wrapper imports `re`.
Engines exec the runtime several times per container, so the launcher starts
Python with -I -S (isolated: no PYTHON* variables, no user site, no site
module) and puts exactly two directories on sys.path: the one holding the
pyoci package (the checkout for an editable install) and the venv's
site-packages (for _cffi_backend).  Its first line names the interpreter by
absolute path, as engines call the runtime without PATH.

    python -m pyoci.devtools.launcher .venv/bin/pyoci
"""

from __future__ import annotations

import os
import sys
import sysconfig


def launcher_text() -> str:
    site = sysconfig.get_paths()["purelib"]
    if os.path.isdir(os.path.join(site, "pyoci")):
        # A regular install: the package (with its compiled helper) is here,
        # never the checkout this may run from.
        paths = [site]
    else:
        # An editable install: the package is the checkout.
        import pyoci

        pkg_parent = os.path.dirname(os.path.dirname(os.path.abspath(pyoci.__file__)))
        paths = [pkg_parent, site]
    return (f"#!{sys.executable} -IS\n"
            "# pyoci launcher (pyoci/devtools/launcher.py): -I -S skip `site`, which every\n"
            "# engine call would pay for.\n"
            "import sys\n"
            f"sys.path[:0] = {paths!r}\n"
            "if 'create' in sys.argv or 'run' in sys.argv:\n"
            "    # start the cgroup attach lock's grace period now (pyoci/linux/cgroups.py);\n"
            "    # a failure here is main()'s to report\n"
            "    try:\n"
            "        from pyoci.linux.cgroups import start_prewarm_if_root\n"
            "        start_prewarm_if_root()\n"
            "    except Exception:\n"
            "        pass\n"
            "from pyoci.cli import entry\n"
            "entry()\n")


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        sys.stderr.write("usage: python -m pyoci.devtools.launcher PATH\n")
        return 2
    path = argv[0]
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(launcher_text())
    os.chmod(tmp, 0o755)
    os.replace(tmp, path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
