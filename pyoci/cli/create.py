"""pyoci create: set the container up and leave its init waiting for start."""

from __future__ import annotations

from pyoci.cli._common import one_id
from pyoci.cli.flags import Flag

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DESCRIPTION = """Set up the container described by the bundle's config.json (namespaces,
cgroups, mounts, devices, the root file system) and leave its init waiting
for `pyoci start`: the user's program has not run yet. The prestart,
createRuntime and createContainer hooks run here. --pid-file gets the init's
pid as decimal digits with no newline; --console-socket is the unix socket
that receives the pty master when process.terminal is true (required then).
--preserve-fds N passes fds 3 to 3+N-1; a number the caller did not open
reaches the container as /dev/null. Whatever fails, nothing is left behind."""
EXAMPLE = "pyoci create --bundle /containers/web --pid-file /run/web.pid web"
USAGE = ("[--bundle DIR] [--pid-file F] [--console-socket S] [--no-pivot] [--no-new-keyring] "
         "[--preserve-fds N] ID")
FLAGS = [
    Flag("bundle", "str", aliases=("b",), default=".", help="bundle directory (default: the current one)"),
    Flag("pid-file", "str", help="write the init's pid here (decimal, no newline)"),
    Flag("console-socket", "str", help="unix socket to receive the pty master (process.terminal)"),
    Flag("no-pivot", help="use MS_MOVE + chroot instead of pivot_root (ramfs roots)"),
    Flag("no-new-keyring", help="keep the caller's session keyring"),
    Flag("preserve-fds", "int", default=0, help="pass fds 3..3+N-1 to the container"),
]


def create_options(opts: dict[str, Any]) -> Any:
    from pyoci.lifecycle.create import CreateOptions

    return CreateOptions(bundle=str(opts["bundle"] or "."), pid_file=opts["pid-file"],
                         console_socket=opts["console-socket"], no_pivot=bool(opts["no-pivot"]),
                         no_new_keyring=bool(opts["no-new-keyring"]),
                         preserve_fds=int(opts["preserve-fds"] or 0))


def run(g: Any, opts: dict[str, Any], pos: list[str]) -> int:
    from pyoci.lifecycle.create import create

    create(g.root, one_id(pos, USAGE), create_options(opts))
    return 0
