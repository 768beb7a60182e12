"""The lifecycle operations: the only code that changes a container's status.

create -> created -> (start) -> running -> (exit) -> stopped -> (delete)
"""

from __future__ import annotations

import os
import time

from pyoci import SPEC_VERSION
from pyoci.errors import ChildError, ConfigError, ContainerNotFound, InvalidTransition, PyociError
from pyoci.lifecycle import store
from pyoci.lifecycle.status import CREATED, CREATING, RUNNING, STOPPED, can
from pyoci.lifecycle.store import oci_state as oci_state
from pyoci.linux import proc

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from pyoci.lifecycle.status import Status

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


def create(root: str, cid: str, opts: CreateOptions, console_fd: int = -1) -> int:
    """Create the container; return its init's pid.

    ``console_fd``: a connected socket to send the pty master to, for callers
    (run) that hold the console themselves; otherwise --console-socket."""
    from pyoci import jsonfast
    from pyoci.linux import cgroups, consts
    from pyoci.native import spawn
    from pyoci.plan.build import Host, build_plan
    from pyoci.spec.load import load_config

    store.check_id(cid)
    bundle = os.path.abspath(opts.bundle)
    cfg = load_config(bundle)
    root_path = (cfg.get("root") or {}).get("path") or "rootfs"
    rootfs = os.path.realpath(os.path.join(bundle, root_path))
    if not os.path.isdir(rootfs):
        raise ConfigError("$.root.path", f"{rootfs} is not a directory")
    init_userns = proc.in_initial_userns()
    lay = cgroups.layout()
    linux_cfg = cfg.get("linux") or {}
    cg_paths = cgroups.container_paths(linux_cfg.get("cgroupsPath"), cid, lay)
    # Without privilege over the host's cgroups (rootless without a delegated
    # tree), placement is best effort and limits cannot be applied.  A
    # delegated (writable) cgroup v2 subtree takes limits, except devices.
    cg_required = os.geteuid() == 0 and init_userns
    mine = None if cg_required else cgroups.delegated_paths(lay, linux_cfg.get("cgroupsPath"), cid, cg_paths)
    cg_paths = mine or cg_paths
    cg_delegated = mine is not None
    cg_limits = cg_required or cg_delegated
    cgroups.check_not_frozen(cg_paths, lay)     # before anything is placed there
    host = Host(euid=os.geteuid(), egid=os.getegid(), init_userns=init_userns,
                no_pivot=opts.no_pivot, preserve_fds=opts.preserve_fds,
                cgroup_binds=cgroups.mount_binds(lay, cg_paths if cg_limits else None))
    check_lsm(cfg)
    plan = build_plan(cfg, bundle, rootfs, host)
    from pyoci.report import debug, notes, phase

    phase("plan")
    notes(plan.process.notes)

    debug(f"create {cid}: rootfs {rootfs}, {len(plan.ops)} filesystem ops, "
          f"unshare 0x{plan.unshare_flags:x}, join {[p for _, p in plan.join]}")
    if plan.idmap is not None and plan.idmap_writer == "helper":
        # Refuse a map newuidmap/newgidmap would refuse before anything
        # exists (state dir, stage1): the error names the config field.
        from pyoci.linux.subid import check_idmap

        check_idmap(plan.idmap.uid_lines, plan.idmap.gid_lines)
    net_devices = None
    if linux_cfg.get("netDevices"):
        from pyoci.linux import netdev

        netdev.check_host(linux_cfg["netDevices"])     # before anything exists
        net_devices = netdev.Mover(linux_cfg["netDevices"])
    hooks: dict[str, list[dict[str, Any]]] = cfg.get("hooks") or {}
    user_ns = bool(plan.idmap is not None or any(t == consts.CLONE_NEWUSER for t, _ in plan.join))

    own_console = -1
    if plan.process.terminal and console_fd < 0:
        if not opts.console_socket:
            raise ConfigError("$.process.terminal", "is true but no --console-socket was given",
                              hint="pass --console-socket, or set terminal to false")
        own_console = console_fd = spawn.connect_console(opts.console_socket)
    elif not plan.process.terminal:
        console_fd = -1

    resources = linux_cfg.get("resources") or {}
    if cg_limits:
        cgroups.check_resources(resources, lay)     # before anything exists
    elif _has_limits(resources):
        raise PyociError(
            "linux.resources asks for limits, but this user cannot write the host's cgroups",
            field="$.linux.resources",
            hint="run as root, use a delegated cgroup v2 tree, or drop the limits")
    cg_created: list[str] = []
    # Without a user namespace the container's init joins its cgroups by
    # itself, which never waits for the attach lock's grace period
    # (spawn.SelfPlacement); otherwise we move it, and start that grace
    # period now (pyoci/linux/prewarm.py).
    placement = None
    if cg_limits and not user_ns:
        placement = spawn.SelfPlacement(cg_paths, required=True)
    elif cg_limits and os.geteuid() == 0:
        from pyoci.linux import prewarm

        prewarm.start()

    phase("cgroups")
    if opts.preserve_fds:
        proc.hold_fd_range(3, opts.preserve_fds)
    c = store.new_container(root, cid)
    phase("state")
    pid = 0
    start_fd = -1
    try:
        # What a delete must remove should we die from now on, before the
        # first mkdir; the cgroup v2 directory is made now, the rest while
        # stage1 starts.  Written even when no directory is missing, so that
        # a delete can tell a lost record from none.
        dirs = cgroups.missing_dirs(cg_paths)
        c.write(CGROUPS_RECORD, jsonfast.dumps({"paths": cg_paths, "created": dirs, "rootfs": rootfs,
                                                "own_mount_ns": plan.own_mount_ns}).encode())
        if placement is not None and placement.cgroup2_dir:
            cgroups.prepare({"": placement.cgroup2_dir}, True, cg_created)
        start_fd = spawn.listen(c.dirfd, store.START_SOCKET)

        def state_for(status: Status, p: int) -> dict[str, Any]:
            return _hook_state(cid, cfg, bundle, p, status)

        def write_idmap(stage1: int) -> None:
            from pyoci.linux import idmap as idmaplib

            assert plan.idmap is not None
            if plan.idmap_writer == "direct":
                idmaplib.write_direct(stage1, plan.idmap)
            else:
                idmaplib.write_with_helpers(stage1, plan.idmap)

        def while_booting() -> None:
            # The cgroups, with their limits, are made while stage1 starts.
            def configure() -> None:
                if dirs and set(cg_created) != set(dirs):
                    # Someone else made one of them meanwhile: a delete after
                    # our crash must not take it for ours.
                    c.write(CGROUPS_RECORD, jsonfast.dumps(
                        {"paths": cg_paths, "created": cg_created, "rootfs": rootfs,
                         "own_mount_ns": plan.own_mount_ns}).encode())
                if cg_limits:
                    cgroups.apply_resources(resources, cg_paths, lay, linux_cfg.get("devices"),
                                            rootless=cg_delegated)

            cgroups.prepare(cg_paths, cg_limits, cg_created, configure)

        def child_created(p: int, in_cgroup2: bool) -> None:
            nonlocal pid
            pid = p
            # Before anything else: a delete after we are killed finds the
            # init by it (pid and start time) when there is no state.json.
            c.write(store.INIT_FILE, store.pid_record(p))
            # (the v1 hierarchies of a SelfPlacement stage2 joins after SYNC 2)
            done = placement.joined(cg_paths, in_cgroup2) if placement is not None else []
            try:
                cgroups.attach(p, cg_paths, cg_limits, done)
            finally:
                if placement is None:
                    from pyoci.linux import prewarm

                    prewarm.stop()
            debug(f"cgroups of pid {p}: {cg_paths} (created {cg_created})")
            if net_devices is not None:
                net_devices.move(p)         # linux.netDevices, into the init's network namespace
            adj = plan.process.oom_score_adj
            if adj is not None:
                try:
                    proc.write_text(f"/proc/{p}/oom_score_adj", str(adj))
                except OSError as e:
                    raise PyociError(f"set oom_score_adj {adj} ($.process.oomScoreAdj)",
                                     op="write oom_score_adj", errno=e.errno,
                                     hint="lowering it needs CAP_SYS_RESOURCE") from None

        def run_create_hooks(p: int) -> None:
            if not (hooks.get("prestart") or hooks.get("createRuntime") or hooks.get("createContainer")):
                return
            from pyoci.linux import hooks as hooklib

            if hooks.get("prestart"):
                hooklib.run_hooks("prestart", hooks["prestart"], state_for(HOOK_STATUS["prestart"], p))
            if hooks.get("createRuntime"):
                hooklib.run_hooks("createRuntime", hooks["createRuntime"],
                                  state_for(HOOK_STATUS["createRuntime"], p))
            if hooks.get("createContainer"):
                hooklib.run_hooks("createContainer", hooks["createContainer"],
                                  state_for(HOOK_STATUS["createContainer"], p),
                                  preexec=hooklib.in_namespaces_of(p, user_ns and os.geteuid() != 0))

        def killed() -> None:
            cgroups.thaw(cgroups.owned(cg_paths, cg_created))

        callbacks = spawn.Callbacks(write_idmap=write_idmap, while_booting=while_booting,
                                    child_created=child_created,
                                    run_create_hooks=run_create_hooks, warning=_warn, killed=killed)
        # "pid":0 is replaced by the C helper with the pid it gets at SYNC 2.
        start_state = jsonfast.dumps(_hook_state(cid, cfg, bundle, 0, HOOK_STATUS["startContainer"]))
        pid = spawn.spawn(plan, start_fd, callbacks, list(hooks.get("startContainer") or []),
                          start_state, None if opts.no_new_keyring else keyring_name(cid), console_fd,
                          placement)
        os.close(start_fd)
        start_fd = -1
        pid_start = proc.start_time(pid)
        if pid_start is None:
            raise ChildError("the container's init exited during setup")
        if not cg_limits and not cg_created and linux_cfg.get("cgroupsPath"):
            # Asked for a cgroup (--cgroup-parent) that this user cannot make
            # (cgroup v1, no delegated v2 tree): said, never silent.
            _warn(f"cgroupsPath {linux_cfg['cgroupsPath']!r} ($.linux.cgroupsPath): this user cannot create "
                  f"cgroups there (no delegated cgroup v2 tree), so container {cid!r} runs without a "
                  "cgroup of its own, in the caller's")
        c.save({
            "ociVersion": cfg.get("ociVersion", SPEC_VERSION),
            "id": cid,
            "pid": pid,
            "pid_start": pid_start,
            "bundle": bundle,
            "rootfs": rootfs,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "owner": os.geteuid(),
            "annotations": cfg.get("annotations") or {},
            "hooks": {k: hooks.get(k) or [] for k in ("startContainer", "poststart", "poststop")},
            "pid_ns_own": bool(plan.unshare_flags & consts.CLONE_NEWPID),
            "own_mount_ns": plan.own_mount_ns,
            "mount_ns_new": bool(plan.unshare_flags & consts.CLONE_NEWNS),     # not joined
            "process": cfg.get("process") or {},
            "seccomp": linux_cfg.get("seccomp"),
            "personality": linux_cfg.get("personality"),
            "memoryPolicy": linux_cfg.get("memoryPolicy"),
            "new_keyring": not opts.no_new_keyring,
            "cgroup_paths": cg_paths,
            "cgroups_created": cg_created,
            "freezer": cgroups.freezer_file(cgroups.owned(cg_paths, cg_created)),
        })
        if opts.pid_file:
            store.write_file_atomic(opts.pid_file, str(pid).encode())
        try:
            os.unlink(store.CREATOR_FILE, dir_fd=c.dirfd)
        except OSError:
            pass        # state.json decides the status from now on
        if net_devices is not None:
            net_devices.close()     # the init's namespace holds the devices from now on
        phase("state")
        debug(f"created {cid}: init pid {pid}")
        if own_console >= 0:
            os.close(own_console)
    except BaseException as exc:
        if own_console >= 0:
            os.close(own_console)
        if start_fd >= 0:
            os.close(start_fd)
        if pid > 0 and proc.is_alive(pid, None):
            try:
                os.kill(pid, SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        if net_devices is not None:
            net_devices.restore()
        if not plan.own_mount_ns:
            from pyoci.linux.mounts import unmount_under

            unmount_under(rootfs)
        oom_error = None
        if isinstance(exc, ChildError) and cg_limits:
            # killed by its memory cgroup?
            from pyoci.linux.oom import setup_oom_error

            oom_error = setup_oom_error(cg_paths, resources)
        cgroups.remove(cg_created)
        try:
            c.remove()
        except PyociError as e:
            _warn(f"{e}")
        c.close()
        if oom_error is not None:
            raise oom_error from None
        raise
    c.close()
    return pid


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
                        start_hooks=((c.state or {}).get("hooks") or {}).get("startContainer"))
        except PyociError:
            # The init exits after a failed start: the container is stopped
            # when the error is printed (an engine deletes it at once).
            _wait_exit(c)
            raise
        finally:
            _drop_socket(c)
    # The lock is not held for poststart: the container runs already.
    poststart = ((c.state or {}).get("hooks") or {}).get("poststart") or []
    if poststart:
        _run_warn_only(c, "poststart", poststart, RUNNING)
        phase("hooks")


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
    started = (c.state or {}).get("pid_start")
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


