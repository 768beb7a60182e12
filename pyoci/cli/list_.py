"""pyoci list: the containers under --root."""

from __future__ import annotations

import sys

from pyoci import jsonfast
from pyoci.cli.flags import Flag
from pyoci.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DESCRIPTION = """List the containers under the state directory (--root): ID, PID, STATUS,
BUNDLE, CREATED and OWNER, as a table or as JSON."""
EXAMPLE = "pyoci list --format json"
USAGE = "[-q] [--format table|json]"
FLAGS = [
    Flag("quiet", aliases=("q",), help="print only the ids"),
    Flag("format", "str", aliases=("f",), default="table", help="table or json"),
]


def run(g: Any, opts: dict[str, Any], pos: list[str]) -> int:
    from pyoci.lifecycle.container import list_containers

    if pos:
        raise UsageError(f"usage: pyoci list {USAGE}")
    items = list_containers(g.root)
    if opts["quiet"]:
        sys.stdout.write("".join(i["id"] + "\n" for i in items))
    elif opts["format"] == "json":
        sys.stdout.write(jsonfast.dumps(items) + "\n")
    elif opts["format"] == "table":
        rows = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
        rows += [(i["id"], str(i["pid"]), i["status"], i["bundle"], i["created"], str(i["owner"]))
                 for i in items]
        widths = [max(len(r[c]) for r in rows) for c in range(6)]
        for r in rows:
            sys.stdout.write("   ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() + "\n")
    else:
        raise UsageError("--format must be table or json")
    return 0
