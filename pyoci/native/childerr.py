"""Turning the init's ERROR and WARNING records into errors that name the
failed step (and a hint where the usual cause is known).

Its own module so that `start` (pyoci.native.startmsg), which does not load
pyoci.native.spawn, and spawn itself share it without importing each other.
"""

from __future__ import annotations

import errno
import os

from pyoci.errors import ChildError
from pyoci.linux import consts
from pyoci.native._helper import lib

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyoci.native.startmsg import Message
    from pyoci.plan.build import Op, Plan

# Names of the steps outside the ops list, for error messages.
STEP_NAMES: dict[int, str] = {
    lib.PYOCI_STEP_FORK: "fork",
    lib.PYOCI_STEP_OPEN_NS: "open namespace",
    lib.PYOCI_STEP_SETNS: "setns",
    lib.PYOCI_STEP_UNSHARE_USER: "create user namespace",
    lib.PYOCI_STEP_UNSHARE: "create namespaces",
    lib.PYOCI_STEP_SETID_ROOT: "become root in the user namespace",
    lib.PYOCI_STEP_SYNC: "sync with the parent",
    lib.PYOCI_STEP_HOSTNAME: "set hostname ($.hostname)",
    lib.PYOCI_STEP_DOMAINNAME: "set domainname ($.domainname)",
    lib.PYOCI_STEP_RLIMIT: "set rlimit ($.process.rlimits)",
    lib.PYOCI_STEP_CHDIR: "change to the working directory ($.process.cwd)",
    lib.PYOCI_STEP_SETGROUPS: "set supplementary groups ($.process.user.additionalGids)",
    lib.PYOCI_STEP_SETGID: "set gid ($.process.user.gid)",
    lib.PYOCI_STEP_SETUID: "set uid ($.process.user.uid)",
    lib.PYOCI_STEP_CAPBSET: "drop bounding capabilities ($.process.capabilities.bounding)",
    lib.PYOCI_STEP_CAPSET: "set capabilities ($.process.capabilities)",
    lib.PYOCI_STEP_AMBIENT: "raise ambient capabilities ($.process.capabilities.ambient)",
    lib.PYOCI_STEP_NO_NEW_PRIVS: "set no_new_privs ($.process.noNewPrivileges)",
    lib.PYOCI_STEP_EXEC: "exec the process ($.process.args)",
    lib.PYOCI_STEP_LOOKUP_EXEC: "find the program ($.process.args[0])",
    lib.PYOCI_STEP_UNSHARE_CGROUP: "create cgroup namespace",
    lib.PYOCI_STEP_TIMENS: "set time namespace offsets ($.linux.timeOffsets)",
    lib.PYOCI_STEP_HOOK: "run startContainer hook ($.hooks.startContainer)",
    lib.PYOCI_STEP_FDS: "close inherited fds",
    lib.PYOCI_STEP_UMASK: "set umask",
    lib.PYOCI_STEP_SETSID: "create a session",
    lib.PYOCI_STEP_KEYRING: "join a new session keyring",
    lib.PYOCI_STEP_TERMINAL: "set up the terminal ($.process.terminal)",
    lib.PYOCI_STEP_SECCOMP: "load the seccomp filter ($.linux.seccomp)",
    lib.PYOCI_STEP_INIT: "start pyoci-init (the container's side of pyoci, from a sealed memfd)",
    lib.PYOCI_STEP_PERSONALITY: "set the personality ($.linux.personality)",
    lib.PYOCI_STEP_IOPRIO: "set the I/O priority ($.process.ioPriority)",
    lib.PYOCI_STEP_SCHEDULER: "set the scheduling policy ($.process.scheduler)",
    lib.PYOCI_STEP_MEMPOLICY: "set the memory policy ($.linux.memoryPolicy)",
    lib.PYOCI_STEP_CWD_ESCAPE: "check the working directory ($.process.cwd)",
    lib.PYOCI_STEP_CGROUP: "join the container's cgroups",
    lib.PYOCI_STEP_LOOPBACK: "bring up the loopback interface of the new network namespace",
    lib.PYOCI_STEP_HOME: "set HOME from the container's /etc/passwd",
}

# What usually causes a failed step, by (step, errno).
STEP_HINTS: dict[tuple[int, int], str] = {
    (lib.PYOCI_STEP_SCHEDULER, 1): "a real-time policy, a negative nice value or SCHED_DEADLINE needs "
                                   "CAP_SYS_NICE on the host, and with RT group scheduling (cgroup v1 "
                                   "`cpu`) a real-time policy also needs "
                                   "linux.resources.cpu.realtimeRuntime",
    (lib.PYOCI_STEP_SCHEDULER, 16): "SCHED_DEADLINE needs enough free bandwidth (runtime/period) on the "
                                    "CPUs the process may run on",
    (lib.PYOCI_STEP_IOPRIO, 1): "IOPRIO_CLASS_RT needs CAP_SYS_ADMIN or CAP_SYS_NICE on the host",
    (lib.PYOCI_STEP_MEMPOLICY, 22): "the nodes must exist, be online and lie in the container's "
                                    "cpuset.mems (see /sys/devices/system/node/online)",
    (lib.PYOCI_STEP_PERSONALITY, 22): "the kernel does not know this personality",
    (lib.PYOCI_STEP_CWD_ESCAPE, 1): "the working directory must be a directory inside the container, "
                                    "not a path through /proc/self/fd or another link to outside it",
    (lib.PYOCI_STEP_INIT, 13): "vm.memfd_noexec=2 forbids running anything from a memfd, which pyoci "
                               "needs; set it to 0 or 1",
}