def container_pids(c: store.Container) -> list[int]:
    st = c.state or {}
    paths = st.get("cgroup_paths") or {}
    created = st.get("cgroups_created") or []
    if paths and created:
        from pyoci.linux import cgroups

        # the container's cgroup and its sub-cgroups, where pyoci made it
        found = cgroups.pids(paths, created=created)
        if found:
            return found
    return proc.pids_in_namespace_of(c.pid) if st.get("pid_ns_own") else _host_pidns_members(c)


def _host_pidns_members(c: store.Container) -> list[int]:
    """The processes of a container without a pid namespace of its own,
    where no cgroup pyoci made says: its init, what descends from it, and,
    with a mount namespace of its own, every process in that namespace (an
    exec'd process is no descendant of the init) when create made it."""
    st = c.state or {}
    if not proc.is_alive(c.pid, st.get("pid_start")):
        return []
    found = proc.descendants(c.pid)
    if st.get("mount_ns_new"):      # (one joined by path may hold others' processes)
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
    st = c.state or {}
    paths = st.get("cgroup_paths") or {}
    created = st.get("cgroups_created") or []
    signalled: list[int] = []
    if st.get("pid_ns_own"):
        if status is not STOPPED:
            targets = [c.pid] if sig == SIGKILL else (proc.pids_in_namespace_of(c.pid) or [c.pid])
            _kill_each(c, targets, sig)
    else:
        if paths and created:
            from pyoci.linux import cgroups

            signalled = cgroups.signal_all(paths, sig, created=created)
        if not signalled and status is not STOPPED:
            _kill_each(c, _host_pidns_members(c), sig)
    freezer = st.get("freezer")
    if sig == SIGKILL and freezer and status == "paused":
        from pyoci.linux import cgroups

        cgroups.freeze(freezer, False)   # a frozen task cannot die


