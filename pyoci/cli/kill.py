"""pyoci kill: send a signal (default TERM) to the init, or --all processes."""

from __future__ import annotations

from pyoci.cli.flags import Flag
from pyoci.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DESCRIPTION = """Send SIGNAL (default TERM) to the container's init, or with --all to every
process of the container and no one else's. SIGNAL is a number (1-64) or a
name, with or without SIG, in any case (9, KILL, SIGKILL, RTMIN+3). The init
is signalled through a pidfd after checking its start time, so a reused pid
is never signalled. Works on created, running and paused containers."""
EXAMPLE = "pyoci kill web KILL"
USAGE = "[--all] ID [SIGNAL]"
FLAGS = [Flag("all", aliases=("a",), help="signal every process of the container")]


def run(g: Any, opts: dict[str, Any], pos: list[str]) -> int:
    from pyoci.lifecycle.container import kill
    from pyoci.linux.names import parse_signal

    if not 1 <= len(pos) <= 2:
        raise UsageError(f"usage: pyoci kill {USAGE}")
    text = pos[1] if len(pos) > 1 else "TERM"
    try:
        # Signal 0 is the usual "is it alive" probe: nothing is delivered,
        # a stopped container fails as for any signal (runc accepts it too).
        sig = 0 if text == "0" else parse_signal(text)
    except ValueError:
        raise UsageError(f"unknown signal {text!r}") from None
    kill(g.root, pos[0], sig, all_processes=bool(opts["all"]))
    return 0
