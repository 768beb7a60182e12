"""cgroups: what every layout shares: the layout, the container's paths,
placement, the frozen check, and cleanup of what pyoci created.

Layouts: v1 (one hierarchy per controller), v2 (unified), and hybrid (v1
controllers plus a cgroup2 mount at /sys/fs/cgroup/unified, as on this
project's CI machines).  The layout is read from /proc/self/mountinfo each
time; nothing is assumed.

A container's cgroup is ``linux.cgroupsPath`` (absolute, or relative to the
runtime's own cgroup as runc does) or, without one, ``<id>`` relative to the
runtime's cgroup (runc's default too).  Only directories this module created are recorded
and removed at delete; a cgroup the container was moved into by someone else
is never touched.

Limits and freezing differ by layout: :mod:`pyoci.cgroups.manager` picks
the implementation (:mod:`pyoci.cgroups.v1`, :mod:`pyoci.cgroups.v2`, or
the hybrid of both); statistics are read by :mod:`pyoci.cgroups.stats`
(the `events` verb only).  This module imports no other module of the
package.
"""

from __future__ import annotations

import os

from pyoci.errors import PyociError
from pyoci.linux.proc import write_text

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Collection
    from typing import Any


class Layout:
    __slots__ = ("v1", "unified")

    def __init__(self, v1: dict[str, str], unified: str | None) -> None:
        self.v1 = v1            # controller (or "name=systemd") -> mount point
        self.unified = unified  # cgroup2 mount point, or None


def layout() -> Layout:
    from pyoci.linux.mounts import mountinfo

    v1: dict[str, str] = {}
    unified = None
    for point, fstype, _source, superopts in mountinfo():
        if fstype == "cgroup2":
            unified = unified or point
        elif fstype == "cgroup":
            for opt in superopts.split(","):
                if opt in ("rw", "ro") or opt.startswith(("release_agent", "clone_children",
                                                         "xattr", "noprefix", "cpuset_v2_mode")):
                    continue
                v1.setdefault(opt, point)
    return Layout(v1, unified)


def own_cgroups(pid: str = "self") -> dict[str, str]:
    """controller -> path of the process's cgroup ("" key: the v2 one)."""
    out: dict[str, str] = {}
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _hid, ctrls, path = line.rstrip("\n").split(":", 2)
            if not ctrls:
                out[""] = path
            for c in ctrls.split(","):
                out[c] = path
    return out


def mount_binds(lay: Layout, paths: dict[str, str] | None) -> list[tuple[str, str]]:
    """What a `cgroup` mount in the container shows: (name, host directory)
    per v1 hierarchy -- the container's cgroup (``paths``), or the caller's
    own when pyoci places nothing (rootless).  A cgroup2-only host gives one
    entry named "".  The hybrid layout's empty cgroup2 is not shown."""
    own = own_cgroups() if paths is None else {}
    binds: list[tuple[str, str]] = []
    seen: set[str] = set()
    for ctrl, mount in lay.v1.items():
        if mount in seen:
            continue
        seen.add(mount)
        host_dir = paths.get(ctrl) if paths is not None else mount + _join("/", own.get(ctrl, "/"))
        if host_dir:
            binds.append((os.path.basename(mount), host_dir))
    if not binds and lay.unified:
        host_dir = paths.get("") if paths is not None else lay.unified + _join("/", own.get("", "/"))
        if host_dir:
            binds.append(("", host_dir))
    return binds


def _join(base: str, rel: str) -> str:
    return os.path.normpath(os.path.join(base, rel.lstrip("/"))) if rel else base


