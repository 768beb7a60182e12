"""pyoci doctor: check that this user can run (rootless) containers here."""

from __future__ import annotations

import json
import sys

from pyoci.cli.flags import Flag

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DESCRIPTION = """Check that the current user can run (rootless) containers on this
machine: user namespaces, subordinate ids, newuidmap/newgidmap,
XDG_RUNTIME_DIR, cgroup delegation, /dev/net/tun, kernel features
(clone3, the mount API, time namespaces, idmapped mounts, overlayfs) and,
for each PATH (default: the state directory and
~/.local/share/containers), whether files there can be chowned to
subordinate ids. Prints a table with a fix under each warning or failure,
or --json."""
EXAMPLE = "pyoci doctor --json ~/.local/share/containers"
USAGE = "[--json] [PATH...]"
FLAGS = [
    Flag("json", help="print a JSON list of {name, status, found, fix} instead of a table"),
]


def run(g: Any, opts: dict[str, Any], pos: list[str]) -> int:
    import os

    from pyoci.linux import doctor

    ctx = doctor.Context([], state_root=g.root)
    ctx.paths = [os.path.abspath(p) for p in pos] if pos else doctor.default_paths(g.root, ctx.home)
    results = doctor.run_checks(ctx)
    if opts["json"]:
        sys.stdout.write(json.dumps(results, indent=2) + "\n")
    else:
        sys.stdout.write(doctor.format_table(results, ctx))
    return 1 if doctor.failed(results) else 0
