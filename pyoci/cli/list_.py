"""pyoci list: the containers under --root."""

from __future__ import annotations

import sys

from pyoci import jsonfast
from pyoci.cli.flags import Flag
from pyoci.errors import PyociError, UsageError

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


def owner_name(uid: Any) -> str:
    """The state's owner as runc prints it: the user name, else #UID."""
    if not isinstance(uid, int) or isinstance(uid, bool):
        return str(uid)
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except (KeyError, OverflowError):
        return f"#{uid}"


def runc_item(i: dict[str, Any]) -> dict[str, Any]:
    """One container in runc's `list --format json` shape and field order."""
    out: dict[str, Any] = {
        "ociVersion": i.get("ociVersion", ""),
        "id": i["id"],
        "pid": i.get("pid", 0),
        "status": i.get("status", ""),
        "bundle": i.get("bundle", ""),
        "rootfs": i.get("rootfs", ""),
        "created": i.get("created", ""),
    }
    if i.get("annotations"):
        out["annotations"] = i["annotations"]
    out["owner"] = owner_name(i.get("owner", ""))
    return out


def run(g: Any, opts: dict[str, Any], pos: list[str]) -> int:
    import os

    from pyoci.lifecycle.container import list_containers

    if pos:
        raise UsageError(f"usage: pyoci list {USAGE}")
    fmt = opts["format"]
    if fmt not in ("table", "json"):
        raise UsageError("--format must be table or json")
    # The default root not made yet means no containers; a --root given on
    # the command line that does not exist is a mistake worth saying.
    if g.root_given and not os.path.isdir(g.root):
        import errno

        raise PyociError(f"list containers in --root {g.root}", path=g.root,
                         errno=errno.ENOTDIR if os.path.exists(g.root) else errno.ENOENT)
    items = [runc_item(i) for i in list_containers(g.root)]
    if opts["quiet"]:
        sys.stdout.write("".join(i["id"] + "\n" for i in items))
    elif fmt == "json":
        sys.stdout.write(jsonfast.dumps(items) + "\n")
    else:
        rows = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
        rows += [(i["id"], str(i["pid"]), i["status"], i["bundle"], i["created"], i["owner"])
                 for i in items]
        widths = [max(len(r[c]) for r in rows) for c in range(6)]
        for r in rows:
            sys.stdout.write("   ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() + "\n")
    return 0
