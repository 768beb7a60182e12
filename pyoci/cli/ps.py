"""pyoci ps: the pids of a container's processes."""

from __future__ import annotations

import sys

from pyoci.cli.flags import Flag
from pyoci.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DESCRIPTION = """List the processes of a container (found like `pyoci kill --all` finds
them). --format json prints a JSON array of pids; the default table runs the
host's ps(1) with the options after the id (default -ef) and keeps the
header and the container's rows. Pids are as seen from pyoci's pid
namespace. All flags come before the container id."""
EXAMPLE = "pyoci ps web -o pid,user,args"
USAGE = "[--format table|json] ID [ps options]"
STOP_AT_ARGS = True
FLAGS = [Flag("format", "str", aliases=("f",), default="table", help="table or json (a JSON array of pids)")]


def run(g: Any, opts: dict[str, Any], pos: list[str]) -> int:
    from pyoci.lifecycle.container import ps

    if not pos:
        raise UsageError(f"usage: pyoci ps {USAGE}")
    pids = ps(g.root, pos[0])
    if opts["format"] == "json":
        sys.stdout.write("[" + ",".join(str(p) for p in pids) + "]\n")
        return 0
    import subprocess

    args = pos[1:] or ["-ef"]
    out = subprocess.run(["ps", *args], capture_output=True, text=True).stdout.splitlines()
    if not out:
        return 0
    header, rows = out[0], out[1:]
    col = header.split().index("PID") if "PID" in header.split() else 1
    sys.stdout.write(header + "\n")
    for row in rows:
        fields = row.split()
        if len(fields) > col and fields[col].isdigit() and int(fields[col]) in pids:
            sys.stdout.write(row + "\n")
    return 0
