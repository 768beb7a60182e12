"""`exec`: run another process in a created or running container.

The process enters the container from the C helper (stage1 joins every
namespace of the container's init by /proc/<pid>/ns/*, stage2 execs), so no
Python code ever runs inside the container."""

from __future__ import annotations

import os

from pyoci.errors import InvalidTransition, PyociError
from pyoci.lifecycle import store
from pyoci.lifecycle.status import can
from pyoci.linux import consts, proc

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from pyoci.lifecycle.store import StateRecord

# Namespace files in the order they are joined (user first, mount last).
NS_FILES = [("user", consts.CLONE_NEWUSER), ("ipc", consts.CLONE_NEWIPC), ("uts", consts.CLONE_NEWUTS),
            ("net", consts.CLONE_NEWNET), ("pid", consts.CLONE_NEWPID), ("cgroup", consts.CLONE_NEWCGROUP),
            ("time", consts.CLONE_NEWTIME), ("mnt", consts.CLONE_NEWNS)]


class ExecOptions:
    __slots__ = ("process", "detach", "pid_file", "console_socket", "preserve_fds", "ignore_paused")

    def __init__(self, process: dict[str, Any], *, detach: bool = False, pid_file: str | None = None,
                 console_socket: str | None = None, preserve_fds: int = 0,
                 ignore_paused: bool = False) -> None:
        self.process = process
        self.detach = detach
        self.pid_file = pid_file
        self.console_socket = console_socket
        self.preserve_fds = preserve_fds
        # exec into a paused container: the process joins the frozen cgroup
        # and runs once the container is resumed (runc --ignore-paused).
        self.ignore_paused = ignore_paused


def _namespaces_of(pid: int, cid: str, c: store.Container, held: list[int]) -> list[tuple[int, str]]:
    join = []
    for name, flag in NS_FILES:
        theirs = f"/proc/{pid}/ns/{name}"
        try:
            if os.readlink(theirs) == os.readlink(f"/proc/self/ns/{name}"):
                continue
        except FileNotFoundError:
            continue
        except PermissionError:
            # The init has not started the program yet: it is not dumpable,
            # and its mm belongs to the user namespace pyoci ran in, where
            # only CAP_SYS_PTRACE reaches it (README, Security).  It hands
            # its namespaces out itself on its start socket (as runc's
            # waiting init lets its user in).
            return _namespaces_from_init(pid, cid, c, held)
        join.append((flag, theirs))
    return join


def _namespaces_from_init(pid: int, cid: str, c: store.Container, held: list[int]) -> list[tuple[int, str]]:
    from pyoci.native import spawn

    fds = spawn.init_namespaces(c.dirfd, store.START_SOCKET) if c.has_start_socket() else {}
    held += fds.values()
    if "user" not in fds or "mnt" not in fds:
        raise PyociError(f"cannot exec in container {cid!r}: its init (pid {pid}) is not dumpable "
                         "until it is started, this user may not open its namespaces, and the init "
                         "did not hand them out", hint="start the container first, or exec as root")
    join = []
    for name, flag in NS_FILES:
        fd = fds.get(name)
        if fd is None or os.readlink(f"/proc/self/fd/{fd}") == os.readlink(f"/proc/self/ns/{name}"):
            continue
        # Opened by stage1 through this (dumpable) process's fd table.
        join.append((flag, f"/proc/{os.getpid()}/fd/{fd}"))
    return join


