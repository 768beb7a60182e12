"""pyoci run: create + start, wait for the container, delete it, exit with its status."""

from __future__ import annotations

from pyoci.cli._common import one_id
from pyoci.cli.create import FLAGS as CREATE_FLAGS
from pyoci.cli.create import create_options
from pyoci.cli.flags import Flag

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DESCRIPTION = """Create and start the container, wait for it, delete it, and exit with its
status (128+N when its init was killed by signal N). SIGINT, SIGTERM,
SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 and SIGWINCH are forwarded to the init.
--detach returns once the container has started; --keep leaves the stopped
container for `pyoci state` and `pyoci delete`. With process.terminal and no
--console-socket, run relays the pty itself."""
EXAMPLE = "pyoci run --bundle /containers/demo demo"
USAGE = "[create flags] [--detach] [--keep] ID"
FLAGS = CREATE_FLAGS + [
    Flag("detach", aliases=("d",), help="do not wait for the container"),
    Flag("keep", help="do not delete the container after it exits"),
]


def run(g: Any, opts: dict[str, Any], pos: list[str]) -> int:
    from pyoci.lifecycle.run import run_container

    return run_container(g.root, one_id(pos, USAGE), create_options(opts),
                         detach=bool(opts["detach"]), keep=bool(opts["keep"]))
