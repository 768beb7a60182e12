"""pyoci resume: thaw a paused container."""

from __future__ import annotations

from pyoci.cli._common import one_id
from pyoci.cli.flags import Flag

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DESCRIPTION = """Thaw a paused container (the reverse of `pyoci pause`)."""
EXAMPLE = "pyoci resume web"
USAGE = "ID"
FLAGS: list[Flag] = []


def run(g: Any, opts: dict[str, Any], pos: list[str]) -> int:
    from pyoci.lifecycle.container import pause

    pause(g.root, one_id(pos, USAGE), resume=True)
    return 0
