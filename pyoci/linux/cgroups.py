"""cgroups: placement, a first set of limits, freezing and cleanup.

Layouts: v1 (one hierarchy per controller), v2 (unified), and hybrid (v1
controllers plus a cgroup2 mount at /sys/fs/cgroup/unified, as on this
project's CI machines).  The layout is read from /proc/self/mountinfo each
time; nothing is assumed.

A container's cgroup is ``linux.cgroupsPath`` (absolute, or relative to the
runtime's own cgroup as runc does) or, without one, ``/pyoci/<id>`` relative
to the runtime's cgroup.  Only directories this module created are recorded
and removed at delete; a cgroup the container was moved into by someone else
is never touched.
"""

from __future__ import annotations

import os

from pyoci.errors import PyociError
from pyoci.linux.proc import write_text

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
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


class Prewarm:
    """Start the cgroup attach lock's slow path early, off the critical path.

    The first migration into a cgroup after an idle moment waits for an RCU
    grace period (the kernel's cgroup_threadgroup_rwsem switching to its
    writer mode): 9-19 ms on this project's machines, most of `run`'s cost
    beyond the interpreter.  A thread moves this process into the cgroup it
    already is in (a no-op that takes the same lock) while the main thread
    parses the config; the container's own migration then finds the lock's
    fast path.  ``wait()`` must be called before forking the container."""

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        import _thread

        self._lock = _thread.allocate_lock()
        self._lock.acquire()
        _thread.start_new_thread(self._run, ())

    def _run(self) -> None:
        try:
            own = own_cgroups()
            for ctrl in ("pids", "freezer", "devices"):
                if ctrl in own:
                    write_text(f"/sys/fs/cgroup/{ctrl}{own[ctrl]}/cgroup.procs", str(os.getpid()))
                    break
            else:   # a v2 host (the lock is the same)
                write_text(f"/sys/fs/cgroup{own.get('', '/')}/cgroup.procs".replace("//", "/"),
                           str(os.getpid()))
        except OSError:
            pass
        finally:
            self._lock.release()

    def wait(self) -> None:
        import _thread
        import time

        self._lock.acquire()
        self._lock.release()
        # The thread must be gone, not just done: the container's first stage
        # is forked with a raw clone, which copies no other thread's state.
        while _thread._count():
            time.sleep(0.0001)


_prewarm: Prewarm | None = None


def start_prewarm() -> Prewarm:
    """Start the Prewarm once per process (the CLI does it first thing for
    create and run, before importing the rest)."""
    global _prewarm
    if _prewarm is None:
        _prewarm = Prewarm()
    return _prewarm


def start_prewarm_if_root() -> None:
    """For the launcher: as early as possible in `create` and `run`."""
    if os.geteuid() == 0:
        start_prewarm()


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
    rel = cgroups_path or f"pyoci/{cid}"
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


def _write(path: str, value: str, field: str | None = None) -> None:
    try:
        write_text(path, value)
    except OSError as e:
        what = f"write {value!r} to {path}" + (f" ({field})" if field else "")
        raise PyociError(what, op="write", path=path, field=field, errno=e.errno) from None


def place(pid: int, paths: dict[str, str], required: bool,
          configure: Callable[[], None] | None = None) -> list[str]:
    """Create the cgroups (recording which we made) and move pid into them.

    With ``required`` False (rootless without a delegated tree), an
    unwritable hierarchy is skipped; the caller reports what that costs."""
    created: list[str] = []
    for ctrl, path in paths.items():
        parts = path.split("/")
        for i in range(3, len(parts) + 1):
            d = "/".join(parts[:i])
            if not os.path.isdir(d):
                try:
                    os.mkdir(d, 0o755)
                    created.append(d)
                except FileExistsError:
                    pass
                except OSError as e:
                    if not required:
                        break
                    raise PyociError(f"create cgroup {d}", op="mkdir", path=d, errno=e.errno) from None
        if ctrl == "cpuset" and os.path.isdir(path):
            _inherit_cpuset(path)
    # Limits and device rules are complete before the process joins: the
    # container's init creates its device nodes while we place it.
    if configure is not None:
        try:
            configure()
        except BaseException:
            remove(created)
            raise
    for ctrl, path in paths.items():
        if not os.path.isdir(path):
            continue
        try:
            _write(os.path.join(path, "cgroup.procs"), str(pid))
        except PyociError:
            # The cgroup2 directory is required where it is the only
            # hierarchy or where it carries the device filter (no v1 devices).
            if required and (ctrl != "" or "devices" not in paths):
                remove(created)
                raise
    return created


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
            _write(mine, value)
        except OSError:
            pass


