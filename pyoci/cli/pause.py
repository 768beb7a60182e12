"""pyoci pause: freeze every process of a container (cgroup freezer)."""

from __future__ import annotations

from pyoci.cli._common import one_id
from pyoci.cli.flags import Flag

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DESCRIPTION = """Freeze every process of a running container with the cgroup freezer (v1
freezer.state, or v2 cgroup.freeze). Needs the freezer of a cgroup that
pyoci created for the container."""
EXAMPLE = "pyoci pause web"
USAGE = "ID"
FLAGS: list[Flag] = []


def run(g: Any, opts: dict[str, Any], pos: list[str]) -> int:
    from pyoci.lifecycle.container import pause

    pause(g.root, one_id(pos, USAGE))
    return 0
