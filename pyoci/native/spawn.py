"""Python face of the C helper: encode a Plan, spawn the container's init and
drive the sync protocol (the numbered SYNC points of csrc/helper.h).

The child never runs Python: pyoci_spawn() forks stage1 in C, and everything
after that is C until execve.  The cffi objects built here stay alive in
``_Encoded.keep`` until the spawn is over; the child has its own copy of them.
"""

from __future__ import annotations

import errno
import os

from pyoci.errors import ChildError, PyociError
from pyoci.native._helper import ffi, lib
from pyoci.native.startmsg import HOOK_ALLOWANCE as HOOK_ALLOWANCE
from pyoci.native.startmsg import SYNC_TIMEOUT as SYNC_TIMEOUT
from pyoci.native.startmsg import Message, sync_timeout
from pyoci.native.startmsg import start as start
from pyoci.report import phase

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from pyoci.plan.build import Op, Plan  # (`start` need not import the planner)

OP_KINDS: dict[str, int] = {
    "mount": lib.PYOCI_OP_MOUNT,
    "mount_host": lib.PYOCI_OP_MOUNT_HOST,
    "mknod": lib.PYOCI_OP_MKNOD,
    "bind_dev": lib.PYOCI_OP_BIND_DEV,
    "symlink": lib.PYOCI_OP_SYMLINK,
    "pivot": lib.PYOCI_OP_PIVOT,
    "mask": lib.PYOCI_OP_MASK,
    "readonly": lib.PYOCI_OP_READONLY,
    "write_file": lib.PYOCI_OP_WRITE_FILE,
    "remount": lib.PYOCI_OP_REMOUNT,
    "propagation": lib.PYOCI_OP_PROPAGATION,
    "mkdir": lib.PYOCI_OP_MKDIR,
    "hooks_sync": lib.PYOCI_OP_HOOKS_SYNC,
    "chmod": lib.PYOCI_OP_CHMOD,
    "wait_placed": lib.PYOCI_OP_WAIT_PLACED,
}
OP_FLAGS: dict[str, int] = {
    "mkdir": lib.PYOCI_F_MKDIR,
    "mkfile": lib.PYOCI_F_MKFILE,
    "mklike": lib.PYOCI_F_MKLIKE,
    "optional": lib.PYOCI_F_OPTIONAL,
    "no_pivot": lib.PYOCI_F_NO_PIVOT,
    "chroot": lib.PYOCI_F_CHROOT,
    "recursive_ro": lib.PYOCI_F_RECURSIVE_RO,
    "host_target": lib.PYOCI_F_HOST_TARGET,
    "warn_only": lib.PYOCI_F_WARN_ONLY,
    "sysfs_fallback": lib.PYOCI_F_SYSFS_FALLBACK,
    "idmap": lib.PYOCI_F_IDMAP,
    "idmap_rec": lib.PYOCI_F_IDMAP_REC,
    "preopen": lib.PYOCI_F_PREOPEN,
    "keep_mode": lib.PYOCI_F_KEEP_MODE,
    "ordinary_dir": lib.PYOCI_F_ORDINARY_DIR,
}

# How long the parent waits for the container's init at each sync point
# before giving up (killing it and saying which step it waited for).  The
# time the parent itself spends between two messages (the id maps, the
# cgroups, the createRuntime/createContainer hooks with their own timeouts)
# is not counted: each wait has the whole allowance.  A startContainer hook
# runs in the init between START and execve: `start` adds its timeout, or
# HOOK_ALLOWANCE for a hook without one.  PYOCI_SYNC_TIMEOUT (seconds)
# overrides SYNC_TIMEOUT, for tests and very slow hosts.
# (The values and sync_timeout() live in pyoci.native.startmsg, which `start`
# uses without loading the helper.)