def _kill_each(c: store.Container, pids: list[int], sig: int) -> None:
    """Signal pids; the init only while it is still the process recorded."""
    for p in pids:
        if p == c.pid and not proc.is_alive(p, (c.state or {}).get("pid_start")):
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
        freezer = (c.state or {}).get("freezer")
        if sig == SIGKILL and freezer and status == "paused":
            # A frozen task cannot die: thaw so the SIGKILL takes effect and
            # the container leaves `paused` (runc does the same; other
            # signals stay pending until `resume`, as with runc).
            from pyoci.linux import cgroups

            cgroups.freeze(freezer, False)


def _signal_pid(c: store.Container, sig: int) -> None:
    from pyoci.native._helper import lib

    pidfd = lib.pyoci_pidfd_open(c.pid)
    if pidfd < 0:
        raise PyociError(f"signal the container's init (pid {c.pid})", op="pidfd_open", errno=-pidfd)
    try:
        # The pidfd pins the process: check it is still the one we created.
        if not proc.is_alive(c.pid, (c.state or {}).get("pid_start")):
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
    started = (c.state or {}).get("pid_start")
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
    st = c.state or {}
    recorded = "cgroup_paths" in st and "cgroups_created" in st
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
            unrecorded = _cgroups_of(init[0])
        killed = store.kill_recorded(c.dirfd, store.INIT_FILE)
        if killed:
            _wait_pid_gone(killed)
        left = [d for d in unrecorded if os.path.isdir(d)]
        if not recorded and (bad or left):
            problems.append((bad or "nothing records which cgroups pyoci created")
                            + (f"; left in place: {', '.join(left)}" if left else ""))
        if c.damage and "pid" not in st and not init \
                and not (st.get("cgroups_created") or rec.get("created")):
            problems.append("the init's pid is unknown (a process of the container may still run)")
    rootfs = st.get("rootfs") if "own_mount_ns" in st else rec.get("rootfs")
    own_mount_ns = st.get("own_mount_ns", rec.get("own_mount_ns", True))
    if rootfs and not own_mount_ns:
        from pyoci.linux.mounts import unmount_under

        unmount_under(rootfs)
    if recorded:
        paths, created = st["cgroup_paths"], st["cgroups_created"]
    else:
        paths, created = rec.get("paths") or {}, rec.get("created") or []
    if created:
        from pyoci.linux import cgroups

        # Leftovers are killed as runc does: when the container has no pid
        # namespace of its own (or create died before saying).
        cgroups.destroy(paths, created, kill=not st.get("pid_ns_own"))
    poststop = (st.get("hooks") or {}).get("poststop") or []
    c.remove()
    if poststop:
        _run_warn_only(c, "poststop", poststop, STOPPED)
    if problems:
        raise PyociError(f"container {c.cid!r}: state removed, but " + "; ".join(problems),
                         hint="look for what is left by hand")


