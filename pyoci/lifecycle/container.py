"""The lifecycle operations: the only code that changes a container's status.

create -> created -> (start) -> running -> (exit) -> stopped -> (delete)
"""

from __future__ import annotations

import os
import sys
import time

from pyoci import SPEC_VERSION
from pyoci.errors import ChildError, ConfigError, ContainerNotFound, InvalidTransition, PyociError
from pyoci.lifecycle import store
from pyoci.lifecycle.status import CREATED, CREATING, RUNNING, STOPPED, can
from pyoci.lifecycle.store import StateRecord
from pyoci.lifecycle.store import oci_state as oci_state
from pyoci.linux import proc

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from pyoci.cgroups.manager import Manager
    from pyoci.lifecycle.status import Status
    from pyoci.native.startmsg import Message

# The status each hook stage sees on stdin.  prestart hooks run during
# `create`, right before createRuntime and like it, as runtime-spec 1.0.2+
# says and runc 1.1.5 does (status "creating"); engines rely on them having
# run when `create` returns.  (The OCI validation suite's 1.0.0-era assertion
# that they run at `start` is not followed.)
HOOK_STATUS: dict[str, Status] = {
    "prestart": CREATING,
    "createRuntime": CREATING,
    "createContainer": CREATING,
    "startContainer": CREATED,
    "poststart": RUNNING,
    "poststop": STOPPED,
}
SIGKILL = 9
# The cgroup directories create is about to make, written before the first
# mkdir: delete reads it when create died before writing state.json.
CGROUPS_RECORD = "cgroups.json"


class CreateOptions:
    __slots__ = ("bundle", "pid_file", "console_socket", "no_pivot", "no_new_keyring", "preserve_fds")

    def __init__(self, bundle: str, pid_file: str | None = None, console_socket: str | None = None,
                 no_pivot: bool = False, no_new_keyring: bool = False, preserve_fds: int = 0) -> None:
        self.bundle = bundle
        self.pid_file = pid_file
        self.console_socket = console_socket
        self.no_pivot = no_pivot
        self.no_new_keyring = no_new_keyring
        self.preserve_fds = preserve_fds


def _warn(msg: str) -> None:
    from pyoci.report import warning

    warning(msg)


def _hook_state(cid: str, cfg: dict[str, Any], bundle: str, pid: int, status: Status) -> dict[str, Any]:
    out: dict[str, Any] = {"ociVersion": cfg.get("ociVersion", SPEC_VERSION), "id": cid,
                           "status": status, "pid": pid, "bundle": bundle}
    if cfg.get("annotations"):
        out["annotations"] = cfg["annotations"]
    return out


class Undo:
    """A stack of undo actions: create and exec register one as each resource
    is acquired, and a failure runs them newest first.

    contextlib.ExitStack would do, but contextlib imports functools and
    collections, which the create path must not (tests/unit/test_import_cost.py).
    Unlike ExitStack, an undo action that raises stops the unwinding and its
    error propagates (the older actions are not run): as the hand-written
    cleanup this replaces did."""

    __slots__ = ("_actions",)

    def __init__(self) -> None:
        self._actions: list[tuple[str, Callable[[], None]]] = []

    def push(self, what: str, action: Callable[[], None]) -> None:
        """Register ``action`` (named ``what``: see names()) to run if a
        later step fails."""
        self._actions.append((what, action))

    def names(self) -> list[str]:
        """What a failure now would undo, in the order it would."""
        return [what for what, _ in reversed(self._actions)]

    def unwind(self) -> None:
        """Run the actions, newest first; each runs once."""
        while self._actions:
            _, action = self._actions.pop()
            action()

    def discard(self) -> None:
        """Success: nothing is to be undone."""
        self._actions.clear()