class _Encoded:
    """The cffi config and every buffer it points to (kept alive together)."""

    __slots__ = ("cfg", "keep", "fds")

    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg
        self.keep: list[Any] = []
        self.fds: list[int] = []      # ours to close once the child has its copies

    def s(self, value: str | None) -> Any:
        if value is None:
            return ffi.NULL
        # os.fsencode: a path from the command line (--bundle) that is not
        # UTF-8 arrives as surrogateescape text and goes back to its bytes;
        # the config's own strings hold no NUL or lone surrogate
        # (pyoci.spec.limits.check_strings).
        buf = ffi.new("char[]", os.fsencode(value))
        self.keep.append(buf)
        return buf

    def strv(self, values: list[str]) -> Any:
        bufs = [self.s(v) for v in values]
        arr = ffi.new("const char *[]", bufs + [ffi.NULL])
        self.keep.append(arr)
        return arr


def _encode_op(enc: _Encoded, dst: Any, op: Op, userns_fd: int = -1) -> None:
    dst.kind = OP_KINDS[op.kind]
    flags = 0
    for f in op.flags:
        flags |= OP_FLAGS[f]
    dst.flags = flags
    dst.source = enc.s(op.source)
    dst.target = enc.s(op.target)
    dst.fstype = enc.s(op.fstype)
    dst.data = enc.s(op.data)
    dst.mflags = op.mflags
    dst.remount = op.remount
    dst.propagation = op.propagation
    dst.mode = op.mode
    dst.dev = os.makedev(op.major, op.minor)
    dst.uid = op.uid
    dst.gid = op.gid
    dst.userns_fd = userns_fd


class SelfPlacement:
    """The cgroups the container's init joins without the parent: stage1
    clones it into the cgroup v2 directory and it writes "0" to each v1
    `tasks` file itself (csrc/spawn.c).  Only without a user namespace."""

    __slots__ = ("cgroup2_dir", "tasks", "required")

    def __init__(self, paths: dict[str, str], required: bool) -> None:
        """``paths``: the cgroups, controller -> directory ("" for cgroup v2)."""
        self.cgroup2_dir = paths.get("")
        self.tasks = [os.path.join(d, "tasks") for k, d in paths.items() if k]
        self.required = required

    def joined(self, paths: dict[str, str], in_cgroup2: bool) -> list[str]:
        """The controllers of ``paths`` the process joined by itself (what
        Manager.place skips): the v1 ones, and "" when stage1 said so."""
        return [k for k in paths if k or in_cgroup2]


