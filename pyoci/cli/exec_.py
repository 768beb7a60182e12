"""pyoci exec: run a process in a created or running container."""

from __future__ import annotations

from pyoci.cli.flags import Flag
from pyoci.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DESCRIPTION = """Run another process in a created or running container. The process is
either a runtime-spec process JSON file (--process) or COMMAND ARGS on the
template of the container's own process, with --env, --cwd, --user,
--additional-gids, --cap and --no-new-privs overriding parts of it. All
flags come before the container id. Without --detach, pyoci waits for the
process, forwards signals as `pyoci run` does, and exits with its status;
with --detach it returns 0 once the process has called execve."""
EXAMPLE = "pyoci exec --user 1000:1000 --cwd /tmp --env LANG=C.UTF-8 web ls -l"
USAGE = "[flags] ID [COMMAND [ARGS...]]   (or --process FILE instead of COMMAND)"
STOP_AT_ARGS = True
FLAGS = [
    Flag("process", "str", aliases=("p",), help="a runtime-spec process JSON file (instead of COMMAND)"),
    Flag("detach", aliases=("d",), help="do not wait for the process"),
    Flag("pid-file", "str", help="write the process's pid here"),
    Flag("tty", aliases=("t",), help="allocate a pseudo-terminal"),
    Flag("console-socket", "str", help="unix socket to receive the pty master"),
    Flag("cwd", "str", help="working directory in the container"),
    Flag("env", "list", aliases=("e",), help="KEY=VALUE, repeatable"),
    Flag("user", "str", aliases=("u",), help="UID[:GID]"),
    Flag("additional-gids", "list", aliases=("g",), help="extra group, repeatable"),
    Flag("cap", "list", aliases=("c",), help="add a capability, repeatable"),
    Flag("no-new-privs", help="set no_new_privs"),
    Flag("preserve-fds", "int", default=0, help="pass fds 3..3+N-1 to the process"),
    Flag("process-label", "str", help="SELinux label (refused: pyoci cannot apply labels)"),
    Flag("apparmor", "str", help="AppArmor profile (refused: pyoci cannot apply profiles)"),
    Flag("ignore-paused", help="exec into a paused container (the process runs once it is resumed)"),
    Flag("cgroup", "str", help="accepted for runc compatibility"),
]


def run(g: Any, opts: dict[str, Any], pos: list[str]) -> int:
    from pyoci.errors import PyociError

    try:
        return _run(g, opts, pos)
    except UsageError:
        raise
    except PyociError as e:
        # runc exits 255 when exec itself fails (the process's own status
        # otherwise), so a caller can tell the two apart.
        e.exit_code = 255
        raise


def _run(g: Any, opts: dict[str, Any], pos: list[str]) -> int:
    from pyoci.lifecycle import store
    from pyoci.lifecycle.exec_ import ExecOptions, check_exec_flags, exec_process, process_from_args

    if not pos:
        raise UsageError(f"usage: pyoci exec {USAGE}")
    cid, args = pos[0], pos[1:]
    from pyoci import report

    report.bind(id=cid)
    check_exec_flags(opts["user"], list(opts["additional-gids"]), list(opts["env"]), caps=list(opts["cap"]),
                     cwd=opts["cwd"], preserve_fds=int(opts["preserve-fds"] or 0), pid_file=opts["pid-file"])
    if opts["process"]:
        if args:
            raise UsageError("give either --process FILE or a command, not both")
        from pyoci.spec.load import load_process

        process = load_process(str(opts["process"]))
    else:
        if not args:
            raise UsageError("exec needs a command or --process FILE")
        with store.open_container(g.root, cid, shared=True) as c:
            base = dict(c.state.process if c.state is not None else {})
        process = process_from_args(base, args, env=list(opts["env"]), cwd=opts["cwd"],
                                    user=opts["user"], groups=list(opts["additional-gids"]),
                                    caps=list(opts["cap"]), tty=bool(opts["tty"]),
                                    no_new_privs=bool(opts["no-new-privs"]))
    if opts["tty"]:
        process["terminal"] = True
    if opts["console-socket"] and not process.get("terminal"):
        # Never accepted and ignored (runc refuses it too).
        raise UsageError(f"exec --console-socket {opts['console-socket']}: there is no terminal to send "
                         "(give --tty, or a --process with terminal: true)")
    # Labels are refused, as at create, when the host cannot apply them
    # (lifecycle.exec_ checks them), never dropped.
    if opts["apparmor"]:
        process["apparmorProfile"] = opts["apparmor"]
    if opts["process-label"]:
        process["selinuxLabel"] = opts["process-label"]
    return exec_process(g.root, cid, ExecOptions(
        process, detach=bool(opts["detach"]), pid_file=opts["pid-file"],
        console_socket=opts["console-socket"], preserve_fds=int(opts["preserve-fds"] or 0),
        ignore_paused=bool(opts["ignore-paused"])))
