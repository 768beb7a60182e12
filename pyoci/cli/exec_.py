"""pyoci exec: run a process in a created or running container."""

from __future__ import annotations

from pyoci.cli.flags import Flag
from pyoci.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

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
    Flag("ignore-paused", help="accepted for runc compatibility"),
    Flag("cgroup", "str", help="accepted for runc compatibility"),
]


def run(g: Any, opts: dict[str, Any], pos: list[str]) -> int:
    from pyoci.lifecycle import store
    from pyoci.lifecycle.exec_ import ExecOptions, check_exec_flags, exec_process, process_from_args

    if not pos:
        raise UsageError(f"usage: pyoci exec {USAGE}")
    cid, args = pos[0], pos[1:]
    check_exec_flags(opts["user"], list(opts["additional-gids"]), list(opts["env"]))
    if opts["process"]:
        if args:
            raise UsageError("give either --process FILE or a command, not both")
        from pyoci.spec.load import load_process

        process = load_process(str(opts["process"]))
    else:
        if not args:
            raise UsageError("exec needs a command or --process FILE")
        with store.open_container(g.root, cid, shared=True) as c:
            base = dict((c.state or {}).get("process") or {})
        process = process_from_args(base, args, env=list(opts["env"]), cwd=opts["cwd"],
                                    user=opts["user"], groups=list(opts["additional-gids"]),
                                    caps=list(opts["cap"]), tty=bool(opts["tty"]),
                                    no_new_privs=bool(opts["no-new-privs"]))
    if opts["tty"]:
        process["terminal"] = True
    # Labels are refused, as at create, when the host cannot apply them
    # (lifecycle.exec_ checks them), never dropped.
    if opts["apparmor"]:
        process["apparmorProfile"] = opts["apparmor"]
    if opts["process-label"]:
        process["selinuxLabel"] = opts["process-label"]
    return exec_process(g.root, cid, ExecOptions(
        process, detach=bool(opts["detach"]), pid_file=opts["pid-file"],
        console_socket=opts["console-socket"], preserve_fds=int(opts["preserve-fds"] or 0)))