def container_paths(cgroups_path: str | None, cid: str, lay: Layout) -> dict[str, str]:
    """Absolute directories of the container's cgroup, per controller and for v2 ("")."""
    own = own_cgroups()
    rel = cgroups_path or cid
    if ":" in rel and not rel.startswith("/"):
        # systemd form slice:prefix:name, without systemd: the cgroupfs path
        # a systemd manager would have made (documented in the README).
        slice_, prefix, name = (rel.split(":") + ["", ""])[:3]
        rel = f"{slice_}/{prefix}-{name}.scope" if slice_ else f"{prefix}-{name}.scope"
        absolute = True
    else:
        absolute = rel.startswith("/")
    paths: dict[str, str] = {}
    seen: set[str] = set()
    for ctrl, mount in lay.v1.items():
        if mount in seen:
            continue
        seen.add(mount)
        base = "/" if absolute else own.get(ctrl, "/")
        paths[ctrl] = mount + _join(base, rel)
    if lay.unified:
        base = "/" if absolute else own.get("", "/")
        if not absolute and is_v2(lay):
            # As runc on v2: next to our own cgroup, which holds processes
            # (ours), where controllers cannot be enabled for children.
            base = os.path.dirname(base.rstrip("/")) or "/"
        paths[""] = lay.unified + _join(base, rel)
    return paths


def write_value(path: str, value: str, field: str | None = None) -> None:
    try:
        write_text(path, value)
    except OSError as e:
        what = (f"{field}: " if field else "") + f"write {value!r} to {path}"
        raise PyociError(what, op="write", path=path, field=field, errno=e.errno) from None


def _missing(path: str) -> list[str]:
    """``path`` and those of its ancestors that do not exist, outermost
    first; looked for from the leaf up (one stat when only the leaf is
    missing), never /sys/fs or above."""
    out: list[str] = []
    d = path
    while d.count("/") > 2 and not os.path.isdir(d):
        out.append(d)
        d = os.path.dirname(d)
    out.reverse()
    return out


def missing_dirs(paths: dict[str, str]) -> list[str]:
    """The directories prepare() would create (each missing path component)."""
    out: list[str] = []
    for path in paths.values():
        for d in _missing(path):
            if d not in out:
                out.append(d)
    return out


def _nearest_dir(path: str) -> str | None:
    """path, or its nearest ancestor that exists (never /sys/fs or above)."""
    d = path
    while d.count("/") > 2:
        if os.path.isdir(d):
            return d
        d = os.path.dirname(d)
    return None