def child_error(msg: Message, plan: Plan | None) -> ChildError:
    """Turn an ERROR message into an exception naming the failed step."""
    hint = None
    err = msg.err
    if msg.stage == lib.PYOCI_STAGE_OPS and plan is not None and 0 <= msg.index < len(plan.ops):
        op = plan.ops[msg.index]
        what = op.describe
        hint = _op_hint(op, msg.err, plan, msg.text)
    else:
        what = STEP_NAMES.get(msg.index, f"step {msg.index}")
        detail = msg.text
        if plan is not None and msg.index in (lib.PYOCI_STEP_OPEN_NS, lib.PYOCI_STEP_SETNS):
            for _flag, path in plan.join:
                if msg.text.endswith(" " + path):
                    field = plan.join_fields.get(path, "$.linux.namespaces")
                    what = f"join namespace {path} ({field})"
                    detail = "open" if msg.index == lib.PYOCI_STEP_OPEN_NS else "setns"
        elif plan is not None and msg.index == lib.PYOCI_STEP_RLIMIT and msg.text.startswith("setrlimit "):
            from pyoci.linux.names import RLIMITS

            i = int(msg.text.split()[-1])
            if 0 <= i < len(plan.process.rlimits):
                res, soft, hard = plan.process.rlimits[i]
                name = next((k for k, v in RLIMITS.items() if v == res), str(res))
                what = f"set {name} to soft {soft} hard {hard} ($.process.rlimits[{i}])"
                detail = ""
                if msg.err == 1:
                    hint = "raising a hard limit needs CAP_SYS_RESOURCE; see `ulimit -H`"
        elif msg.index == lib.PYOCI_STEP_UNSHARE_USER and msg.err:
            from pyoci.linux.explain import unshare_user_hint

            hint = unshare_user_hint(msg.err)
        elif plan is not None and msg.index == lib.PYOCI_STEP_UNSHARE and msg.err:
            from pyoci.linux.explain import unshare_hint

            hint = unshare_hint(msg.err, plan.unshare_flags)
        elif plan is not None and msg.index == lib.PYOCI_STEP_LOOKUP_EXEC and msg.err and plan.process.args:
            detail = lookup_failure(plan.process.args[0], msg.err)
            err = 0     # already in the text, in runc's words
        msg.text = detail
        if msg.stage != lib.PYOCI_STAGE_OPS:
            hint = hint or STEP_HINTS.get((msg.index, msg.err))
    text = f"{what}: {msg.text}" if msg.text else what
    return ChildError(text, op=what, errno=err or None, hint=hint)


def lookup_failure(prog: str, err: int) -> str:
    """Why the program was not found, worded as runc (Go) words it, since
    engines classify this failure by the text: `docker run` exits 127 when the
    message holds "executable file not found" or "no such file or directory",
    and 126 when it holds "permission denied" (case-sensitive matches of Go's
    lower-case errno texts; Podman matches them case-insensitively)."""
    if err == errno.EISDIR:     # Go's exec.LookPath: a directory is not executable
        return f"{prog}: permission denied (it is a directory)"
    text = os.strerror(err)
    text = text[:1].lower() + text[1:]
    if "/" in prog:
        return f"{prog}: {text}"
    if err == errno.ENOENT:
        return f"{prog}: executable file not found in $PATH"
    return f"{prog}: executable file not found in $PATH: {text}"


def _op_hint(op: Op, err: int, plan: Plan | None = None, text: str = "") -> str | None:
    """What usually causes a failed op, where we can tell from the host."""
    if op.idmap is not None and err:
        from pyoci.linux.explain import idmap_hint

        found = idmap_hint(op, err, text)
        if found:
            return found
    if op.kind == "mount" and op.source and op.source.startswith("/") and err == 2 \
            and not os.path.exists(op.source):
        return f"the source {op.source} does not exist on the host"
    if op.kind == "pivot" and err == 22:
        return "pivot_root fails on a ramfs/initramfs root; try --no-pivot"
    if err in (1, 13) and plan is not None and (plan.idmap is not None
                                                or any(t == consts.CLONE_NEWUSER for t, _ in plan.join)):
        # EPERM/EACCES in a user namespace: a network or FUSE filesystem
        # that refuses the namespace's ids?
        from pyoci.linux.explain import op_paths, storage_hint

        return storage_hint(op_paths(op, plan))
    return None