def _setgroups_denied(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/setgroups") as f:
            return f.read().strip() == "deny"
    except OSError:
        return False


class _Exec:
    """What `exec` has learned and acquired so far: the steps below fill it
    in order, and ``undo`` holds what a failure must undo.

    The steps (exec_process() calls them in this order), and what a failure
    in each leaves to undo (``+``: registered by that step; unwound newest first):
      check_process   nothing yet
      (hold --preserve-fds, open and lock the container: the `with` in exec_process)
      check_status    nothing
      namespaces      + close the namespace fds taken from the init
      make_plan       as namespaces
      open_console    + close our end of the console pair (none with --console-socket)
      place           as open_console (the process joins the cgroups itself or at SYNC 2)
      spawn           the namespace fds and the console socket are closed
                      whatever happens; + kill the process
      write_pid_file  as spawn
    The lock is let go when the `with` ends (for a paused container, before spawn).
    """

    __slots__ = ("root", "cid", "opts", "c", "status", "pid", "held", "join", "plan", "host", "console_fd",
                 "mine", "paths", "placement", "adj", "child", "undo")

    def __init__(self, root: str, cid: str, opts: ExecOptions) -> None:
        from pyoci.lifecycle.undo import Undo

        self.root = root
        self.cid = cid
        self.opts = opts
        self.held: list[int] = []     # namespace fds from the init, open until stage1 has joined them
        self.console_fd = -1
        self.mine = -1
        self.placement: Any = None
        self.child = 0
        self.undo = Undo()

    # -- the steps, in order ----------------------------------------------------------

    def check_process(self) -> None:
        from pyoci.errors import ConfigError
        from pyoci.spec import limits
        from pyoci.spec.checks import check_lsm

        try:
            # (The strings need no check_strings: a --process file had it, the
            # container's own process had it at create, and the command line's
            # cannot hold a NUL; an argument that is not UTF-8 arrives as
            # surrogateescape text and reaches the process as its bytes, as with runc.)
            limits.check_process_numbers(self.opts.process, "$")
            check_lsm({"process": self.opts.process})
        except ConfigError as e:
            raise e.relabel("exec") from None

    def check_status(self, c: store.Container) -> None:
        from pyoci.report import phase

        self.c = c
        self.status = status = c.status()
        if not can("exec", status) and not (status == "paused" and self.opts.ignore_paused):
            raise InvalidTransition(self.cid, "exec in", status)
        self.pid = c.pid
        phase("state")

    def namespaces(self) -> None:
        self.undo.push("close the namespace fds", self._close_held)
        self.join = _namespaces_of(self.pid, self.cid, self.c, self.held)

    def make_plan(self) -> None:
        from pyoci.errors import ConfigError
        from pyoci.plan.build import Host, build_exec_plan
        from pyoci.report import debug, notes, phase

        state, pid, cid, opts, join = self._state(), self.pid, self.cid, self.opts, self.join
        chroot = None if state.own_mount_ns else f"/proc/{pid}/root"
        self.host = host = Host(euid=os.geteuid(), egid=os.getegid(), init_userns=proc.in_initial_userns(),
                                preserve_fds=opts.preserve_fds)
        setgroups_denied = _setgroups_denied(pid)
        groups = (opts.process.get("user") or {}).get("additionalGids")
        if groups and setgroups_denied:
            # Never dropped silently (runc: "cannot set any additional groups
            # in a rootless container").
            raise PyociError(f"exec: cannot set any additional groups ({groups}) in container {cid!r}: "
                             "setgroups is denied in its user namespace (a rootless container with a "
                             "single-id map)", hint="drop --additional-gids (-g) or the process's "
                             "user.additionalGids")
        try:
            self.plan = plan = build_exec_plan(opts.process, join, chroot, host, setgroups_denied,
                                               state.seccomp, state.personality, state.memory_policy)
        except ConfigError as e:
            raise e.relabel("exec process") from None
        phase("plan")
        debug(f"exec in {cid} (status {self.status}, init pid {pid}): {opts.process.get('args')}, "
              f"joining {[p for _, p in join]}")
        notes(plan.process.notes)

    def open_console(self) -> None:
        from pyoci.native import spawn

        opts = self.opts
        if self.plan.process.terminal:
            if opts.console_socket:
                self.console_fd = spawn.connect_console(opts.console_socket)
            elif not opts.detach:
                self.undo.push("close our end of the console pair", self._close_mine)
                self.mine, self.console_fd = spawn.console_pair()
            else:
                raise PyociError("exec --tty --detach needs --console-socket")
        if not opts.detach:
            from pyoci.native._helper import lib

            lib.pyoci_set_child_subreaper()

    def place(self) -> None:
        from pyoci.native import spawn

        state = self._state()
        # As runc: the exec'd process gets the process spec's oomScoreAdj,
        # else the container's (Podman's exec specs carry it; a process
        # would otherwise inherit the caller's, e.g. conmon's).
        adj = self.plan.process.oom_score_adj
        if adj is None:
            adj = state.process.get("oomScoreAdj")
        self.adj = adj
        paths: dict[str, str] = state.cgroup_paths
        if not state.cgroups_created:
            paths = {}
        self.paths = paths
        # As for create: without a user namespace the process joins the
        # container's cgroups by itself (spawn.SelfPlacement), which never
        # waits for the cgroup attach lock; stage1 opens the files before it
        # enters the container's mount namespace.
        joins_userns = any(t == consts.CLONE_NEWUSER for t, _ in self.join)
        if paths and os.geteuid() == 0 and self.host.init_userns and not joins_userns:
            self.placement = spawn.SelfPlacement(paths, required=False)

    def spawn(self) -> None:
        from pyoci.native import spawn

        callbacks = spawn.Callbacks(write_idmap=_nothing, child_created=self.join_cgroups,
                                    run_create_hooks=_nothing, warning=_warn)
        if self.status == "paused":
            # exec --ignore-paused: the new process stops in the frozen cgroup
            # until `resume`, which needs the container's lock; hold none from
            # here (runc holds none either).  `kill`/`delete --force` of the
            # container meanwhile kill it with the rest.
            import fcntl

            fcntl.flock(self.c.dirfd, fcntl.LOCK_UN)
        try:
            # A session keyring of its own (anonymous: ""), never the caller's,
            # unless the container was created with --no-new-keyring.
            keyring = "" if self._state().new_keyring else None
            self.child = spawn.spawn(self.plan, -1, callbacks, [], None, keyring, self.console_fd,
                                     self.placement)
        finally:
            if self.console_fd >= 0:
                os.close(self.console_fd)
                self.console_fd = -1
            self._close_held()
        self.undo.push("kill the process", self._kill_child)

    def write_pid_file(self) -> None:
        from pyoci.report import debug

        if self.opts.pid_file:
            # On failure nothing is left behind: the process never reached its
            # program unseen by the caller (runc kills it too).
            store.write_file_atomic(self.opts.pid_file, str(self.child).encode())
        debug(f"exec in {self.cid}: process pid {self.child}")

    def wait(self) -> int:
        from pyoci.lifecycle.run import wait_for
        from pyoci.native import spawn
        from pyoci.report import phase

        master = -1
        if self.mine >= 0:
            master = spawn.recv_console(self.mine)
            self._close_mine()
        if self.opts.detach:
            return 0
        if master >= 0:
            from pyoci.linux.tty import proxy

            proxy(master, self.child)
        status_code = wait_for(self.child)
        phase("wait")
        return status_code

    # -- the callback of spawn (native/spawn.py) at SYNC 2 ----------------------------

    def join_cgroups(self, child: int, in_cgroup2: bool) -> None:
        # SYNC 2: the new process joins the container's cgroups before it runs.
        paths, adj, placement = self.paths, self.adj, self.placement
        if paths:
            from pyoci.cgroups import manager as cgroups

            done = placement.joined(paths, in_cgroup2) if placement is not None else []
            cgroups.for_paths(paths).place(child, paths, False, done)
        if adj is not None:
            proc.set_oom_score_adj(child, adj, "of the exec'd process (oomScoreAdj)")

    # -- helpers and undo actions ------------------------------------------------------

    def _state(self) -> StateRecord:
        return self.c.state if self.c.state is not None else store.no_state()

    def _close_held(self) -> None:
        while self.held:
            os.close(self.held.pop())

    def _close_mine(self) -> None:
        if self.mine >= 0:
            os.close(self.mine)
            self.mine = -1

    def _kill_child(self) -> None:
        _kill_quietly(self.child)


def _nothing(_: int) -> None:
    return None


def exec_process(root: str, cid: str, opts: ExecOptions) -> int:
    """Start the process; with detach return 0, else wait and return its status.
    The steps and what a failure in each undoes: _Exec."""
    ctx = _Exec(root, cid, opts)
    ctx.check_process()
    if opts.preserve_fds:
        proc.hold_fd_range(3, opts.preserve_fds)
    with store.open_container(root, cid, shared=True) as c:
        try:
            ctx.check_status(c)
            ctx.namespaces()
            ctx.make_plan()
            ctx.open_console()
            ctx.place()
            ctx.spawn()
            ctx.write_pid_file()
        except BaseException:
            ctx.undo.unwind()
            raise
    ctx.undo.discard()
    return ctx.wait()


def _kill_quietly(pid: int) -> None:
    try:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    except OSError:
        pass


def _warn(msg: str) -> None:
    from pyoci.report import warning

    warning(msg)


def process_from_args(base: dict[str, Any], args: list[str], *, env: list[str], cwd: str | None,
                      user: str | None, groups: list[str], caps: list[str], tty: bool,
                      no_new_privs: bool) -> dict[str, Any]:
    """runc's rule: the container's own process is the template; the command
    line replaces args and overrides the rest."""
    p: dict[str, Any] = {k: v for k, v in base.items() if k not in ("args", "commandLine")}
    p["args"] = args
    check_env_flags(env)
    if env:
        merged = {e.split("=", 1)[0]: e for e in p.get("env") or []}
        for e in env:
            merged[e.split("=", 1)[0]] = e
        p["env"] = list(merged.values())
    if cwd:
        p["cwd"] = cwd
    if user:
        uid, gid = parse_user_flag(user)
        u = dict(p.get("user") or {})
        # As runc: without ":GID" the process keeps the template's gid.
        u["uid"] = uid
        u["gid"] = gid if gid is not None else u.get("gid", 0)
        p["user"] = u
    if groups:
        u = dict(p.get("user") or {})
        # As runc: added to the template's groups.
        u["additionalGids"] = list(u.get("additionalGids") or []) + parse_groups_flag(groups)
        p["user"] = u
    if caps:
        c = {k: list(v) for k, v in (p.get("capabilities") or {}).items()}
        # As runc: added to the bounding, effective and permitted sets; the
        # template's inheritable and ambient sets are kept as they are.
        for cap in caps:
            name = cap_flag_name(cap)
            for kind in ("bounding", "effective", "permitted"):
                if name not in c.setdefault(kind, []):
                    c[kind].append(name)
        p["capabilities"] = c
    p["terminal"] = tty
    if no_new_privs:
        p["noNewPrivileges"] = True
    return p


def _flag_id(flag: str, given: str, text: str, form: str) -> int:
    from pyoci.spec.checks import ID_RANGE, id_problem

    if text.isascii() and text.isdigit() and len(text) <= 10 and not id_problem(int(text)):
        return int(text)
    raise PyociError(f"exec {flag} {given!r}: expected {form}, each id a number in {ID_RANGE}")


def parse_user_flag(user: str) -> tuple[int, int | None]:
    """`exec --user UID[:GID]` -> (uid, gid or None); ids in 0..2147483647
    (4294967295 would mean "unchanged" to setresuid(2): root)."""
    uid, sep, gid = user.partition(":")
    return (_flag_id("--user", user, uid, "UID[:GID]"),
            _flag_id("--user", user, gid, "UID[:GID]") if sep else None)


def parse_groups_flag(groups: list[str]) -> list[int]:
    """`exec --additional-gids` (-g): each a gid in 0..2147483647."""
    return [_flag_id("--additional-gids", g, g, "a gid") for g in groups]


def check_env_flags(env: list[str]) -> None:
    """`exec --env` entries are NAME=VALUE with a non-empty NAME, as in process.env."""
    from pyoci.spec.checks import env_problem

    for e in env:
        problem = env_problem(e)
        if problem:
            raise PyociError(f"exec --env: {problem}")


def cap_flag_name(cap: str) -> str:
    """`exec --cap X` (-c): a capability name, with or without CAP_, any case."""
    from pyoci.linux.names import CAPABILITIES

    name = cap.upper() if cap.upper().startswith("CAP_") else "CAP_" + cap.upper()
    if name not in CAPABILITIES:
        raise PyociError(f"exec --cap {cap!r}: unknown capability {name}",
                         hint="see capabilities(7) for the names, e.g. --cap CAP_NET_ADMIN")
    return name


def check_exec_flags(user: str | None, groups: list[str], env: list[str], *, caps: Sequence[str] = (),
                     cwd: str | None = None, preserve_fds: int = 0, pid_file: str | None = None) -> None:
    """The flags that build the process, checked before the container is
    opened, so that a bad one is an error naming the flag and nothing runs."""
    if user:
        parse_user_flag(user)
    parse_groups_flag(groups)
    check_env_flags(env)
    for cap in caps:
        cap_flag_name(cap)
    if cwd is not None and not cwd.startswith("/"):
        raise PyociError(f"exec --cwd {cwd!r}: the working directory must be an absolute path")
    if preserve_fds:
        import resource

        limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if preserve_fds < 0 or 3 + preserve_fds > limit:
            raise PyociError(f"exec --preserve-fds {preserve_fds}: expected a count from 0 to {limit - 3} "
                             f"(fds 3 and up, below the open-file limit {limit})")
    if pid_file:
        d = os.path.dirname(os.path.abspath(pid_file))
        try:
            mode = os.stat(d).st_mode
        except OSError as e:
            raise PyociError(f"exec --pid-file {pid_file}: directory {d}: {e.strerror}") from None
        if mode & 0o170000 != 0o040000:
            raise PyociError(f"exec --pid-file {pid_file}: {d} is not a directory")