# (resources field path, v1 controller, v1 file, v2 file, converter)
_V1_FILES: list[tuple[tuple[str, ...], str, str]] = [
    (("pids", "limit"), "pids", "pids.max"),
    (("memory", "limit"), "memory", "memory.limit_in_bytes"),
    (("memory", "reservation"), "memory", "memory.soft_limit_in_bytes"),
    (("memory", "swap"), "memory", "memory.memsw.limit_in_bytes"),
    (("memory", "swappiness"), "memory", "memory.swappiness"),
    (("memory", "disableOOMKiller"), "memory", "memory.oom_control"),
    (("cpu", "shares"), "cpu", "cpu.shares"),
    (("cpu", "realtimeRuntime"), "cpu", "cpu.rt_runtime_us"),
    (("cpu", "realtimePeriod"), "cpu", "cpu.rt_period_us"),
    (("cpu", "period"), "cpu", "cpu.cfs_period_us"),
    (("cpu", "quota"), "cpu", "cpu.cfs_quota_us"),
    (("cpu", "cpus"), "cpuset", "cpuset.cpus"),
    (("cpu", "mems"), "cpuset", "cpuset.mems"),
    (("blockIO", "weight"), "blkio", "blkio.weight"),
]


def _v1_value(key: tuple[str, ...], value: Any) -> str:
    if key == ("pids", "limit") and int(value) <= 0:
        return "max"
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


# Devices every container needs, allowed after the config's rules (as runc
# does): the default nodes, /dev/console, /dev/ptmx and the pty slaves.
DEFAULT_ALLOWED = ["c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm", "c 5:0 rwm",
                   "c 5:1 rwm", "c 5:2 rwm", "c 136:* rwm"]


# Fields of linux.resources pyoci applies (the rest is refused, never ignored).
SUPPORTED: frozenset[tuple[str, ...]] = frozenset(k for k, _c, _f in _V1_FILES) | {("devices",)}
# Accepted without effect: kernel memory limits cannot be set on Linux >= 6
# (runc ignores them too), and useHierarchy is always on in cgroup v1 now.
IGNORED: frozenset[tuple[str, ...]] = frozenset({("memory", "kernel"), ("memory", "kernelTCP"),
                                                 ("memory", "useHierarchy"),
                                                 ("memory", "checkBeforeUpdate")})


def unsupported(resources: dict[str, Any]) -> list[str]:
    """JSON paths of the set fields in linux.resources pyoci cannot apply."""
    out = []
    for section, value in resources.items():
        if value in (None, {}, []):
            continue
        if isinstance(value, dict) and section != "unified":
            for key, v in value.items():
                if v is None or (section, key) in SUPPORTED or (section, key) in IGNORED:
                    continue
                out.append(f"$.linux.resources.{section}.{key}")
        elif (section,) not in SUPPORTED:
            out.append(f"$.linux.resources.{section}")
    return out


def check_supported(resources: dict[str, Any]) -> None:
    bad = unsupported(resources)
    if bad:
        raise PyociError(f"{bad[0]}: pyoci cannot apply this resource limit yet"
                         + (f" (nor {', '.join(bad[1:])})" if len(bad) > 1 else ""),
                         field=bad[0], hint="remove the field; supported: " + ", ".join(
                             sorted(".".join(k) for k in SUPPORTED)))


def apply(resources: dict[str, Any], paths: dict[str, str], lay: Layout,
          nodes: list[dict[str, Any]] | None = None) -> None:
    """Write the limits we know to the v1 hierarchies; a field the host
    cannot apply is an error naming the field and the missing file."""
    if not resources:
        return
    check_supported(resources)
    for key, ctrl, fname in _V1_FILES:
        value: Any = resources
        for k in key:
            value = value.get(k) if isinstance(value, dict) else None
        if value is None:
            continue
        field = "$.linux.resources." + ".".join(key)
        if ctrl not in paths:
            raise PyociError(f"{field}: the {ctrl} cgroup controller is not mounted", field=field)
        _write(os.path.join(paths[ctrl], fname), _v1_value(key, value), field)
    devices = resources.get("devices")
    if devices and "devices" in paths:
        for i, rule in enumerate(devices):
            kind = rule.get("type", "a")
            major = "*" if rule.get("major") is None else str(rule["major"])
            minor = "*" if rule.get("minor") is None else str(rule["minor"])
            line = "a" if kind == "a" else f"{kind} {major}:{minor} {rule.get('access', 'rwm')}"
            f = "devices.allow" if rule.get("allow") else "devices.deny"
            _write(os.path.join(paths["devices"], f), line, f"$.linux.resources.devices[{i}]")
        allow = os.path.join(paths["devices"], "devices.allow")
        for line in DEFAULT_ALLOWED:
            _write(allow, line)
        # linux.devices nodes must be creatable; access stays as the rules say.
        for d in nodes or []:
            if d.get("type") == "p":
                continue        # a FIFO is no device: the devices cgroup does not govern it
            kind = "c" if d.get("type") == "u" else d.get("type", "c")
            _write(allow, f"{kind} {d.get('major', 0)}:{d.get('minor', 0)} m")


