"""The lifecycle operations on an existing container: start, kill, delete,
pause/resume, ps, update, list (create is pyoci.lifecycle.create).  With
create, the only code that changes a container's status.

create -> created -> (start) -> running -> (exit) -> stopped -> (delete)
"""

from __future__ import annotations

import os
import time

from pyoci.errors import ChildError, ConfigError, ContainerNotFound, InvalidTransition, PyociError
from pyoci.lifecycle import store
from pyoci.lifecycle.status import CREATING, RUNNING, STOPPED, can
from pyoci.lifecycle.store import StateRecord
from pyoci.lifecycle.store import oci_state as oci_state
from pyoci.linux import proc

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from pyoci.cgroups.manager import Manager
    from pyoci.lifecycle.status import Status
    from pyoci.native.startmsg import Message

SIGKILL = 9
def _warn(msg: str) -> None:
    from pyoci.report import warning

    warning(msg)


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
    store.CGROUPS_RECORD), and what is wrong with the file if it is damaged."""
    from pyoci import jsonfast

    where = os.path.join(c.path, store.CGROUPS_RECORD)
    try:
        fd = os.open(store.CGROUPS_RECORD, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=c.dirfd)
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