def _read_or_none(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def check_not_frozen(paths: dict[str, str], lay: Layout) -> None:
    """Refuse a container cgroup that is frozen already, before anything is
    placed in it: the init would stop at once, and create would wait for a
    report that never comes (runc refuses too: "container's cgroup
    unexpectedly frozen").  The v1 freezer (freezer.state FROZEN or
    FREEZING) and cgroup v2 (cgroup.freeze 1, or cgroup.events "frozen 1"
    when an ancestor is frozen) are read; a directory that does not exist
    yet is judged by its nearest existing ancestor, whose state a new child
    inherits."""
    freezer_mount = lay.v1.get("freezer")
    for ctrl, path in paths.items():
        if ctrl == "":
            d = _nearest_dir(path)
            if d is None:
                continue
            own = (_read_or_none(os.path.join(d, "cgroup.freeze")) or "").strip() == "1"
            events = _read_or_none(os.path.join(d, "cgroup.events")) or ""
            if own or "frozen 1" in events.splitlines():
                f = os.path.join(d, "cgroup.freeze" if own else "cgroup.events")
                _refuse_frozen(path, d, f, "reads 1" if own else "says frozen 1", "cgroup.freeze", "0")
        elif freezer_mount and (path + "/").startswith(freezer_mount + "/"):
            d = _nearest_dir(path)
            if d is None:
                continue
            state = (_read_or_none(os.path.join(d, "freezer.state")) or "THAWED").strip()
            if state != "THAWED":
                _refuse_frozen(path, d, os.path.join(d, "freezer.state"), f"reads {state}",
                               "freezer.state", "THAWED")


def _refuse_frozen(path: str, d: str, f: str, says: str, knob: str, thawed: str) -> None:
    what = f"{f} {says}" if d == path else f"{path} is below {d}, whose {os.path.basename(f)} {says}"
    raise PyociError(f"container's cgroup unexpectedly frozen: {what}",
                     op="check cgroup", path=d, field="$.linux.cgroupsPath",
                     hint=f"thaw it (write {thawed} to {knob} of the frozen cgroup) or choose another "
                          "linux.cgroupsPath")


def prepare(paths: dict[str, str], required: bool, created: list[str],
            configure: Callable[[], None] | None = None) -> None:
    """Create the cgroups, appending each directory made to ``created`` (the
    caller removes them should anything fail), then apply the limits.

    The caller records missing_dirs() first, so that a delete after a crash
    of this process finds them.  With ``required`` False (rootless without a
    delegated tree), an unwritable hierarchy is skipped; the caller reports
    what that costs."""
    for ctrl, path in paths.items():
        try:
            _mkdirs(path, created)
        except OSError as e:
            if not required:
                continue
            d = e.filename if isinstance(e.filename, str) else path
            raise PyociError(f"create cgroup {d}", op="mkdir", path=d, errno=e.errno) from None
        if ctrl == "cpuset" and os.path.isdir(path):
            _inherit_cpuset(path)
    # Limits and device rules are complete before the process joins: the
    # container's init creates its device nodes while we place it.
    if configure is not None:
        configure()


def attach(pid: int, paths: dict[str, str], required: bool, done: Collection[str] = ()) -> None:
    """Move pid into the cgroups prepare() made, but for the controllers in
    ``done`` (those the process joined by itself: "" for cgroup v2).

    A write to cgroup.procs waits for an RCU grace period when no migration
    happened for a while (the attach lock's writer side: 7-19 ms on this
    project's machines); create avoids it where it can (spawn.SelfPlacement)."""
    for ctrl, path in paths.items():
        if ctrl in done:
            continue
        try:
            write_value(os.path.join(path, "cgroup.procs"), str(pid))
        except PyociError as e:
            if e.errno == 2 or not required:
                continue        # a hierarchy prepare() skipped (or could not make)
            # The cgroup2 directory is required where it is the only
            # hierarchy or where it carries the device filter (no v1 devices).
            if ctrl != "" or "devices" not in paths:
                raise


def _mkdirs(path: str, created: list[str]) -> None:
    """mkdir -p below the hierarchy's mount, appending what we made to
    ``created``.  A parent shared with another container (one pyoci made for
    the cgroupsPath of both) may be removed by a concurrent delete between our
    mkdirs: start over then."""
    for attempt in range(5):
        try:
            _mkdir_p(path, created)
            return
        except FileNotFoundError:
            if attempt == 4:
                raise


def _mkdir_p(d: str, created: list[str]) -> None:
    """mkdir d, and first its missing parents (one mkdir when only d is)."""
    try:
        os.mkdir(d, 0o755)
    except FileExistsError:
        return
    except FileNotFoundError:
        parent = os.path.dirname(d)
        if parent.count("/") <= 2:
            raise
        _mkdir_p(parent, created)
        os.mkdir(d, 0o755)
    created.append(d)


def _inherit_cpuset(path: str) -> None:
    """A new v1 cpuset cgroup starts empty; copy cpus/mems from its parent."""
    for f in ("cpuset.cpus", "cpuset.mems"):
        mine = os.path.join(path, f)
        try:
            with open(mine) as fh:
                if fh.read().strip():
                    continue
            parent = os.path.join(os.path.dirname(path), f)
            with open(parent) as fh:
                value = fh.read().strip()
            if not value:
                _inherit_cpuset(os.path.dirname(path))
                with open(parent) as fh:
                    value = fh.read().strip()
            write_value(mine, value)
        except OSError:
            pass


# Every field of linux.resources (runtime-spec 1.2): section -> keys.  A
# section listed with None is a list or a map applied as a whole.
FIELDS: dict[str, tuple[str, ...] | None] = {
    "memory": ("limit", "reservation", "swap", "kernel", "kernelTCP", "swappiness",
               "disableOOMKiller", "useHierarchy", "checkBeforeUpdate"),
    "cpu": ("shares", "quota", "burst", "period", "realtimeRuntime", "realtimePeriod", "cpus", "mems",
            "idle"),
    "pids": ("limit",),
    "blockIO": ("weight", "leafWeight", "weightDevice", "throttleReadBpsDevice", "throttleWriteBpsDevice",
                "throttleReadIOPSDevice", "throttleWriteIOPSDevice"),
    "network": ("classID", "priorities"),
    "hugepageLimits": None,
    "rdma": None,
    "unified": None,
    "devices": None,
}
# Accepted without effect: the kernel memory limit is obsolete since Linux
# 5.4 (the runtime-spec lets runtimes ignore it; runc does, with a warning,
# and so does pyoci), and useHierarchy is always on in cgroup v1 now.
IGNORED: frozenset[tuple[str, ...]] = frozenset({("memory", "kernel"), ("memory", "useHierarchy")})
SUPPORTED: frozenset[tuple[str, ...]] = frozenset(
    [(s, k) for s, keys in FIELDS.items() if keys for k in keys if (s, k) not in IGNORED]
    + [(s,) for s, keys in FIELDS.items() if keys is None])


# Devices every container needs, allowed after the config's rules (as runc
# does): the default nodes, /dev/console, /dev/ptmx and the pty slaves.
DEFAULT_ALLOWED = ["c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm", "c 5:0 rwm",
                   "c 5:1 rwm", "c 5:2 rwm", "c 136:* rwm"]


def unsupported(resources: dict[str, Any]) -> list[str]:
    """JSON paths of the set fields in linux.resources pyoci does not know."""
    out = []
    for section, value in resources.items():
        if value in (None, {}, []):
            continue
        if section not in FIELDS:
            out.append(f"$.linux.resources.{section}")
            continue
        keys = FIELDS[section]
        if keys is None or not isinstance(value, dict):
            continue
        out += [f"$.linux.resources.{section}.{k}" for k, v in value.items()
                if v is not None and k not in keys]
    return out


def check_supported(resources: dict[str, Any]) -> None:
    bad = unsupported(resources)
    if bad:
        raise PyociError(f"{bad[0]}: not a linux.resources field pyoci knows"
                         + (f" (nor {', '.join(bad[1:])})" if len(bad) > 1 else ""),
                         field=bad[0], hint="remove the field; known: " + ", ".join(
                             sorted(".".join(k) for k in SUPPORTED)))


def controller_dirs(paths: dict[str, str], lay: Layout) -> dict[str, str]:
    """controller -> the container's directory, for every controller of
    every v1 hierarchy (``paths`` has one entry per hierarchy, named after
    the first controller of a co-mounted pair such as cpu,cpuacct), plus
    "" for the cgroup2 directory."""
    by_mount = {lay.v1[c]: p for c, p in paths.items() if c in lay.v1}
    out = {c: by_mount[m] for c, m in lay.v1.items() if m in by_mount}
    if "" in paths:
        out[""] = paths[""]
    return out


def remove(created: list[str]) -> None:
    """rmdir what we created, deepest first; retry briefly while the last
    processes leave (create's error path: the init was killed just before)."""
    import time

    for d in sorted(created, key=len, reverse=True):
        for _ in range(50):
            try:
                os.rmdir(d)
                break
            except FileNotFoundError:
                break
            except OSError as e:
                if e.errno != 16:      # EBUSY: tasks still leaving; ENOTEMPTY: shared parent
                    break
                time.sleep(0.01)


def destroy(paths: dict[str, str], created: list[str], kill: bool, timeout: float = 5.0) -> None:
    """Remove the container's cgroups at delete.

    With ``kill`` (as runc: the container has no pid namespace of its own,
    or pyoci died during create and nothing says), processes still in a
    container directory we created, or in any directory below it, are
    killed first (``cgroup.kill`` where the kernel has it): the init's
    children, or a whole container whose create never finished.  Otherwise
    the kernel empties them when the init of their pid namespace dies, and
    we wait.  Frozen cgroups (the container's, or sub-cgroups it froze
    itself) are thawed first, since a frozen v1 task cannot die.
    Sub-cgroups made from inside the container (or by anyone below its
    cgroup) go with it, deepest first; parents we created are removed once
    empty (one still used by other containers stays).  A container
    directory that cannot be removed is an error (the state is kept so
    delete can be retried)."""
    import time

    mine = set(created)
    all_leaves = [p for p in paths.values() if p in mine]
    leaves = []
    for leaf in all_leaves:
        # The common case first: an empty cgroup with nothing below it goes
        # at once, without walking the tree three times.
        try:
            os.rmdir(leaf)
        except FileNotFoundError:
            pass
        except OSError:
            leaves.append(leaf)
    deadline = time.monotonic() + timeout
    for leaf in leaves:
        _thaw_tree(leaf)
    for leaf in leaves:
        while True:
            left = _kill_tree(leaf, 9 if kill else 0)
            busy = _rmdir_tree(leaf)
            if busy is None:
                break
            if time.monotonic() > deadline:
                what = f"processes {left[:5]} are" if left else "it is"
                hint = ("a process stuck in the kernel (state D) cannot leave; retry delete later" if kill
                        else "they are not the container's (another pid namespace): move them out or "
                             "kill them, then retry delete")
                raise PyociError(f"remove cgroup {busy}: {what} still in it"
                                 + (" after SIGKILL" if kill else ""),
                                 op="rmdir", path=busy, errno=16, hint=hint)
            time.sleep(0.01)
    remove([d for d in created if d not in all_leaves])


def thaw(paths: dict[str, str]) -> None:
    """Thaw the container's cgroups and their sub-cgroups (those pyoci
    made: pass owned()): before its processes are killed on a failed
    create, since a task of a frozen v1 cgroup does not die until thawed."""
    for path in paths.values():
        if os.path.exists(os.path.join(path, "freezer.state")):
            _thaw_tree(path)
        elif os.path.exists(os.path.join(path, "cgroup.freeze")):
            try:
                write_text(os.path.join(path, "cgroup.freeze"), "0")
            except OSError:
                pass


def _thaw_tree(top: str) -> None:
    """Thaw a v1 freezer cgroup and every sub-cgroup frozen on its own (a
    child's freezer.state reads FROZEN too while its parent is frozen, so
    the parent goes first)."""
    for dirpath, _dirs, _files in os.walk(top):
        state = os.path.join(dirpath, "freezer.state")
        try:
            with open(state) as f:
                if f.read().strip() == "THAWED":
                    continue
            write_text(state, "THAWED")
        except OSError:
            pass


def _kill_tree(top: str, sig: int) -> list[int]:
    """Send sig (0: none) to every process in top and below; return the pids
    seen.  SIGKILL goes through cgroup.kill first where top has it (cgroup2,
    Linux 5.14+): atomic, so a process forking meanwhile cannot escape."""
    if sig == 9:
        _cgroup_kill(top)
    seen = tree_pids(top)
    for pid in seen if sig else []:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
    return seen


def _cgroup_kill(path: str) -> bool:
    """Write 1 to path/cgroup.kill; False where the kernel has no such file
    (or the cgroup is gone)."""
    try:
        write_text(os.path.join(path, "cgroup.kill"), "1")
        return True
    except OSError:
        return False


def tree_pids(top: str) -> list[int]:
    """The processes in cgroup ``top`` and every cgroup below it, once each."""
    seen: list[int] = []
    have: set[int] = set()
    for dirpath, _dirs, _files in os.walk(top):
        try:
            with open(os.path.join(dirpath, "cgroup.procs")) as f:
                found = f.read().split()
        except FileNotFoundError:
            continue
        except OSError:
            # A threaded cgroup2 refuses cgroup.procs (EOPNOTSUPP): its
            # threads' ids signal their whole process all the same.
            try:
                with open(os.path.join(dirpath, "cgroup.threads")) as f:
                    found = f.read().split()
            except OSError:
                continue
        for x in found:
            pid = int(x)
            if pid not in have:
                have.add(pid)
                seen.append(pid)
    return seen


def _rmdir_tree(top: str) -> str | None:
    """rmdir top and its sub-cgroups, deepest first; the first directory
    still busy, or None when all are gone."""
    if not os.path.isdir(top):
        return None
    for dirpath, dirs, _files in os.walk(top, topdown=False):
        for d in dirs:
            try:
                os.rmdir(os.path.join(dirpath, d))
            except FileNotFoundError:
                pass
            except OSError:
                return os.path.join(dirpath, d)
    try:
        os.rmdir(top)
    except FileNotFoundError:
        pass
    except OSError:
        return top
    return None


def owned(paths: dict[str, str], created: Collection[str]) -> dict[str, str]:
    """The hierarchies of ``paths`` whose container directory pyoci made
    (it is in ``created``).  The others existed before the container (a
    ``linux.cgroupsPath`` naming a cgroup someone else made, perhaps holding
    their processes and sub-cgroups): what is in them is not the
    container's, so nothing there is ever killed, frozen or removed."""
    mine = set(created)
    return {k: p for k, p in paths.items() if p in mine}


def pids(paths: dict[str, str], *, created: Collection[str]) -> list[int]:
    """Every process of the container: those in its cgroup and in any
    cgroup below it (sub-cgroups it made), read from a hierarchy whose
    directory pyoci created (see owned; none: []).  Each process of the
    container is below its cgroup in every hierarchy, so one hierarchy is
    read: the first of those, always the same one (a process someone else
    moved into another hierarchy's directory alone is not the container's;
    runc too reads one hierarchy)."""
    for path in owned(paths, created).values():
        if os.path.isdir(path):
            return tree_pids(path)
    return []


def signal_all(paths: dict[str, str], sig: int, *, created: Collection[str]) -> list[int]:
    """`kill --all`: send sig to every process of the container (see pids);
    return the pids signalled (none: the container's processes are gone, or
    no directory of the container's cgroup is pyoci's).

    SIGKILL: ``cgroup.kill`` of the cgroup2 directory where the kernel has
    it (5.14+; v2, and the hybrid layout's cgroup2 mount) and pyoci created
    it, kills the whole subtree at once, as runc does; the pids listed get
    SIGKILL too (a process that is not in the cgroup2 directory), and the
    list is read again until it has no new pid, so a process forked
    meanwhile is not missed.  Other signals: each listed pid once."""
    paths = owned(paths, created)
    if sig == 9 and paths.get(""):
        _cgroup_kill(paths[""])
    done: set[int] = set()
    out: list[int] = []
    for _ in range(10 if sig == 9 else 1):
        new = [p for p in pids(paths, created=created) if p not in done]
        if not new:
            break
        for pid in new:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
            except PermissionError:
                raise PyociError(f"send signal {sig} to pid {pid} (in the container's cgroup)",
                                 op="kill", errno=1) from None
        done.update(new)
        out += new
    return out


def freezer_file(paths: dict[str, str]) -> str | None:
    if "freezer" in paths:
        return os.path.join(paths["freezer"], "freezer.state")
    if "" in paths and os.path.exists(os.path.join(paths[""], "cgroup.freeze")):
        return os.path.join(paths[""], "cgroup.freeze")
    return None


def is_v2(lay: Layout) -> bool:
    """A unified host: cgroup2 mounted and no v1 controller (a named v1
    hierarchy such as name=systemd controls nothing)."""
    return lay.unified is not None and all(c.startswith("name=") for c in lay.v1)