def encode(plan: Plan, sync_fd: int, start_fd: int, start_hooks: list[dict[str, Any]],
           hook_state: str | None, keyring: str | None, console_fd: int = -1,
           userns_fds: dict[int, int] | None = None,
           placement: SelfPlacement | None = None) -> _Encoded:
    cfg = ffi.new("struct pyoci_spawn_config *")
    enc = _Encoded(cfg)
    cfg.abi_version = lib.PYOCI_ABI_VERSION
    cfg.sync_fd = sync_fd
    cfg.start_fd = start_fd
    cfg.unshare_flags = plan.unshare_flags
    cfg.usermap = 1 if plan.idmap is not None else 0
    joins = ffi.new("struct pyoci_ns[]", max(1, len(plan.join)))
    enc.keep.append(joins)
    for i, (flag, path) in enumerate(plan.join):
        joins[i].type = flag
        joins[i].path = enc.s(path)
    cfg.n_join = len(plan.join)
    cfg.join = joins
    cfg.timens_offsets = enc.s(plan.timens_offsets)
    cfg.hostname = enc.s(plan.hostname)
    cfg.domainname = enc.s(plan.domainname)
    cfg.rootfs = enc.s(plan.rootfs)
    ops = ffi.new("struct pyoci_op[]", max(1, len(plan.ops)))
    enc.keep.append(ops)
    for i, op in enumerate(plan.ops):
        _encode_op(enc, ops[i], op, (userns_fds or {}).get(i, -1))
    cfg.n_ops = len(plan.ops)
    cfg.ops = ops

    p = plan.process
    cfg.argv = enc.strv(p.args)
    cfg.envp = enc.strv(p.env)
    cfg.cwd = enc.s(p.cwd)
    cfg.exec_path = ffi.NULL
    cfg.uid = p.uid
    cfg.gid = p.gid
    groups = ffi.new("unsigned int[]", p.groups or [0])
    enc.keep.append(groups)
    cfg.n_groups = len(p.groups)
    cfg.groups = groups
    cfg.set_groups = 1 if p.set_groups else 0
    cfg.umask = p.umask
    cfg.set_caps = 1 if p.set_caps else 0
    cfg.cap_bounding = p.caps["bounding"]
    cfg.cap_effective = p.caps["effective"]
    cfg.cap_permitted = p.caps["permitted"]
    cfg.cap_inheritable = p.caps["inheritable"]
    cfg.cap_ambient = p.caps["ambient"]
    cfg.personality = -1 if p.personality is None else p.personality
    cfg.ioprio = -1 if p.io_priority is None else p.io_priority
    cfg.sched = ffi.NULL
    if p.scheduler is not None:
        sched = ffi.new("struct pyoci_sched *")
        enc.keep.append(sched)
        s = p.scheduler
        sched.policy, sched.nice, sched.priority, sched.flags = s.policy, s.nice, s.priority, s.flags
        sched.runtime, sched.deadline, sched.period = s.runtime, s.deadline, s.period
        cfg.sched = sched
    cfg.mempolicy = ffi.NULL
    if p.memory_policy is not None:
        mp = ffi.new("struct pyoci_mempolicy *")
        enc.keep.append(mp)
        mp.mode = p.memory_policy.mode
        words = [0] * ((max(p.memory_policy.nodes) // 64 + 1) if p.memory_policy.nodes else 0)
        for node in p.memory_policy.nodes:
            words[node // 64] |= 1 << (node % 64)
        nodes = ffi.new("unsigned long long[]", words or [0])
        enc.keep.append(nodes)
        mp.n_words = len(words)
        mp.nodes = nodes
        cfg.mempolicy = mp
    cfg.no_new_privs = 1 if p.no_new_privs else 0
    rl = ffi.new("struct pyoci_rlimit[]", max(1, len(p.rlimits)))
    enc.keep.append(rl)
    for i, (res, soft, hard) in enumerate(p.rlimits):
        rl[i].resource = res
        rl[i].soft = soft
        rl[i].hard = hard
    cfg.n_rlimits = len(p.rlimits)
    cfg.rlimits = rl
    cfg.preserve_fds = p.preserve_fds
    cfg.console_fd = console_fd
    cfg.seccomp_bpf = ffi.NULL
    cfg.seccomp_listener_fd = -1
    if p.seccomp:
        from pyoci.linux import seccomp

        bpf, count, flags = seccomp.compile_filter(p.seccomp)
        buf = ffi.new("unsigned char[]", bpf)
        enc.keep.append(buf)
        cfg.seccomp_bpf = buf
        cfg.seccomp_len = count
        cfg.seccomp_flags = flags
        if seccomp.uses_notify(p.seccomp):
            from pyoci import jsonfast

            # Connect now: the path is on the host, the filter is loaded in the container.
            cfg.seccomp_listener_fd = connect_listener(str(p.seccomp["listenerPath"]))
            enc.fds.append(cfg.seccomp_listener_fd)
            state = jsonfast.loads(hook_state) if hook_state else {}
            cfg.seccomp_listener_msg = enc.s(seccomp.listener_message(p.seccomp, state))
    cfg.console_rows, cfg.console_cols = p.console_size
    # Always a session (and process group) of its own, as runc and crun do:
    # an `exec`'d process left in the caller's process group could signal the
    # engine's processes with kill(0, sig).
    cfg.setsid = 1
    # keyring: None keeps the caller's session keyring, "" joins a new
    # anonymous one, a name joins a new one of that name.
    cfg.new_keyring = 0 if keyring is None else 1
    cfg.keyring_name = enc.s(keyring or None)
    hooks = ffi.new("struct pyoci_hook[]", max(1, len(start_hooks)))
    enc.keep.append(hooks)
    for i, h in enumerate(start_hooks):
        hooks[i].path = enc.s(h["path"])
        hooks[i].argv = enc.strv(list(h.get("args") or [h["path"]]))
        # A hook without "env" sees the container process's environment, as
        # runc runs them (an explicit empty list is an empty environment).
        hooks[i].envp = enc.strv(list(h["env"] if h.get("env") is not None else p.env))
        hooks[i].timeout = int(h.get("timeout") or 0)
    cfg.n_start_hooks = len(start_hooks)
    cfg.start_hooks = hooks
    cfg.hook_state = enc.s(hook_state)
    cfg.cgroup2_dir = ffi.NULL
    cfg.cgroup_tasks = ffi.NULL
    cfg.cgroup_required = 0
    if placement is not None:
        cfg.cgroup2_dir = enc.s(placement.cgroup2_dir)
        if placement.tasks:
            cfg.cgroup_tasks = enc.strv(placement.tasks)
        cfg.cgroup_required = 1 if placement.required else 0
    return enc


MSG_SIZE = ffi.sizeof("struct pyoci_msg")


def recv(fd: int, timeout: float | None = None, waiting_for: str = "") -> Message | None:
    """One message from the child, or None at EOF (every child end closed).
    A record is the header, then (for a report) its detail text.

    With ``timeout`` (seconds): a ChildError naming ``waiting_for`` when
    nothing came in that time."""
    if timeout is not None:
        _wait_readable(fd, timeout, waiting_for)
    while True:
        try:
            data = os.read(fd, lib.PYOCI_MSG_MAX)
        except InterruptedError:
            continue
        except ConnectionResetError:
            # The child exited with a message of ours unread (e.g. CHILD_GO
            # after it failed): the kernel reports that once, before the
            # messages it sent (its ERROR) and the EOF.
            continue
        break
    if not data:
        return None
    msg = ffi.new("struct pyoci_msg *")
    ffi.memmove(msg, data, min(len(data), MSG_SIZE))
    return Message(msg.type, msg.stage, msg.index, msg.err, msg.pid,
                   data[MSG_SIZE:].decode(errors="replace"))


def _wait_readable(fd: int, timeout: float, waiting_for: str) -> None:
    # poll() through the helper already loaded: importing `select` (a shared
    # object) cost every create/run/exec more than the wait itself.
    import time

    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise ChildError(f"timed out after {timeout:g}s waiting for the container's init at "
                             f"{waiting_for}",
                             hint="is its cgroup frozen, or the process stopped? see `ps -o pid,stat` "
                                  "and the cgroup's freezer")
        r = lib.pyoci_wait_readable(fd, min(max(1, int(left * 1000) + 1), 2**31 - 1))
        if r > 0:
            return
        if r < 0 and r != -errno.EINTR:
            raise PyociError("wait for the container's init", op="poll", errno=-r)


def _reap(pid: int, timeout: float = 5.0) -> bool:
    """waitpid(pid) for at most ``timeout`` seconds (a task of a frozen v1
    cgroup does not die of SIGKILL until thawed); True once reaped."""
    import time

    deadline = time.monotonic() + timeout
    delay = 0.0005
    while True:
        try:
            done, _status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return True
        if done:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def send(fd: int, mtype: int, pid: int = 0) -> None:
    msg = ffi.new("struct pyoci_msg *")
    msg.type = mtype
    msg.pid = pid
    os.write(fd, bytes(ffi.buffer(msg)))


def socketpair() -> tuple[int, int]:
    fds = ffi.new("int[2]")
    r = lib.pyoci_seqpacket_pair(fds)
    if r < 0:
        raise PyociError("socketpair", op="socketpair", errno=-r)
    return fds[0], fds[1]


class Callbacks:
    """What the parent does at each sync point.  ``child_created`` also
    learns whether stage2 was born in its cgroup v2 directory."""

    __slots__ = ("write_idmap", "while_booting", "child_created", "run_create_hooks", "warning", "killed")

    def __init__(self, *, write_idmap: Callable[[int], None], child_created: Callable[[int, bool], None],
                 run_create_hooks: Callable[[int], None], warning: Callable[[str], None],
                 while_booting: Callable[[], None] | None = None,
                 killed: Callable[[], None] | None = None) -> None:
        self.while_booting = while_booting          # stage1 was cloned: work that needs no pid
        self.write_idmap = write_idmap              # SYNC 1: write stage1's id maps
        self.child_created = child_created          # SYNC 2: place stage2 (cgroups, oom)
        self.run_create_hooks = run_create_hooks    # SYNC 3: createRuntime/createContainer hooks
        self.warning = warning                      # a non-fatal warning from the child
        self.killed = killed                        # on failure, the children were sent SIGKILL:
        #                                             thaw their cgroups so that they can die


def spawn(plan: Plan, start_fd: int, callbacks: Callbacks, start_hooks: list[dict[str, Any]],
          hook_state: str | None, keyring: str | None, console_fd: int = -1,
          placement: SelfPlacement | None = None) -> int:
    """Run the child up to SYNC 4 (READY); return stage2's pid.

    On any failure every child is killed and reaped before the error
    propagates, so nothing of the container keeps running."""
    userns_fds: dict[int, int] = {}
    if any(op.idmap is not None for op in plan.ops):
        # Idmapped mounts: a user namespace with each mount's mappings, made
        # here; stage1 idmaps the clones with them (csrc/ops.c).
        from pyoci.linux.idmap import mount_usernses

        userns_fds = mount_usernses(plan.ops)
    enc = None
    try:
        parent_fd, child_fd = socketpair()
        enc = encode(plan, child_fd, start_fd, start_hooks, hook_state, keyring, console_fd, userns_fds,
                     placement)
        stage1 = lib.pyoci_spawn(enc.cfg)
        phase("spawn.clone")
    finally:
        for fd in set(userns_fds.values()):   # stage1 has its own copies
            os.close(fd)
        for fd in enc.fds if enc is not None else ():
            os.close(fd)
    os.close(child_fd)
    if stage1 < 0:
        os.close(parent_fd)
        # pyoci_spawn: the sealed pyoci-init memfd, the config memfd, then clone
        raise PyociError("start the container's first stage (seal pyoci-init and its config "
                         "into memfds, clone)", op="clone", errno=-stage1)
    stage2 = 0
    stage1_reaped = False
    timeout = sync_timeout()
    # What the next message is (for the timeout's error)
    waiting = "sync 1 (USERMAP_REQUEST)" if plan.idmap is not None else "sync 2 (CHILD_PID)"
    after_go = ("sync 3 (HOOKS_REQUEST)" if any(op.kind == "hooks_sync" for op in plan.ops)
                else "sync 4 (READY)" if start_fd >= 0 else "the exec of the process")
    try:
        if callbacks.while_booting is not None:
            callbacks.while_booting()
            phase("cgroups")
        while True:
            msg = recv(parent_fd, timeout, waiting)
            if msg is None:
                if start_fd < 0 and stage2 > 0:
                    phase("spawn.exec")
                    return stage2          # exec mode: the fd closed at execve
                raise ChildError("the container's init exited during setup without a report")
            if msg.type == lib.PYOCI_MSG_USERMAP_REQUEST:
                phase("spawn.sync1")
                callbacks.write_idmap(msg.pid)                      # SYNC 1
                phase("idmap")
                send(parent_fd, lib.PYOCI_MSG_USERMAP_DONE)
                waiting = "sync 2 (CHILD_PID)"
            elif msg.type == lib.PYOCI_MSG_CHILD_PID:
                stage2 = msg.pid                                    # SYNC 2
                phase("spawn.sync2")
                os.waitpid(stage1, 0)       # it exits right after sending
                stage1_reaped = True
                callbacks.child_created(stage2, msg.index == 1)
                phase("cgroups")
                try:
                    send(parent_fd, lib.PYOCI_MSG_CHILD_GO, stage2)
                except BrokenPipeError:
                    pass        # stage2 already failed: its ERROR is waiting to be read
                waiting = after_go
            elif msg.type == lib.PYOCI_MSG_HOOKS_REQUEST:
                phase("spawn.sync3")
                callbacks.run_create_hooks(stage2)                  # SYNC 3
                phase("hooks")
                send(parent_fd, lib.PYOCI_MSG_HOOKS_DONE)
                waiting = "sync 4 (READY)"
            elif msg.type == lib.PYOCI_MSG_READY:
                phase("spawn.sync4")
                return stage2                                       # SYNC 4
            elif msg.type == lib.PYOCI_MSG_WARNING:
                from pyoci.native.childerr import child_error  # (the rare paths load it)

                callbacks.warning(child_error(msg, plan).msg)
            elif msg.type == lib.PYOCI_MSG_ERROR:
                from pyoci.native.childerr import child_error

                raise child_error(msg, plan)
            else:
                raise ChildError(f"unexpected message {msg.type} from the container's init")
    except BaseException:
        if stage2 <= 0 < stage1:
            # Failed before SYNC 2 was read (while_booting): stage1 may have
            # forked stage2 already, and said so.  Stop stage1, then look.
            try:
                os.kill(stage1, 9)
                if not stage1_reaped:
                    stage1_reaped = _reap(stage1)
            except ProcessLookupError:
                pass
            stage2 = _pending_child_pid(parent_fd)
        for pid in (stage2, stage1):
            if pid > 0:
                try:
                    os.kill(pid, 9)
                except ProcessLookupError:
                    pass
        if callbacks.killed is not None:
            try:
                callbacks.killed()
            except Exception:       # noqa: BLE001 -- the error being raised is the one to report
                pass
        for pid, done in ((stage2, False), (stage1, stage1_reaped)):
            if pid > 0 and not done:
                _reap(pid)      # bounded: the caller kills (and thaws) what is left
        raise
    finally:
        os.close(parent_fd)
        del enc


def _pending_child_pid(fd: int) -> int:
    """The pid in a CHILD_PID message already sent on the sync socket, or 0."""
    os.set_blocking(fd, False)
    try:
        while True:
            msg = recv(fd)
            if msg is None:
                return 0
            if msg.type == lib.PYOCI_MSG_CHILD_PID:
                return msg.pid
    except BlockingIOError:
        return 0


def listen(dirfd: int, name: str) -> int:
    fd = lib.pyoci_listen(dirfd, name.encode())
    if fd < 0:
        raise PyociError(f"listen on {name}", op="bind", errno=-fd)
    return int(fd)


def init_namespaces(dirfd: int, name: str) -> dict[str, int]:
    """Ask a created container's waiting init, on its start socket, for its
    namespaces (PYOCI_MSG_NAMESPACES): {"user": fd, ...}; {} when it is not
    waiting any more.  The caller closes the fds."""
    fd = lib.pyoci_connect(dirfd, name.encode())
    if fd < 0:
        return {}
    got: dict[str, int] = {}
    try:
        send(fd, lib.PYOCI_MSG_NAMESPACES)
        buf = ffi.new("char[]", 32)
        while True:
            nfd = lib.pyoci_recv_fd(fd, buf, 32)
            if nfd < 0:
                break        # EOF: the init sent what it had
            key = ffi.string(buf).decode(errors="replace")
            if key in got:
                os.close(got[key])
            got[key] = int(nfd)
    finally:
        os.close(fd)
    return got


def connect_listener(path: str) -> int:
    fd = lib.pyoci_connect_path(os.fsencode(path))
    if fd < 0:
        raise PyociError(f"connect to the seccomp agent at {path} ($.linux.seccomp.listenerPath)",
                         op="connect", path=path, errno=-fd)
    return int(fd)


def connect_console(path: str) -> int:
    fd = lib.pyoci_connect_path(os.fsencode(path))
    if fd < 0:
        raise PyociError(f"connect to the console socket {path}", op="connect", path=path, errno=-fd,
                         hint="--console-socket must name a listening unix socket")
    return int(fd)


def console_pair() -> tuple[int, int]:
    """A local console socket for `run` with a terminal and no --console-socket."""
    return socketpair()


def recv_console(sock: int) -> int:
    name = ffi.new("char[]", 256)
    fd = lib.pyoci_recv_fd(sock, name, 256)
    if fd < 0:
        raise PyociError("receive the pty master", op="recvmsg", errno=-fd)
    return int(fd)

