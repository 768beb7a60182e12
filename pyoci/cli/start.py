"""pyoci start: run the user's program in a created container."""

from __future__ import annotations

from pyoci.cli._common import one_id
from pyoci.cli.flags import Flag

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DESCRIPTION = """Release the user's program in a created container: its init, waiting since
`pyoci create`, calls execve. The startContainer hook runs in the container
just before; the poststart hooks run after."""
EXAMPLE = "pyoci start web"
USAGE = "ID"
FLAGS: list[Flag] = []


def run(g: Any, opts: dict[str, Any], pos: list[str]) -> int:
    from pyoci.lifecycle.container import start

    start(g.root, one_id(pos, USAGE))
    return 0