def _cgroups_of(pid: int) -> list[str]:
    """The directories of pid's cgroups that are not the caller's own."""
    from pyoci.linux import cgroups

    try:
        theirs, mine = cgroups.own_cgroups(str(pid)), cgroups.own_cgroups()
    except OSError:
        return []
    lay = cgroups.layout()
    out = []
    for ctrl, rel in theirs.items():
        base = lay.unified if ctrl == "" else lay.v1.get(ctrl)
        if base and rel != mine.get(ctrl) and rel not in ("", "/"):
            d = os.path.normpath(base + rel)
            if d not in out:
                out.append(d)
    return out


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
                s["created"] = (c.state or {}).get("created", "")
                s["rootfs"] = (c.state or {}).get("rootfs", "")
                s["owner"] = (c.state or {}).get("owner", "")
                out.append(s)
        except ContainerNotFound:
            continue
        except PyociError as e:
            error(str(e))
    return out


def pause(root: str, cid: str, resume: bool = False) -> None:
    from pyoci.linux import cgroups

    verb = "resume" if resume else "pause"
    with store.open_container(root, cid, verb=verb) as c:
        status = c.status()
        if not can(verb, status):
            raise InvalidTransition(cid, verb, status)
        freezer = (c.state or {}).get("freezer")
        if not freezer or not (c.state or {}).get("cgroups_created"):
            raise PyociError(f"cannot {verb} container {cid!r}: it has no freezer cgroup",
                             hint="pausing needs the freezer (v1) or cgroup.freeze (v2) of a cgroup "
                                  "pyoci created: run as root")
        cgroups.freeze(freezer, not resume)


def ps(root: str, cid: str) -> list[int]:
    with store.open_container(root, cid, peek=True) as c:
        status = c.status()
        if not can("ps", status):
            return []
        return container_pids(c)


def update(root: str, cid: str, resources: dict[str, Any]) -> None:
    from pyoci.linux import cgroups

    with store.open_container(root, cid, verb="update") as c:
        status = c.status()
        if not can("update", status):
            raise InvalidTransition(cid, "update", status)
        st = c.state or {}
        paths = st.get("cgroup_paths") or {}
        lay = cgroups.layout()
        privileged = os.geteuid() == 0 and proc.in_initial_userns()
        delegated = not privileged and cgroups.delegated(lay, paths)
        if not st.get("cgroups_created") or not (privileged or delegated):
            raise PyociError(f"cannot update container {cid!r}: it has no cgroup pyoci can write",
                             hint="resource limits need root (or a delegated cgroup v2 tree)")
        try:
            cgroups.apply_resources(resources, paths, lay, rootless=delegated,
                                    prefix="update: resources", update=True)
        except ConfigError as e:
            raise e.relabel("update") from None     # the fields come from the command line too
        if resources:
            st.setdefault("resources", {}).update(resources)
            c.save(st)
