"""`create`: a container from a bundle, as a sequence of named steps (_Create)
over one context, with the cleanup of each acquired resource registered on
an undo stack as it is acquired.

The verbs on an existing container are pyoci.lifecycle.container.
"""

from __future__ import annotations

import os
import sys
import time

from pyoci import SPEC_VERSION
from pyoci.errors import ChildError, ConfigError, PyociError
from pyoci.lifecycle import store
from pyoci.lifecycle.status import HOOK_STATUS
from pyoci.lifecycle.store import CGROUPS_RECORD, StateRecord
from pyoci.lifecycle.undo import Undo
from pyoci.linux import proc
from pyoci.spec.checks import check_lsm, has_limits

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from pyoci.lifecycle.status import Status

SIGKILL = 9


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
        elif has_limits(resources):
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
        return store.hook_state(self.cid, self.cfg, self.bundle, pid, status)

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