class _Create:
    """What `create` has learned and acquired so far: the steps below fill
    it in order, and ``undo`` holds what a failure must undo.

    The steps (create() calls them in this order), and what a failure in
    each leaves to undo (``+``: registered by that step):
      load            nothing yet
      plan_cgroups    nothing
      make_plan       nothing
      check_net_devices  nothing: the devices are checked, not moved
      open_console    nothing (the console fd is closed: close_fds)
      check_resources nothing (the cgroup attach grace period may run)
      state_dir       + remove the state directory
      record_cgroups  + remove the cgroups made, + before that, check for an
                        OOM kill (its error replaces the step's)
      listen          as record_cgroups (the start socket's fd: close_fds)
      spawn           + unmount the rootfs (no mount namespace of its own),
                      + restore the net devices, + kill the init; the spawn
                        callbacks are the methods below
      save, finish    as spawn
    On failure the fds are closed first, then ``undo`` unwinds newest first:
    kill the init, restore the net devices, unmount, check for an OOM kill,
    remove the cgroups, remove the state directory.  (Until this class, the
    unmount and the net device restore also ran after a failure before
    spawn, when there was nothing of theirs to undo.)
    """

    __slots__ = ("root", "cid", "opts", "console_fd", "own_console", "bundle", "cfg", "linux_cfg",
                 "rootfs", "init_userns", "cg", "cg_paths", "cg_delegated", "cg_limits", "host", "plan",
                 "net_devices", "hooks", "user_ns", "resources", "cg_created", "placement", "c", "dirs",
                 "start_fd", "pid", "undo", "oom_error")

    def __init__(self, root: str, cid: str, opts: CreateOptions, console_fd: int) -> None:
        self.root = root
        self.cid = cid
        self.opts = opts
        self.console_fd = console_fd
        self.own_console = -1
        self.net_devices: Any = None
        self.cg_created: list[str] = []
        self.placement: Any = None
        self.c: store.Container | None = None
        self.start_fd = -1
        self.pid = 0
        self.undo = Undo()
        self.oom_error: PyociError | None = None

    # -- the steps, in order ----------------------------------------------------------

    def load(self) -> None:
        from pyoci.spec.load import load_config

        store.check_id(self.cid)
        self.bundle = bundle = os.path.abspath(self.opts.bundle)
        self.cfg = cfg = load_config(bundle)
        root_path = (cfg.get("root") or {}).get("path") or "rootfs"
        self.rootfs = rootfs = os.path.realpath(os.path.join(bundle, root_path))
        if not os.path.isdir(rootfs):
            raise ConfigError("$.root.path", f"{rootfs} is not a directory")
        self.linux_cfg = cfg.get("linux") or {}

    def plan_cgroups(self) -> None:
        from pyoci.cgroups import manager as cgroups

        self.init_userns = init_userns = proc.in_initial_userns()
        self.cg = cg = cgroups.for_host()        # every cgroup step of create goes through it
        cg_paths = cg.container_paths(self.linux_cfg.get("cgroupsPath"), self.cid)
        # Without privilege over the host's cgroups (rootless without a delegated
        # tree), placement is best effort and limits cannot be applied.  A
        # delegated (writable) cgroup v2 subtree takes limits, except devices.
        cg_required = os.geteuid() == 0 and init_userns
        mine = None if cg_required else cg.delegated_paths(self.linux_cfg.get("cgroupsPath"), self.cid,
                                                           cg_paths)
        self.cg_paths = cg_paths = mine or cg_paths
        self.cg_delegated = mine is not None
        self.cg_limits = cg_required or self.cg_delegated
        cg.check_not_frozen(cg_paths)     # before anything is placed there

    def make_plan(self) -> None:
        from pyoci.linux import consts
        from pyoci.plan.build import Host, build_plan
        from pyoci.report import debug, notes, phase

        opts = self.opts
        binds = self.cg.mount_binds(self.cg_paths if self.cg_limits else None)
        self.host = Host(euid=os.geteuid(), egid=os.getegid(), init_userns=self.init_userns,
                         no_pivot=opts.no_pivot, preserve_fds=opts.preserve_fds, cgroup_binds=binds)
        check_lsm(self.cfg)
        self.plan = plan = build_plan(self.cfg, self.bundle, self.rootfs, self.host)
        phase("plan")
        notes(plan.process.notes)

        debug(f"create {self.cid}: rootfs {self.rootfs}, {len(plan.ops)} filesystem ops, "
              f"unshare 0x{plan.unshare_flags:x}, join {[p for _, p in plan.join]}")
        if plan.idmap is not None and plan.idmap_writer == "helper":
            # Refuse a map newuidmap/newgidmap would refuse before anything
            # exists (state dir, stage1): the error names the config field.
            from pyoci.linux.subid import check_idmap

            check_idmap(plan.idmap.uid_lines, plan.idmap.gid_lines)
        self.hooks = self.cfg.get("hooks") or {}
        self.user_ns = bool(plan.idmap is not None or any(t == consts.CLONE_NEWUSER for t, _ in plan.join))

    def check_net_devices(self) -> None:
        if self.linux_cfg.get("netDevices"):
            from pyoci.linux import netdev

            netdev.check_host(self.linux_cfg["netDevices"])     # before anything exists
            self.net_devices = netdev.Mover(self.linux_cfg["netDevices"])

    def open_console(self) -> None:
        if self.plan.process.terminal and self.console_fd < 0:
            if not self.opts.console_socket:
                raise ConfigError("$.process.terminal", "is true but no --console-socket was given",
                                  hint="pass --console-socket, or set terminal to false")
            from pyoci.native import spawn

            self.own_console = self.console_fd = spawn.connect_console(self.opts.console_socket)
        elif not self.plan.process.terminal:
            self.console_fd = -1

    def check_resources(self) -> None:
        from pyoci.report import phase

        self.resources = resources = self.linux_cfg.get("resources") or {}
        if self.cg_limits:
            self.cg.check(resources)     # before anything exists
        elif _has_limits(resources):
            raise PyociError(
                "linux.resources asks for limits, but this user cannot write the host's cgroups",
                field="$.linux.resources",
                hint="run as root, use a delegated cgroup v2 tree, or drop the limits")
        # Without a user namespace the container's init joins its cgroups by
        # itself, which never waits for the attach lock's grace period
        # (spawn.SelfPlacement); otherwise we move it, and start that grace
        # period now (pyoci/linux/prewarm.py).
        if self.cg_limits and not self.user_ns:
            from pyoci.native import spawn

            self.placement = spawn.SelfPlacement(self.cg_paths, required=True)
        elif self.cg_limits and os.geteuid() == 0:
            from pyoci.linux import prewarm

            prewarm.start(self.cg.own)
        phase("cgroups")

    def state_dir(self) -> None:
        from pyoci.report import phase

        if self.opts.preserve_fds:
            proc.hold_fd_range(3, self.opts.preserve_fds)
        self.c = store.new_container(self.root, self.cid)
        self.undo.push("remove the state directory", self._remove_state_dir)
        phase("state")

    def record_cgroups(self) -> None:
        c, cg = self.c, self.cg
        assert c is not None
        # What a delete must remove should we die from now on, before the
        # first mkdir; the cgroup v2 directory is made now, the rest while
        # stage1 starts.  Written even when no directory is missing, so that
        # a delete can tell a lost record from none.
        self.dirs = cg.missing_dirs(self.cg_paths)
        self._write_cgroups_record(self.dirs)
        self.undo.push("remove the cgroups made", lambda: cg.remove(self.cg_created))
        self.undo.push("check for an OOM kill", self._check_oom)
        if self.placement is not None and self.placement.cgroup2_dir:
            cg.make({"": self.placement.cgroup2_dir}, True, self.cg_created)

    def listen(self) -> None:
        from pyoci.native import spawn

        assert self.c is not None
        self.start_fd = spawn.listen(self.c.dirfd, store.START_SOCKET)

    def spawn(self) -> None:
        from pyoci import jsonfast
        from pyoci.native import spawn

        if not self.plan.own_mount_ns:
            self.undo.push("unmount the rootfs", self._unmount)
        if self.net_devices is not None:
            self.undo.push("restore the net devices", self.net_devices.restore)
        self.undo.push("kill the init", self._kill_init)
        callbacks = spawn.Callbacks(write_idmap=self.write_idmap, while_booting=self.while_booting,
                                    child_created=self.child_created,
                                    run_create_hooks=self.run_create_hooks, warning=_warn, killed=self.killed)
        # "pid":0 is replaced by the C helper with the pid it gets at SYNC 2.
        start_state = jsonfast.dumps(self._hook_state(HOOK_STATUS["startContainer"], 0))
        opts = self.opts
        start_hooks = list(self.hooks.get("startContainer") or [])
        keyring = None if opts.no_new_keyring else keyring_name(self.cid)
        self.pid = spawn.spawn(self.plan, self.start_fd, callbacks, start_hooks, start_state, keyring,
                               self.console_fd, self.placement)
        os.close(self.start_fd)
        self.start_fd = -1

    def save(self) -> None:
        from pyoci.linux import consts

        assert self.c is not None
        pid, cid, cfg, linux_cfg, plan = self.pid, self.cid, self.cfg, self.linux_cfg, self.plan
        pid_start = proc.start_time(pid)
        if pid_start is None:
            raise ChildError("the container's init exited during setup")
        if not self.cg_limits and not self.cg_created and linux_cfg.get("cgroupsPath"):
            # Asked for a cgroup (--cgroup-parent) that this user cannot make
            # (cgroup v1, no delegated v2 tree): said, never silent.
            _warn(f"cgroupsPath {linux_cfg['cgroupsPath']!r} ($.linux.cgroupsPath): this user cannot create "
                  f"cgroups there (no delegated cgroup v2 tree), so container {cid!r} runs without a "
                  "cgroup of its own, in the caller's")
        self.c.save(StateRecord(
            oci_version=cfg.get("ociVersion", SPEC_VERSION),
            id=cid,
            pid=pid,
            pid_start=pid_start,
            bundle=self.bundle,
            rootfs=self.rootfs,
            created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            owner=os.geteuid(),
            annotations=cfg.get("annotations") or {},
            hooks={k: self.hooks.get(k) or [] for k in ("startContainer", "poststart", "poststop")},
            pid_ns_own=bool(plan.unshare_flags & consts.CLONE_NEWPID),
            own_mount_ns=plan.own_mount_ns,
            mount_ns_new=bool(plan.unshare_flags & consts.CLONE_NEWNS),     # not joined
            process=cfg.get("process") or {},
            seccomp=linux_cfg.get("seccomp"),
            personality=linux_cfg.get("personality"),
            memory_policy=linux_cfg.get("memoryPolicy"),
            new_keyring=not self.opts.no_new_keyring,
            cgroup_paths=self.cg_paths,
            cgroups_created=self.cg_created,
            freezer=self.cg.freezer_file(self.cg_paths, created=self.cg_created),
        ))

    def finish(self) -> None:
        from pyoci.report import debug, phase

        assert self.c is not None
        if self.opts.pid_file:
            store.write_file_atomic(self.opts.pid_file, str(self.pid).encode())
        try:
            os.unlink(store.CREATOR_FILE, dir_fd=self.c.dirfd)
        except OSError:
            pass        # state.json decides the status from now on
        if self.net_devices is not None:
            self.net_devices.close()     # the init's namespace holds the devices from now on
        phase("state")
        debug(f"created {self.cid}: init pid {self.pid}")
        if self.own_console >= 0:
            os.close(self.own_console)
            self.own_console = -1

    # -- the callbacks of spawn (native/spawn.py), at its sync points ------------------

    def write_idmap(self, stage1: int) -> None:
        from pyoci.linux import idmap as idmaplib

        plan = self.plan
        assert plan.idmap is not None
        if plan.idmap_writer == "direct":
            idmaplib.write_direct(stage1, plan.idmap)
        else:
            idmaplib.write_with_helpers(stage1, plan.idmap)

    def while_booting(self) -> None:
        # The cgroups, with their limits, are made while stage1 starts.
        self.cg.make(self.cg_paths, self.cg_limits, self.cg_created, self._configure_cgroups)

    def _configure_cgroups(self) -> None:
        if self.dirs and set(self.cg_created) != set(self.dirs):
            # Someone else made one of them meanwhile: a delete after
            # our crash must not take it for ours.
            self._write_cgroups_record(self.cg_created)
        if self.cg_limits:
            self.cg.apply(self.resources, self.cg_paths, self.linux_cfg.get("devices"),
                          rootless=self.cg_delegated)

    def child_created(self, p: int, in_cgroup2: bool) -> None:
        from pyoci.report import debug

        assert self.c is not None
        self.pid = p
        # Before anything else: a delete after we are killed finds the
        # init by it (pid and start time) when there is no state.json.
        self.c.write(store.INIT_FILE, store.pid_record(p))
        # (the v1 hierarchies of a SelfPlacement stage2 joins after SYNC 2)
        placement = self.placement
        done = placement.joined(self.cg_paths, in_cgroup2) if placement is not None else []
        try:
            self.cg.place(p, self.cg_paths, self.cg_limits, done)
        finally:
            if placement is None:
                from pyoci.linux import prewarm

                prewarm.stop()
        debug(f"cgroups of pid {p}: {self.cg_paths} (created {self.cg_created})")
        if self.net_devices is not None:
            self.net_devices.move(p)         # linux.netDevices, into the init's network namespace
        adj = self.plan.process.oom_score_adj
        if adj is not None:
            proc.set_oom_score_adj(p, adj, "($.process.oomScoreAdj)")

    def run_create_hooks(self, p: int) -> None:
        hooks = self.hooks
        if not (hooks.get("prestart") or hooks.get("createRuntime") or hooks.get("createContainer")):
            return
        from pyoci.linux import hooks as hooklib

        if hooks.get("prestart"):
            hooklib.run_hooks("prestart", hooks["prestart"], self._hook_state(HOOK_STATUS["prestart"], p))
        if hooks.get("createRuntime"):
            hooklib.run_hooks("createRuntime", hooks["createRuntime"],
                              self._hook_state(HOOK_STATUS["createRuntime"], p))
        if hooks.get("createContainer"):
            hooklib.run_hooks("createContainer", hooks["createContainer"],
                              self._hook_state(HOOK_STATUS["createContainer"], p),
                              preexec=hooklib.in_namespaces_of(p, self.user_ns and os.geteuid() != 0))

    def killed(self) -> None:
        self.cg.thaw(self.cg_paths, created=self.cg_created)

    # -- helpers and undo actions ------------------------------------------------------

    def _hook_state(self, status: Status, pid: int) -> dict[str, Any]:
        return _hook_state(self.cid, self.cfg, self.bundle, pid, status)

    def _write_cgroups_record(self, created: list[str]) -> None:
        from pyoci import jsonfast

        assert self.c is not None
        self.c.write(CGROUPS_RECORD, jsonfast.dumps({"paths": self.cg_paths, "created": created,
                                                     "rootfs": self.rootfs,
                                                     "own_mount_ns": self.plan.own_mount_ns}).encode())

    def close_fds(self) -> None:
        if self.own_console >= 0:
            os.close(self.own_console)
            self.own_console = -1
        if self.start_fd >= 0:
            os.close(self.start_fd)
            self.start_fd = -1

    def _kill_init(self) -> None:
        pid = self.pid
        if pid > 0 and proc.is_alive(pid, None):
            try:
                os.kill(pid, SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass

    def _unmount(self) -> None:
        from pyoci.linux.mounts import unmount_under

        unmount_under(self.rootfs)

    def _check_oom(self) -> None:
        """Was the init killed by its memory cgroup? (read before the
        cgroups go; the error replaces the one of the failed step)"""
        exc = sys.exc_info()[1]
        if isinstance(exc, ChildError) and self.cg_limits:
            from pyoci.linux.oom import setup_oom_error

            self.oom_error = setup_oom_error(self.cg_paths, self.resources)

    def _remove_state_dir(self) -> None:
        assert self.c is not None
        try:
            self.c.remove()
        except PyociError as e:
            _warn(f"{e}")


def create(root: str, cid: str, opts: CreateOptions, console_fd: int = -1) -> int:
    """Create the container; return its init's pid.

    ``console_fd``: a connected socket to send the pty master to, for callers
    (run) that hold the console themselves; otherwise --console-socket.
    The steps and what a failure in each undoes: _Create."""
    ctx = _Create(root, cid, opts, console_fd)
    try:
        ctx.load()
        ctx.plan_cgroups()
        ctx.make_plan()
        ctx.check_net_devices()
        ctx.open_console()
        ctx.check_resources()
        ctx.state_dir()
        ctx.record_cgroups()
        ctx.listen()
        ctx.spawn()
        ctx.save()
        ctx.finish()
    except BaseException:
        ctx.close_fds()
        try:
            ctx.undo.unwind()
        finally:
            if ctx.c is not None:
                ctx.c.close()
        if ctx.oom_error is not None:
            raise ctx.oom_error from None
        raise
    ctx.undo.discard()
    assert ctx.c is not None
    ctx.c.close()
    return ctx.pid


def keyring_name(cid: str) -> str:
    """The name of the container's session keyring: the id and a random part.

    The random part means no one can create a keyring of that name first
    (KEYCTL_JOIN_SESSION_KEYRING joins an existing keyring of the name, so a
    process of another container of the same uid that made one searchable
    would be handed this container's keys)."""
    return f"pyoci:{cid[:160]}:{os.urandom(6).hex()}"


def start(root: str, cid: str) -> None:
    from pyoci.native import startmsg
    from pyoci.report import debug, phase

    with store.open_container(root, cid, verb="start") as c:
        status = c.status()
        phase("state")
        debug(f"start {cid}: status {status}, init pid {c.pid}")
        if not can("start", status):
            raise InvalidTransition(cid, "start", status)
        try:
            # The socket goes once the init is connected (and would exit if we
            # failed then): see that the directory is writable first.
            os.utime(c.dirfd)
        except OSError as e:
            raise store.write_error("remove", os.path.join(c.path, store.START_SOCKET), e) from None
        try:
            startmsg.start(c.dirfd, store.START_SOCKET, before_start=lambda: _drop_socket(c, strict=True),
                           start_hooks=c.state.hook_list("startContainer") if c.state is not None else None,
                           describe=_describe_child)
        except PyociError:
            # The init exits after a failed start: the container is stopped
            # when the error is printed (an engine deletes it at once).
            _wait_exit(c)
            raise
        finally:
            _drop_socket(c)
    # The lock is not held for poststart: the container runs already.
    poststart = c.state.hook_list("poststart") if c.state is not None else []
    if poststart:
        _run_warn_only(c, "poststart", poststart, RUNNING)
        phase("hooks")


def _describe_child(msg: Message) -> ChildError:
    """An ERROR or WARNING record of the init at `start`, as an error naming
    its step (loads the helper: only on those rare paths)."""
    from pyoci.native.childerr import child_error

    return child_error(msg, None)


def _drop_socket(c: store.Container, strict: bool = False) -> None:
    """Remove the start socket (which marks the container started).  With
    *strict*, a failure (a read-only --root) is an error naming the file,
    raised before the init is told to go; otherwise it is ignored."""
    try:
        os.unlink(store.START_SOCKET, dir_fd=c.dirfd)
    except FileNotFoundError:
        pass
    except OSError as e:
        if strict:      # before the init is told to go: nothing has changed yet
            raise store.write_error("remove", os.path.join(c.path, store.START_SOCKET), e) from None


def _wait_exit(c: store.Container, timeout: float = 5.0) -> None:
    """Wait for the init to exit by itself; SIGKILL it after ``timeout``."""
    deadline = time.monotonic() + timeout
    started = _pid_start(c)
    while proc.is_alive(c.pid, started):
        if time.monotonic() > deadline:
            _signal_all(c, SIGKILL, RUNNING)
            _wait_gone(c)
            return
        time.sleep(0.002)


def _run_warn_only(c: store.Container, stage: str, hooks: list[dict[str, Any]], status: Status) -> None:
    """poststart/poststop: a failing hook is a warning; the others still run."""
    from pyoci.linux.hooks import run_hooks

    state = oci_state(c, status)
    state["pid"] = c.pid
    run_hooks(stage, hooks, state, warn=_warn)


def state(root: str, cid: str) -> dict[str, Any]:
    with store.open_container(root, cid, peek=True) as c:
        return oci_state(c, c.status())


def check_lsm(cfg: dict[str, Any]) -> None:
    """A requested LSM label the host cannot apply is an error, never ignored
    (config.json at create; the process of `exec`, flags included)."""
    process = cfg.get("process") or {}
    if process.get("apparmorProfile"):
        try:
            with open("/sys/module/apparmor/parameters/enabled") as f:
                enabled = f.read().strip() == "Y"
        except OSError:
            enabled = False
        if not enabled:
            raise ConfigError("$.process.apparmorProfile",
                              f"profile {process['apparmorProfile']!r} requested, but AppArmor is not "
                              "enabled on this host", hint="remove the field or enable AppArmor")
        raise ConfigError("$.process.apparmorProfile", "AppArmor profiles are not supported by pyoci yet")
    for field, value in (("$.process.selinuxLabel", process.get("selinuxLabel")),
                         ("$.linux.mountLabel", (cfg.get("linux") or {}).get("mountLabel"))):
        if value:
            enabled = os.path.exists("/sys/fs/selinux/enforce")
            raise ConfigError(field, f"label {value!r} requested, but "
                              + ("SELinux labels are not supported by pyoci yet" if enabled
                                 else "SELinux is not enabled on this host"),
                              hint="remove the field")


def _has_limits(resources: dict[str, Any]) -> bool:
    """Anything beyond an empty object or Podman's default deny-all device rule."""
    for key, value in resources.items():
        if key == "devices" and all(not r.get("allow") and r.get("type", "a") == "a" for r in value):
            continue
        if value:
            return True
    return False


def _pid_start(c: store.Container) -> int | None:
    return c.state.pid_start if c.state is not None else None


def _record(c: store.Container) -> StateRecord:
    """The state record, or (no state.json) an empty one with its defaults."""
    return c.state if c.state is not None else store.no_state()


def _cgroups(c: store.Container) -> Manager:
    """The manager of the cgroups create recorded (chosen from their paths:
    no mountinfo is read)."""
    from pyoci.cgroups import manager as cgroups

    return cgroups.for_paths(_record(c).cgroup_paths)


def container_pids(c: store.Container) -> list[int]:
    st = _record(c)
    paths = st.cgroup_paths
    created = st.cgroups_created
    if paths and created:
        # the container's cgroup and its sub-cgroups, where pyoci made it
        found = _cgroups(c).pids(paths, created=created)
        if found:
            return found
    return proc.pids_in_namespace_of(c.pid) if st.pid_ns_own else _host_pidns_members(c)


def _host_pidns_members(c: store.Container) -> list[int]:
    """The processes of a container without a pid namespace of its own,
    where no cgroup pyoci made says: its init, what descends from it, and,
    with a mount namespace of its own, every process in that namespace (an
    exec'd process is no descendant of the init) when create made it."""
    if not proc.is_alive(c.pid, _pid_start(c)):
        return []
    found = proc.descendants(c.pid)
    if _record(c).mount_ns_new:      # (one joined by path may hold others' processes)
        found += [p for p in proc.pids_in_namespace_of(c.pid, "mnt") if p not in found]
    return found


def _signal_all(c: store.Container, sig: int, status: Status) -> None:
    """Every process of the container, and no one else's.

    With a pid namespace of its own, the container is that namespace: its
    init for SIGKILL (the kernel kills the rest with it), each of its
    processes for other signals; a stopped container has none left.
    Without one (the host's, or one joined by path), its cgroup where pyoci
    created it (the container's alone), else the init, the processes
    descending from it and those in its mount namespace (see
    _host_pidns_members): a cgroup that existed before (linux.cgroupsPath
    naming someone else's) may hold processes that are not the container's,
    and is never read for this.  A stopped container is signalled through
    its cgroup only (what outlived the init); its recorded init pid may be
    reused."""
    st = _record(c)
    paths = st.cgroup_paths
    created = st.cgroups_created
    signalled: list[int] = []
    if st.pid_ns_own:
        if status is not STOPPED:
            targets = [c.pid] if sig == SIGKILL else (proc.pids_in_namespace_of(c.pid) or [c.pid])
            _kill_each(c, targets, sig)
    else:
        if paths and created:
            signalled = _cgroups(c).kill(paths, sig, created=created)
        if not signalled and status is not STOPPED:
            _kill_each(c, _host_pidns_members(c), sig)
    freezer = st.freezer
    if sig == SIGKILL and freezer and status == "paused":
        _cgroups(c).freeze(freezer, False)   # a frozen task cannot die


def _kill_each(c: store.Container, pids: list[int], sig: int) -> None:
    """Signal pids; the init only while it is still the process recorded."""
    for p in pids:
        if p == c.pid and not proc.is_alive(p, _pid_start(c)):
            continue
        try:
            os.kill(p, sig)
        except ProcessLookupError:
            pass


def kill(root: str, cid: str, sig: int, all_processes: bool = False) -> None:
    with store.open_container(root, cid, verb="kill") as c:
        status = c.status()
        if not can("kill", status):
            if all_processes:
                # The runc shim sends kill --all after the exit: succeed, and
                # signal what outlived the init in the container's cgroup
                # (no pid namespace), as runc does.
                if status is STOPPED:
                    _signal_all(c, sig, status)
                return
            raise InvalidTransition(cid, "kill", status)
        if all_processes:
            _signal_all(c, sig, status)
            return
        _signal_pid(c, sig)
        freezer = _record(c).freezer
        if sig == SIGKILL and freezer and status == "paused":
            # A frozen task cannot die: thaw so the SIGKILL takes effect and
            # the container leaves `paused` (runc does the same; other
            # signals stay pending until `resume`, as with runc).
            _cgroups(c).freeze(freezer, False)


def _signal_pid(c: store.Container, sig: int) -> None:
    from pyoci.native._helper import lib

    pidfd = lib.pyoci_pidfd_open(c.pid)
    if pidfd < 0:
        raise PyociError(f"signal the container's init (pid {c.pid})", op="pidfd_open", errno=-pidfd)
    try:
        # The pidfd pins the process: check it is still the one we created.
        if not proc.is_alive(c.pid, _pid_start(c)):
            raise InvalidTransition(c.cid, "kill", STOPPED)
        r = lib.pyoci_pidfd_send_signal(pidfd, sig)
        if r < 0:
            raise PyociError(f"send signal {sig} to pid {c.pid}", op="kill", errno=-r)
    finally:
        os.close(pidfd)


def _wait_gone(c: store.Container, timeout: float = 10.0) -> None:
    """Wait for the killed init to exit.  The kernel tells us through a pidfd
    (readable once the process has exited), so under load we wake when it is
    gone instead of polling with sleeps, each of which costs a trip through a
    busy run queue; without pidfds (Linux < 5.3), poll every 5 ms."""
    deadline = time.monotonic() + timeout
    started = _pid_start(c)
    pidfd = -1
    try:
        pidfd = os.pidfd_open(c.pid)
    except OSError:
        pass
    try:
        while proc.is_alive(c.pid, started):
            left = deadline - time.monotonic()
            if left < 0:
                raise PyociError(f"container's init (pid {c.pid}) did not exit after SIGKILL")
            try:
                # our own child (run): reap it
                os.waitpid(c.pid, os.WNOHANG)
            except ChildProcessError:
                pass
            if pidfd >= 0:
                # is_alive (after the pidfd was opened) said the pid is still
                # the init we recorded, so the pidfd is that process.
                from select import POLLIN, poll

                p = poll()
                p.register(pidfd, POLLIN)
                p.poll(min(left, 1.0) * 1000)
            else:
                time.sleep(0.005)
    finally:
        if pidfd >= 0:
            os.close(pidfd)


def delete(root: str, cid: str, force: bool = False) -> None:
    try:
        c = store.open_container(root, cid, force=force, damaged_ok=force, verb="delete")
    except ContainerNotFound:
        if force:
            return
        raise
    with c:
        status = c.status()
        verb = "delete --force" if force else "delete"
        if not can(verb, status):
            raise InvalidTransition(cid, "delete", status + " (use --force to kill it first)")
        from pyoci.report import debug

        debug(f"delete {cid}: status {status}, init pid {c.pid}")
        _destroy(c, status)


def _destroy(c: store.Container, status: Status) -> None:
    """Kill what still runs, undo host-side changes, remove the state, run
    poststop.  What could not be identified (a damaged state) is named in
    the error raised at the end, after everything else was done."""
    problems: list[str] = []
    if status is not STOPPED and status is not CREATING:
        _signal_all(c, SIGKILL, status)
        _wait_gone(c)
    st = _record(c)
    recorded = st.has("cgroup_paths") and st.has("cgroups_created")
    rec: dict[str, Any] = {}
    if c.state is None or c.damage:
        # create died before state.json, or state.json is damaged: what
        # create recorded before (cgroups.json), and the init it recorded at
        # SYNC 2 (pid and start time), if that still runs.
        rec, bad = _cgroups_record(c)
        init = store.read_pid_record(c.dirfd, store.INIT_FILE)
        # The init's cgroups, when nothing records which of them pyoci made
        # (they are named, never removed: they may not be pyoci's).
        unrecorded: list[str] = []
        if not recorded and "created" not in rec and init and proc.is_alive(*init):
            unrecorded = _cgroups(c).process_dirs(init[0])
        killed = store.kill_recorded(c.dirfd, store.INIT_FILE)
        if killed:
            _wait_pid_gone(killed)
        left = [d for d in unrecorded if os.path.isdir(d)]
        if not recorded and (bad or left):
            problems.append((bad or "nothing records which cgroups pyoci created")
                            + (f"; left in place: {', '.join(left)}" if left else ""))
        if c.damage and not st.has("pid") and not init \
                and not (st.cgroups_created or rec.get("created")):
            problems.append("the init's pid is unknown (a process of the container may still run)")
    rootfs = (st.rootfs if st.has("rootfs") else None) if st.has("own_mount_ns") else rec.get("rootfs")
    own_mount_ns = st.own_mount_ns if st.has("own_mount_ns") else rec.get("own_mount_ns", True)
    if rootfs and not own_mount_ns:
        from pyoci.linux.mounts import unmount_under

        unmount_under(rootfs)
    if recorded:
        paths, created = st.cgroup_paths, st.cgroups_created
    else:
        paths, created = rec.get("paths") or {}, rec.get("created") or []
    if created:
        from pyoci.cgroups import manager as cgroups

        # Leftovers are killed as runc does: when the container has no pid
        # namespace of its own (or create died before saying).
        cgroups.for_paths(paths).destroy(paths, created, kill=not st.pid_ns_own)
    poststop = st.hook_list("poststop")
    c.remove()
    if poststop:
        _run_warn_only(c, "poststop", poststop, STOPPED)
    if problems:
        raise PyociError(f"container {c.cid!r}: state removed, but " + "; ".join(problems),
                         hint="look for what is left by hand")


def _wait_pid_gone(pid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while proc.is_alive(pid, None) and time.monotonic() < deadline:
        time.sleep(0.002)


def _cgroups_record(c: store.Container) -> tuple[dict[str, Any], str | None]:
    """What a create that died before state.json recorded (see
    CGROUPS_RECORD), and what is wrong with the file if it is damaged."""
    from pyoci import jsonfast

    where = os.path.join(c.path, CGROUPS_RECORD)
    try:
        fd = os.open(CGROUPS_RECORD, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=c.dirfd)
    except FileNotFoundError:
        return {}, None
    except OSError as e:
        return {}, f"{where}: {os.strerror(e.errno or 0)}: the container's cgroups were not removed"
    try:
        with os.fdopen(fd, "rb") as f:
            rec = jsonfast.loads(f.read(store.STATE_MAX))
    except (OSError, ValueError, RecursionError):
        rec = None
    paths = rec.get("paths") if type(rec) is dict else None
    created = rec.get("created") if type(rec) is dict else None
    if (type(paths) is not dict or type(created) is not list
            or not all(type(p) is str and p.startswith("/") and "/../" not in p + "/"
                       for p in [*paths.values(), *created])):
        return {}, f"{where} is damaged: the container's cgroups (if any) were not removed"
    assert type(rec) is dict
    out: dict[str, Any] = {"paths": paths, "created": created}
    if type(rec.get("rootfs")) is str and type(rec.get("own_mount_ns")) is bool:
        out["rootfs"], out["own_mount_ns"] = rec["rootfs"], rec["own_mount_ns"]
    return out, None


def list_containers(root: str) -> list[dict[str, Any]]:
    """Every container that can be read; one error line for each other one."""
    from pyoci.report import error

    out = []
    for cid in store.list_ids(root):
        try:
            with store.open_container(root, cid, peek=True) as c:
                s = oci_state(c, c.status())
                st = _record(c)
                s["created"] = st.created
                s["rootfs"] = st.rootfs
                s["owner"] = st.owner if st.owner is not None else ""
                out.append(s)
        except ContainerNotFound:
            continue
        except PyociError as e:
            error(str(e))
    return out


def pause(root: str, cid: str, resume: bool = False) -> None:
    verb = "resume" if resume else "pause"
    with store.open_container(root, cid, verb=verb) as c:
        status = c.status()
        if not can(verb, status):
            raise InvalidTransition(cid, verb, status)
        freezer = _record(c).freezer
        if not freezer or not _record(c).cgroups_created:
            raise PyociError(f"cannot {verb} container {cid!r}: it has no freezer cgroup",
                             hint="pausing needs the freezer (v1) or cgroup.freeze (v2) of a cgroup "
                                  "pyoci created: run as root")
        _cgroups(c).freeze(freezer, not resume)


def ps(root: str, cid: str) -> list[int]:
    with store.open_container(root, cid, peek=True) as c:
        status = c.status()
        if not can("ps", status):
            return []
        return container_pids(c)


def update(root: str, cid: str, resources: dict[str, Any]) -> None:
    from pyoci.cgroups import manager as cgroups

    with store.open_container(root, cid, verb="update") as c:
        status = c.status()
        if not can("update", status):
            raise InvalidTransition(cid, "update", status)
        st = _record(c)
        paths = st.cgroup_paths
        cg = cgroups.for_host()
        privileged = os.geteuid() == 0 and proc.in_initial_userns()
        delegated = not privileged and cg.delegated(paths)
        if not st.cgroups_created or not (privileged or delegated):
            raise PyociError(f"cannot update container {cid!r}: it has no cgroup pyoci can write",
                             hint="resource limits need root (or a delegated cgroup v2 tree)")
        try:
            cg.update(resources, paths, rootless=delegated, prefix="update: resources")
        except ConfigError as e:
            raise e.relabel("update") from None     # the fields come from the command line too
        if resources:
            st.resources.update(resources)
            c.save(st)
