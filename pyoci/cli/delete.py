"""pyoci delete: remove a stopped container; --force kills a live one first."""

from __future__ import annotations

from pyoci.cli._common import one_id
from pyoci.cli.flags import Flag

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DESCRIPTION = """Remove a stopped container: its cgroups, its state directory, and what
create set up; the poststop hooks run. With --force a created, running or
paused container is killed first, and an unknown id is not an error."""
EXAMPLE = "pyoci delete --force web"
USAGE = "[--force] ID"
FLAGS = [Flag("force", aliases=("f",), help="kill the container if it runs; succeed if it is unknown")]


def run(g: Any, opts: dict[str, Any], pos: list[str]) -> int:
    from pyoci.lifecycle.container import delete

    delete(g.root, one_id(pos, USAGE), force=bool(opts["force"]))
    return 0