def remove(created: list[str]) -> None:
    """rmdir what we created, deepest first; retry briefly while the last
    processes leave."""
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


def pids(paths: dict[str, str]) -> list[int]:
    for path in paths.values():
        try:
            with open(os.path.join(path, "cgroup.procs")) as f:
                return [int(x) for x in f.read().split()]
        except OSError:
            continue
    return []


def freezer_file(paths: dict[str, str]) -> str | None:
    if "freezer" in paths:
        return os.path.join(paths["freezer"], "freezer.state")
    if "" in paths and os.path.exists(os.path.join(paths[""], "cgroup.freeze")):
        return os.path.join(paths[""], "cgroup.freeze")
    return None


def freeze(path: str, frozen: bool) -> None:
    import time

    if path.endswith("freezer.state"):
        _write(path, "FROZEN" if frozen else "THAWED")
        want = "FROZEN" if frozen else "THAWED"
        for _ in range(500):
            with open(path) as f:
                if f.read().strip() == want:
                    return
            time.sleep(0.002)
        raise PyociError(f"{path} did not become {want}")
    from pyoci.linux import cgroup_v2

    cgroup_v2.freeze(path, frozen)


# -- dispatch by layout: v2 lives in pyoci/linux/cgroup_v2.py (devices: bpfdev.py) ------------
#
# v1 and hybrid: the v1 controllers, as above.  A hybrid host without a v1
# devices controller gets the device rules as an eBPF program on the cgroup2
# directory (the kernel enforces those alongside v1); with one, v1 alone, as
# runc does.  A unified (v2) host: cgroup_v2 for every field.


def is_v2(lay: Layout) -> bool:
    return lay.unified is not None and all(c.startswith("name=") for c in lay.v1)


def delegated(lay: Layout, paths: dict[str, str]) -> bool:
    """An unprivileged caller with a writable (delegated) cgroup v2 subtree."""
    if not is_v2(lay):
        return False
    from pyoci.linux import cgroup_v2

    return cgroup_v2.delegated(lay, paths)


def delegated_paths(lay: Layout, cgroups_path: str | None, cid: str,
                    paths: dict[str, str]) -> dict[str, str] | None:
    """For an unprivileged caller on a v2 host: the container's cgroup in the
    subtree delegated to it, or None.  ``paths`` (beside the caller's own
    cgroup, as for root) when that is writable; else, for a relative path,
    the same path below the caller's own cgroup when only that is writable
    (placement and freezing work there; controllers cannot be enabled below
    a cgroup that holds processes, so limits fail naming the reason)."""
    if delegated(lay, paths):
        return paths
    rel = cgroups_path or f"pyoci/{cid}"
    if not lay.unified or not is_v2(lay) or rel.startswith("/") or ":" in rel:
        return None
    below = {"": lay.unified + _join(own_cgroups().get("", "/"), rel)}
    return below if delegated(lay, below) else None


def check_resources(resources: dict[str, Any], lay: Layout) -> None:
    """Before anything exists: refuse what this layout cannot apply."""
    if is_v2(lay):
        from pyoci.linux import cgroup_v2

        cgroup_v2.check(resources)
    else:
        check_supported(resources)


def apply_resources(resources: dict[str, Any], paths: dict[str, str], lay: Layout,
                    nodes: list[dict[str, Any]] | None = None, rootless: bool = False) -> None:
    if is_v2(lay):
        from pyoci.linux import cgroup_v2

        if "" in paths and lay.unified:
            cgroup_v2.apply(resources, paths[""], lay.unified, nodes, rootless=rootless)
        return
    apply(resources, paths, lay, nodes)
    if resources.get("devices") and "devices" not in paths and paths.get("") and not rootless:
        from pyoci.linux import bpfdev

        bpfdev.apply(paths[""], resources["devices"], nodes)
