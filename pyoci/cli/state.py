"""pyoci state: the runtime-spec state JSON of a container."""

from __future__ import annotations

import sys

from pyoci import jsonfast
from pyoci.cli._common import one_id
from pyoci.cli.flags import Flag

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DESCRIPTION = """Print the runtime-spec state of a container as JSON: ociVersion, id,
status (creating, created, running, paused or stopped), pid, bundle and
annotations."""
EXAMPLE = "pyoci state web"
USAGE = "ID"
FLAGS: list[Flag] = []


def run(g: Any, opts: dict[str, Any], pos: list[str]) -> int:
    # pyoci.lifecycle.store alone: `state` need not load pyoci.lifecycle.container
    from pyoci.lifecycle import store

    with store.open_container(g.root, one_id(pos, USAGE), peek=True) as c:
        out = store.oci_state(c, c.status())
    sys.stdout.write(jsonfast.dumps(out, indent=2) + "\n")
    return 0
