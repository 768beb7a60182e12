"""config.json -> Plan.

Pure functions: the host facts the plan depends on come in a :class:`Host`
value, so the same config and host always give the same plan (golden files in
``spec-fixtures/plans/`` pin that).  The plan is what the C helper executes:
namespaces to join and create, id maps, a list of filesystem ops (each with a
human description, so an error from the child names the step), and the
process to run.
"""

from __future__ import annotations

import posixpath

from pyoci.errors import ConfigError
from pyoci.linux.consts import (  # noqa: F401 -- CLONE_NEW* also imported from here
    CLONE_NEWCGROUP,
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWTIME,
    CLONE_NEWUSER,
    CLONE_NEWUTS,
    MS_BIND,
    MS_NOATIME,
    MS_NODEV,
    MS_NODIRATIME,
    MS_NOEXEC,
    MS_NOSUID,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_RELATIME,
    MS_SHARED,
    MS_SLAVE,
    MS_STRICTATIME,
    MS_UNBINDABLE,
)
from pyoci.linux.names import (
    CAPABILITIES,
    IOPRIO_CLASS_SHIFT,
    IOPRIO_CLASSES,
    MPOL_FLAGS,
    MPOL_MODES,
    PERSONALITY_DOMAINS,
    PERSONALITY_FLAGS,
    RLIMITS,
    SCHED_FLAGS,
    SCHED_POLICIES,
)
from pyoci.plan.mountopts import parse_options
from pyoci.spec.checks import id_problem, sysctl_parts

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


NAMESPACE_FLAGS: dict[str, int] = {
    "user": CLONE_NEWUSER,
    "ipc": CLONE_NEWIPC,
    "uts": CLONE_NEWUTS,
    "network": CLONE_NEWNET,
    "pid": CLONE_NEWPID,
    "cgroup": CLONE_NEWCGROUP,
    "time": CLONE_NEWTIME,
    "mount": CLONE_NEWNS,
}
# Joining order: the user namespace first (it grants the rights to join the
# others), the mount namespace last (it changes what later paths mean).
JOIN_ORDER = list(NAMESPACE_FLAGS)

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# The devices every container gets (runtime-spec "Default Devices").
DEFAULT_DEVICES: list[tuple[str, int, int]] = [
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
]
DEV_SYMLINKS: list[tuple[str, str]] = [
    ("/proc/self/fd", "/dev/fd"),
    ("/proc/self/fd/0", "/dev/stdin"),
    ("/proc/self/fd/1", "/dev/stdout"),
    ("/proc/self/fd/2", "/dev/stderr"),
]

S_IFCHR = 0o020000
S_IFBLK = 0o060000
S_IFIFO = 0o010000


class Host:
    """What the plan needs to know about the caller and the machine."""

    __slots__ = ("euid", "egid", "init_userns", "no_pivot", "preserve_fds", "setgroups_denied",
                 "cgroup_binds")

    def __init__(self, euid: int, egid: int, init_userns: bool, no_pivot: bool = False,
                 preserve_fds: int = 0, setgroups_denied: bool | None = None,
                 cgroup_binds: list[tuple[str, str]] | None = None) -> None:
        self.euid = euid
        self.egid = egid
        # True when the caller is in the initial user namespace (uid_map is
        # the identity), False inside one (e.g. rootless Podman's).
        self.init_userns = init_userns
        self.no_pivot = no_pivot
        self.preserve_fds = preserve_fds
        # True when setgroups(2) is denied in the caller's user namespace (an
        # unprivileged user's, e.g. inside a rootless container): a user
        # namespace made there inherits the denial.  Read from
        # /proc/self/setgroups when not given (never in the initial one).
        if setgroups_denied is None:
            setgroups_denied = False if init_userns else _self_setgroups_denied()
        self.setgroups_denied = setgroups_denied
        # What a `cgroup` mount shows: (name under the mount point, host
        # directory of the container's cgroup in that hierarchy); one entry
        # named "" means a cgroup2-only host.  Empty: bind the host's tree.
        self.cgroup_binds = cgroup_binds or []


def _self_setgroups_denied() -> bool:
    try:
        with open("/proc/self/setgroups") as f:
            return f.read().strip() == "deny"
    except OSError:
        return False


class _Record:
    """Plain slotted records (dataclasses cost ~19 ms to import and build on
    the hot path); ``to_json`` feeds the golden-file tests."""

    __slots__: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {k: _jsonable(getattr(self, k)) for k in self.__slots__}

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.to_json() == other.to_json()  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.to_json()!r})"


def _jsonable(value: Any) -> Any:
    if isinstance(value, _Record):
        return value.to_json()
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


class Op(_Record):
    """One step of the filesystem program (helper.h PYOCI_OP_*)."""

    __slots__ = ("kind", "target", "describe", "source", "fstype", "data", "mflags", "remount",
                 "propagation", "flags", "mode", "major", "minor", "uid", "gid", "idmap")

    def __init__(self, kind: str, target: str, describe: str, *, source: str | None = None,
                 fstype: str | None = None, data: str | None = None, mflags: int = 0,
                 remount: int = 0, propagation: int = 0, flags: list[str] | None = None,
                 mode: int = 0, major: int = 0, minor: int = 0, uid: int = -1, gid: int = -1,
                 idmap: MountIdMap | None = None) -> None:
        self.kind = kind              # "mount", "mount_host", "mknod", ...
        self.target = target
        self.describe = describe      # names the step (and the config field) in errors
        self.source = source
        self.fstype = fstype
        self.data = data
        self.mflags = mflags
        self.remount = remount
        self.propagation = propagation
        self.flags = flags or []      # "mkdir", "mkfile", "mklike", "optional", ...
        self.mode = mode
        self.major = major
        self.minor = minor
        self.uid = uid
        self.gid = gid
        # An idmapped bind mount (flag "idmap"): the user namespace the
        # parent makes for it (native.spawn) and stage1 idmaps the clone with.
        self.idmap = idmap

    def to_json(self) -> dict[str, Any]:
        out = super().to_json()
        if self.idmap is None:
            del out["idmap"]      # most ops: keep the golden files as they were
        return out


class MountIdMap(_Record):
    """The user namespace of an idmapped mount: a new one holding
    ``uid_lines``/``gid_lines`` (a mount's uidMappings/gidMappings, or the
    container's for a bare "idmap" option), or an existing one at ``path``
    (the container's, joined by path).  ``field`` names the config field in
    errors."""

    __slots__ = ("uid_lines", "gid_lines", "path", "field")

    def __init__(self, uid_lines: list[tuple[int, int, int]], gid_lines: list[tuple[int, int, int]],
                 path: str | None, field: str) -> None:
        self.uid_lines = uid_lines
        self.gid_lines = gid_lines
        self.path = path
        self.field = field

    def key(self) -> tuple[Any, ...]:
        """Mounts with equal keys share one user namespace."""
        return (tuple(self.uid_lines), tuple(self.gid_lines), self.path)


class IdMap(_Record):
    __slots__ = ("uid_lines", "gid_lines", "setgroups")

    def __init__(self, uid_lines: list[tuple[int, int, int]], gid_lines: list[tuple[int, int, int]],
                 setgroups: str | None) -> None:
        self.uid_lines = uid_lines
        self.gid_lines = gid_lines
        # "deny" when the maps are written without privilege (the kernel
        # requires it for an unprivileged gid_map), None otherwise.
        self.setgroups = setgroups

    def uid_map(self) -> str:
        return "".join(f"{c} {h} {s}\n" for c, h, s in self.uid_lines)

    def gid_map(self) -> str:
        return "".join(f"{c} {h} {s}\n" for c, h, s in self.gid_lines)


class Scheduler(_Record):
    """process.scheduler as sched_setattr(2) takes it (numbers, not names)."""

    __slots__ = ("policy", "nice", "priority", "flags", "runtime", "deadline", "period")

    def __init__(self, policy: int, nice: int, priority: int, flags: int, runtime: int, deadline: int,
                 period: int) -> None:
        self.policy = policy
        self.nice = nice
        self.priority = priority
        self.flags = flags
        self.runtime = runtime
        self.deadline = deadline
        self.period = period


class MemoryPolicy(_Record):
    """linux.memoryPolicy as set_mempolicy(2) takes it: the mode ored with its
    MPOL_F_* flags, and the node numbers."""

    __slots__ = ("mode", "nodes")

    def __init__(self, mode: int, nodes: list[int]) -> None:
        self.mode = mode
        self.nodes = nodes


class ProcessPlan(_Record):
    __slots__ = ("args", "env", "cwd", "uid", "gid", "groups", "set_groups", "umask", "set_caps",
                 "caps", "no_new_privs", "rlimits", "oom_score_adj", "preserve_fds", "terminal",
                 "console_size", "seccomp", "io_priority", "scheduler", "personality", "memory_policy",
                 "notes")

    def __init__(self, *, args: list[str], env: list[str], cwd: str, uid: int, gid: int,
                 groups: list[int], set_groups: bool, umask: int, set_caps: bool,
                 caps: dict[str, int], no_new_privs: bool, rlimits: list[tuple[int, int, int]],
                 oom_score_adj: int | None, preserve_fds: int, terminal: bool,
                 console_size: tuple[int, int] = (0, 0), seccomp: dict[str, Any] | None = None,
                 io_priority: int | None = None, scheduler: Scheduler | None = None,
                 personality: int | None = None, memory_policy: MemoryPolicy | None = None,
                 notes: list[tuple[str, str]] | None = None) -> None:
        self.args = args
        self.env = env
        self.cwd = cwd
        self.uid = uid
        self.gid = gid
        self.groups = groups
        self.set_groups = set_groups
        self.umask = umask
        self.set_caps = set_caps
        self.caps = caps              # bounding/effective/permitted/inheritable/ambient -> bitmask
        self.no_new_privs = no_new_privs
        self.rlimits = rlimits
        self.oom_score_adj = oom_score_adj
        self.preserve_fds = preserve_fds
        self.terminal = terminal
        self.console_size = console_size  # (rows, columns), (0, 0) = leave
        self.seccomp = seccomp            # linux.seccomp, compiled by native.spawn
        # Set by the init (and by `exec`'s process) before execve, while it
        # still has every capability: process.ioPriority (class << 13 | level),
        # process.scheduler, linux.personality (the personality(2) argument),
        # linux.memoryPolicy.  None: leave as inherited.
        self.io_priority = io_priority
        self.scheduler = scheduler
        self.personality = personality
        self.memory_policy = memory_policy
        # ("warning" | "debug", message): what the config asks for that is
        # left out (unknown capabilities, ambient ones the kernel refuses);
        # whoever builds the plan reports them.
        self.notes = notes or []

    def to_json(self) -> dict[str, Any]:
        out = super().to_json()
        if not self.notes:
            del out["notes"]
        return out


class Plan(_Record):
    __slots__ = ("unshare_flags", "join", "idmap", "idmap_writer", "timens_offsets", "hostname",
                 "domainname", "rootfs", "ops", "process", "own_mount_ns", "join_fields")

    def __init__(self, *, unshare_flags: int, join: list[tuple[int, str]], idmap: IdMap | None,
                 idmap_writer: str, timens_offsets: str | None, hostname: str | None,
                 domainname: str | None, rootfs: str, ops: list[Op], process: ProcessPlan,
                 own_mount_ns: bool = True, join_fields: dict[str, str] | None = None) -> None:
        self.unshare_flags = unshare_flags
        self.join = join
        self.idmap = idmap
        # "direct" (the parent writes the maps) or "helper" (newuidmap and
        # newgidmap, for ranges an unprivileged caller may not write).
        self.idmap_writer = idmap_writer
        self.timens_offsets = timens_offsets
        self.hostname = hostname
        self.domainname = domainname
        self.rootfs = rootfs
        self.ops = ops
        self.process = process
        # False: mounts land in the caller's mount namespace; delete unmounts them.
        self.own_mount_ns = own_mount_ns
        self.join_fields = join_fields or {}   # namespace path -> its config field, for errors


def _ns_flag(ns_type: str, index: int) -> int:
    try:
        return NAMESPACE_FLAGS[ns_type]
    except KeyError:
        raise ConfigError(f"$.linux.namespaces[{index}].type",
                          f"unknown namespace type {ns_type!r}") from None


def _namespaces(cfg: dict[str, Any]) -> tuple[int, list[tuple[int, str]], bool, bool, dict[str, str]]:
    linux = cfg.get("linux") or {}
    create = 0
    join: dict[str, str] = {}
    fields: dict[str, str] = {}
    for i, ns in enumerate(linux.get("namespaces") or []):
        flag = _ns_flag(ns["type"], i)
        if ns.get("path"):
            join[ns["type"]] = ns["path"]
            fields[ns["path"]] = f"$.linux.namespaces[{i}].path"
        else:
            create |= flag
    # Without a mount namespace (allowed by the spec) the mounts happen in the
    # caller's namespace and the container is entered with chroot; `delete`
    # unmounts what was mounted under the rootfs.
    own_mntns = bool(create & CLONE_NEWNS) or "mount" in join
    ordered = [(NAMESPACE_FLAGS[t], join[t]) for t in JOIN_ORDER if t in join]
    user_joined = "user" in join
    return create, ordered, user_joined, own_mntns, fields


def _id_lines(entries: list[dict[str, int]]) -> list[tuple[int, int, int]]:
    return [(int(e["containerID"]), int(e["hostID"]), int(e["size"])) for e in entries]


def _idmap(cfg: dict[str, Any], host: Host) -> tuple[IdMap, str]:
    linux = cfg.get("linux") or {}
    uids = _id_lines(linux.get("uidMappings") or [])
    gids = _id_lines(linux.get("gidMappings") or [])
    if not uids:
        raise ConfigError("$.linux.uidMappings", "required with a new user namespace")
    if not gids:
        raise ConfigError("$.linux.gidMappings", "required with a new user namespace")
    if host.euid == 0:
        # Root (on the host, or inside Podman's user namespace) writes any map
        # its namespace holds.  Where setgroups is denied (root of a rootless
        # container: nested), the new namespace inherits that; say so.
        return IdMap(uids, gids, "deny" if host.setgroups_denied else None), "direct"
    own_uid = uids == [(uids[0][0], host.euid, 1)]
    own_gid = gids == [(gids[0][0], host.egid, 1)]
    if own_uid and own_gid:
        # The one map an unprivileged process may write itself; the kernel
        # requires setgroups to be denied first.
        return IdMap(uids, gids, "deny"), "direct"
    return IdMap(uids, gids, None), "helper"


def _bind_source(source: str, bundle: str) -> str:
    if posixpath.isabs(source):
        return source
    return posixpath.normpath(posixpath.join(bundle, source))


def _cgroup_ops(dest: str, where: str, flags: int, propagation: int,
                binds: list[tuple[str, str]]) -> list[Op]:
    """A `cgroup` mount shows the container's own cgroups, as runc does on
    v1: a tmpfs with one bind per hierarchy of the container's directory in
    it (symlinks for co-mounted controllers); a cgroup2-only host binds the
    container's directory itself.  The hybrid layout's empty cgroup2 is left
    out.  The binds wait for SYNC 2: the directories exist once placed."""
    per_mount = flags & ~(MS_BIND | MS_REC)
    ops = [Op("wait_placed", dest, "wait for the container's cgroups (SYNC 2)")]
    if len(binds) == 1 and binds[0][0] == "":
        ops.append(Op("mount", dest, f"bind the container's cgroup on {dest} ({where})",
                      source=binds[0][1], mflags=MS_BIND, remount=per_mount, flags=["mkdir"],
                      propagation=propagation))
        return ops
    ops.append(Op("mount", dest, f"mount tmpfs for the cgroup hierarchies on {dest} ({where})",
                  source="tmpfs", fstype="tmpfs", data="mode=755",
                  mflags=MS_NOSUID | MS_NODEV | MS_NOEXEC, flags=["mkdir"]))
    for name, host_dir in binds:
        target = f"{dest}/{name}"
        ops.append(Op("mount", target, f"bind the container's cgroup {host_dir} on {target} ({where})",
                      source=host_dir, mflags=MS_BIND, remount=per_mount, flags=["mkdir"]))
        if "," in name:
            for ctrl in name.split(","):
                ops.append(Op("symlink", f"{dest}/{ctrl}", f"symlink {dest}/{ctrl} -> {name}",
                              source=name))
    if per_mount & MS_RDONLY:
        ops.append(Op("remount", dest, f"remount {dest} read-only ({where})",
                      mflags=MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC))
    if propagation:
        ops.append(Op("propagation", dest, f"set the propagation of {dest} ({where})",
                      mflags=propagation))
    return ops


def _mount_ops(cfg: dict[str, Any], bundle: str, sysfs_fallback: bool,
               cgroup_binds: list[tuple[str, str]] | None = None) -> list[Op]:
    ops: list[Op] = []
    for i, m in enumerate(cfg.get("mounts") or []):
        dest = posixpath.normpath(m["destination"])
        fstype = m.get("type") or ""
        opts = parse_options(list(m.get("options") or []))
        if opts.unsupported:
            raise ConfigError(f"$.mounts[{i}].options",
                              f"unsupported mount option {opts.unsupported[0]!r}")
        source = m.get("source")
        where = f"$.mounts[{i}]"
        is_bind = fstype == "bind" or opts.is_bind
        idmap = _mount_idmap(cfg, m, opts.idmap, where, is_bind)
        if is_bind:
            if not source:
                raise ConfigError(f"{where}.source", "a bind mount needs a source")
            src = _bind_source(source, bundle)
            first = MS_BIND | (opts.flags & MS_REC)
            rest = opts.flags & ~(MS_BIND | MS_REC)
            flags = ["mklike"]
            if dest in ("/proc", "/sys"):
                flags.append("ordinary_dir")    # the host's /sys bound rootless: never through a symlink
            if opts.recursive_ro:
                flags.append("recursive_ro")
                rest |= MS_RDONLY
            what = "bind mount"
            if idmap is not None:
                flags.append("idmap")
                if opts.idmap == "ridmap":
                    flags.append("idmap_rec")
                what = "idmapped bind mount"
                where = idmap.field
            ops.append(Op("mount", dest, f"{what} {src} on {dest} ({where})", source=src,
                          mflags=first, remount=rest, flags=flags,
                          propagation=_one_propagation(opts.propagation), idmap=idmap))
        elif (fstype == "cgroup" or fstype == "cgroup2") and cgroup_binds:
            ops += _cgroup_ops(dest, where, opts.flags, _one_propagation(opts.propagation), cgroup_binds)
        elif fstype == "cgroup" or fstype == "cgroup2":
            # Without host facts (unit tests): the host's hierarchy, read-only
            # all the way down unless asked otherwise.
            ro = opts.flags & MS_RDONLY
            ops.append(Op("mount", dest, f"bind the host cgroup hierarchy on {dest} ({where})",
                          source="/sys/fs/cgroup", mflags=MS_BIND | MS_REC,
                          remount=(opts.flags & ~(MS_BIND | MS_REC)) | (MS_RDONLY if ro else 0),
                          flags=["mkdir", "recursive_ro"] if ro else ["mkdir"],
                          propagation=_one_propagation(opts.propagation)))
        else:
            data = ",".join(opts.data) or None
            flags = ["mkdir"]
            if fstype == "tmpfs" and not any(d.startswith("mode=") for d in opts.data):
                # An image's directory keeps its mode (runc); a new one is 1777.
                flags.append("keep_mode")
            if fstype in ("proc", "sysfs"):
                flags.append("ordinary_dir")    # never through an image's symlink
            if fstype == "sysfs" and sysfs_fallback:
                # A fresh sysfs needs a network namespace owned by our user
                # namespace; where the kernel refuses it (EPERM), stage2
                # binds the host's /sys instead (as runc does rootless).
                flags.append("sysfs_fallback")
            ops.append(Op("mount", dest, f"mount {fstype or 'none'} on {dest} ({where})",
                          source=source or fstype or "none", fstype=fstype or None, data=data,
                          mflags=opts.flags, flags=flags,
                          propagation=_one_propagation(opts.propagation)))
    return ops


# The per-mount flags a read-only remount keeps (MS_REMOUNT|MS_BIND sets them all).
_PER_MOUNT = (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME | MS_NODIRATIME |
              MS_RELATIME | MS_STRICTATIME)


def _defer_readonly(ops: list[Op]) -> list[Op]:
    """A read-only mount with later steps below it (a `ro` /dev tmpfs, then
    /dev/pts, /dev/shm and the device nodes) is mounted writable and made
    read-only once they are done (runc does the same for /dev): their mount
    points can be made.  Changes ``ops`` in place; returns the
    remounts to run at the end."""
    later: list[Op] = []
    # Every target, each after a NUL (which no target holds: refused before
    # the plan): "is any later target below T" is then one substring search
    # ("\0" + T + "/") from the op's own place on.
    targets = "".join("\0" + o.target for o in ops)
    at = 0
    for op in ops:
        at += 1 + len(op.target)     # (the end of this op's target in ``targets``)
        if op.kind != "mount" or op.idmap is not None or \
                "recursive_ro" in op.flags or "sysfs_fallback" in op.flags:
            continue
        bind = bool(op.mflags & MS_BIND)
        flags = op.remount if bind else op.mflags & _PER_MOUNT
        if not flags & MS_RDONLY:
            continue
        if targets.find("\0" + op.target.rstrip("/") + "/", at) < 0:
            continue
        if bind:
            op.remount &= ~MS_RDONLY
        else:
            op.mflags &= ~MS_RDONLY
        later.append(Op("remount", op.target,
                        f"remount {op.target} read-only after the mounts below it "
                        f"({op.describe.rsplit('(', 1)[-1].rstrip(')')})", mflags=flags))
    return later


def _mount_idmap(cfg: dict[str, Any], m: dict[str, Any], option: str | None, where: str,
                 is_bind: bool) -> MountIdMap | None:
    """The user namespace of an idmapped mount, or None.  As in runc: the
    mount's own uidMappings/gidMappings (an on-disk id containerID appears
    as hostID, as seen from the host), or with only an idmap/ridmap option
    the container's user namespace mappings."""
    uids = m.get("uidMappings") or []
    gids = m.get("gidMappings") or []
    if not uids and not gids and option is None:
        return None
    field = f"{where}.uidMappings" if uids or gids else f"{where}.options"
    if not is_bind:
        raise ConfigError(field, "idmapped mounts are supported for bind mounts only",
                          hint='add "bind" or "rbind" to the options, or drop the mappings')
    if uids or gids:
        if not uids or not gids:
            missing = f"{where}.uidMappings" if not uids else f"{where}.gidMappings"
            raise ConfigError(missing, "an idmapped mount needs both uidMappings and gidMappings")
        return MountIdMap(_id_lines(uids), _id_lines(gids), None, field)
    linux = cfg.get("linux") or {}
    for ns in linux.get("namespaces") or []:
        if ns.get("type") != "user":
            continue
        if ns.get("path"):
            return MountIdMap([], [], ns["path"], field)
        return MountIdMap(_id_lines(linux.get("uidMappings") or []),
                          _id_lines(linux.get("gidMappings") or []), None, field)
    raise ConfigError(field, f"{option} needs uidMappings and gidMappings on the mount or a user "
                      "namespace to take them from")


def _one_propagation(props: list[int]) -> int:
    return props[-1] if props else 0


def _device_ops(cfg: dict[str, Any], privileged: bool) -> list[Op]:
    linux = cfg.get("linux") or {}
    ops: list[Op] = []
    mounts = cfg.get("mounts") or []
    dev_is_bind = any(
        posixpath.normpath(m.get("destination", "")) == "/dev"
        and ("bind" in (m.get("options") or []) or "rbind" in (m.get("options") or [])
             or m.get("type") == "bind")
        for m in mounts)
    explicit = {posixpath.normpath(d["path"]) for d in linux.get("devices") or []}
    if not dev_is_bind:
        for path, major, minor in DEFAULT_DEVICES:
            if path in explicit:
                continue
            ops.append(_device_op(path, "c", major, minor, 0o666, 0, 0, privileged,
                                  f"create default device {path}"))
    for i, d in enumerate(linux.get("devices") or []):
        path = posixpath.normpath(d["path"])
        if path == "/dev/ptmx":
            # As runc: /dev/ptmx is always the link to the container's own
            # devpts (pts/ptmx); a node (or, rootless, the host's ptmx bound
            # there) would open another devpts instance, or none.
            continue
        mode = d.get("fileMode", 0o666)
        ops.append(_device_op(path, d["type"], int(d.get("major", 0)), int(d.get("minor", 0)), mode,
                              d.get("uid", 0), d.get("gid", 0), privileged,
                              f"create device {path} ($.linux.devices[{i}])"))
    if not dev_is_bind:
        for src, dst in DEV_SYMLINKS:
            ops.append(Op("symlink", dst, f"symlink {dst} -> {src}", source=src))
        ops.append(Op("symlink", "/dev/ptmx", "symlink /dev/ptmx -> pts/ptmx", source="pts/ptmx",
                      flags=["optional"]))
    return ops


def _device_op(path: str, dtype: str, major: int, minor: int, mode: int, uid: int, gid: int,
               privileged: bool, describe: str) -> Op:
    if not privileged:
        # Without CAP_MKNOD in the initial user namespace, bind the host's node.
        return Op("bind_dev", path, describe + " (bind from the host)", source=path)
    kind = {"c": S_IFCHR, "u": S_IFCHR, "b": S_IFBLK, "p": S_IFIFO}[dtype]
    return Op("mknod", path, describe, mode=kind | (mode & 0o7777), major=major, minor=minor,
              uid=uid, gid=gid)


def _rootfs_propagation(value: str | None) -> tuple[int, int]:
    """(flags for / before pivot, flags for / after pivot or 0)."""
    if value in ("private", "rprivate"):
        return MS_PRIVATE | MS_REC, 0
    if value in (None, "", "slave", "rslave"):
        return MS_SLAVE | MS_REC, 0
    after = {"shared": MS_SHARED, "rshared": MS_SHARED | MS_REC,
             "unbindable": MS_UNBINDABLE, "runbindable": MS_UNBINDABLE | MS_REC}
    if value not in after:
        raise ConfigError("$.linux.rootfsPropagation", f"unknown propagation {value!r}")
    return MS_SLAVE | MS_REC, after[value]


def _caps(process: dict[str, Any], notes: list[tuple[str, str]]) -> tuple[bool, dict[str, int]]:
    """The capability sets as bitmasks.  As runtime-spec 1.1+ asks (and runc
    and crun do), a name this runtime does not know (CAP_UNKNOWN from a newer
    kernel's engine) is a warning and is left out, not an error; and an
    ambient capability the kernel would refuse to raise because it is not in
    both the permitted and the inheritable set (`runc spec`'s default, and
    Buildah's: ambient set, inheritable empty) is left out with a debug line.
    ``notes`` gets ("warning" or "debug", message) for each."""
    caps = process.get("capabilities")
    sets = ("bounding", "effective", "permitted", "inheritable", "ambient")
    if caps is None:
        return False, {s: 0 for s in sets}
    masks: dict[str, int] = {}
    unknown: dict[str, str] = {}      # name -> where it first appears
    for s in sets:
        mask = 0
        for i, name in enumerate(caps.get(s) or []):
            if name not in CAPABILITIES:
                unknown.setdefault(name, f"$.process.capabilities.{s}[{i}]")
                continue
            mask |= 1 << CAPABILITIES[name]
        masks[s] = mask
    if unknown:
        # One line, as runc's "ignoring unknown or unavailable capabilities".
        items = []
        for name, where in unknown.items():
            hint = ""
            if "CAP_" + name.upper() in CAPABILITIES:
                hint = f", did you mean CAP_{name.upper()}?"
            items.append(f"{name!r} ({where}{hint})")
        notes.append(("warning", "ignoring unknown capabilities: " + ", ".join(items)))
    refused = masks["ambient"] & ~(masks["permitted"] & masks["inheritable"])
    if refused:
        names = [n for n, bit in sorted(CAPABILITIES.items(), key=lambda kv: kv[1]) if refused >> bit & 1]
        notes.append(("debug", f"not raising ambient capabilities {', '.join(names)} "
                               "($.process.capabilities.ambient): an ambient capability must also be "
                               "in the permitted and inheritable sets"))
        masks["ambient"] &= ~refused
    return True, masks


def _io_priority(p: dict[str, Any]) -> int | None:
    io = p.get("ioPriority")
    if not io:
        return None
    return IOPRIO_CLASSES[io["class"]] << IOPRIO_CLASS_SHIFT | int(io["priority"])


def _scheduler(p: dict[str, Any]) -> Scheduler | None:
    sched = p.get("scheduler")
    if not sched:
        return None
    flags = 0
    for name in sched.get("flags") or []:
        flags |= SCHED_FLAGS[name]
    return Scheduler(SCHED_POLICIES[sched["policy"]], int(sched.get("nice", 0)),
                     int(sched.get("priority", 0)), flags, int(sched.get("runtime", 0)),
                     int(sched.get("deadline", 0)), int(sched.get("period", 0)))


def _personality(linux: dict[str, Any]) -> int | None:
    pers = linux.get("personality")
    if not pers:
        return None
    value = PERSONALITY_DOMAINS[pers["domain"]]
    for name in pers.get("flags") or []:
        value |= PERSONALITY_FLAGS[name]
    return value


def _memory_policy(linux: dict[str, Any]) -> MemoryPolicy | None:
    from pyoci.spec.checks import parse_node_list

    mp = linux.get("memoryPolicy")
    if not mp:
        return None
    mode = MPOL_MODES[mp["mode"]]
    for name in mp.get("flags") or []:
        mode |= MPOL_FLAGS[name]
    return MemoryPolicy(mode, parse_node_list(mp["nodes"]) if mp.get("nodes") else [])


def _credentials(user: dict[str, Any], setgroups_denied: bool) -> tuple[int, int, list[int]]:
    """process.user's uid, gid and additionalGids, checked again here (every
    path to the helper, create and exec alike, passes this way): an id
    outside 0..2147483647 never reaches setresuid(2), where (uid_t)-1 would
    mean "unchanged" (root), and groups are never dropped silently where
    setgroups(2) is denied."""
    ids: dict[str, int] = {}
    for key in ("uid", "gid"):
        value = user.get(key, 0)
        problem = id_problem(value)
        if problem:
            raise ConfigError(f"$.process.user.{key}", problem)
        ids[key] = int(value)
    groups: list[int] = []
    for i, g in enumerate(user.get("additionalGids") or []):
        problem = id_problem(g)
        if problem:
            raise ConfigError(f"$.process.user.additionalGids[{i}]", problem)
        groups.append(int(g))
    if groups and setgroups_denied:
        raise ConfigError("$.process.user.additionalGids",
                          "cannot set any additional groups in a rootless container: setgroups is "
                          "denied in its user namespace (a single-id map written without privilege)",
                          hint="map a range of gids (linux.gidMappings through newgidmap, with "
                          "/etc/subgid) to set groups, or drop additionalGids")
    return ids["uid"], ids["gid"], groups


def _check_groups_mapped(cfg: dict[str, Any], idmap: IdMap) -> None:
    """setgroups(2) fails (EINVAL) for a gid the new user namespace does not map."""
    user = (cfg.get("process") or {}).get("user") or {}
    for i, g in enumerate(user.get("additionalGids") or []):
        if isinstance(g, int) and not any(c <= g < c + n for c, _h, n in idmap.gid_lines):
            raise ConfigError(f"$.process.user.additionalGids[{i}]",
                              f"gid {g} is not mapped in the container's user namespace "
                              "(linux.gidMappings)")


def _process(cfg: dict[str, Any], host: Host, setgroups_denied: bool) -> ProcessPlan:
    p = cfg.get("process") or {}
    linux = cfg.get("linux") or {}
    user = p.get("user") or {}
    rlimits = []
    for i, r in enumerate(p.get("rlimits") or []):
        if r["type"] not in RLIMITS:
            raise ConfigError(f"$.process.rlimits[{i}].type", f"unknown rlimit {r['type']!r}")
        rlimits.append((RLIMITS[r["type"]], int(r["soft"]), int(r["hard"])))
    notes: list[tuple[str, str]] = []
    set_caps, caps = _caps(p, notes)
    umask = user.get("umask")
    uid, gid, groups = _credentials(user, setgroups_denied)
    return ProcessPlan(
        args=list(p.get("args") or []),
        env=list(p.get("env") or []),
        cwd=p.get("cwd") or "/",
        uid=uid,
        gid=gid,
        groups=groups,
        set_groups=not setgroups_denied,
        umask=-1 if umask is None else int(umask),
        set_caps=set_caps,
        caps=caps,
        no_new_privs=bool(p.get("noNewPrivileges")),
        rlimits=rlimits,
        oom_score_adj=p.get("oomScoreAdj"),
        preserve_fds=host.preserve_fds,
        terminal=bool(p.get("terminal")),
        console_size=(int((p.get("consoleSize") or {}).get("height", 0)),
                      int((p.get("consoleSize") or {}).get("width", 0))),
        seccomp=linux.get("seccomp"),
        io_priority=_io_priority(p),
        scheduler=_scheduler(p),
        personality=_personality(linux),
        memory_policy=_memory_policy(linux),
        notes=notes,
    )


def _preopen_bind_sources(ops: list[Op], rootfs: str, propagation: int) -> None:
    """With a new user namespace made by the host's root, bind sources are
    cloned before the namespace exists (flag "preopen"), as runc opens them:
    a source the container's root cannot reach (below a mode 000 directory)
    still mounts.  Not a source inside the rootfs: that one is resolved when
    its turn comes, so it sees what earlier mounts put there (config order).
    The clone keeps the host mount's peer group: it gets the propagation the
    rootfs tree got (slave or private) unless the mount asks for its own."""
    root = posixpath.normpath(rootfs)
    for op in ops:
        if op.kind != "mount" or "mklike" not in op.flags or "idmap" in op.flags or not op.source:
            continue
        src = posixpath.normpath(op.source)
        if src == root or src.startswith(root.rstrip("/") + "/"):
            continue
        op.flags.append("preopen")
        if not op.propagation:
            op.propagation = propagation


def build_plan(cfg: dict[str, Any], bundle: str, rootfs: str, host: Host) -> Plan:
    """Turn a validated config into the plan the C helper runs."""
    linux = cfg.get("linux") or {}
    create, join, user_joined, own_mntns, join_fields = _namespaces(cfg)
    idmap: IdMap | None = None
    writer = "direct"
    if create & CLONE_NEWUSER:
        idmap, writer = _idmap(cfg, host)
        _check_groups_mapped(cfg, idmap)
    userns = bool(create & CLONE_NEWUSER) or user_joined
    # mknod needs CAP_MKNOD in the initial user namespace.
    privileged = host.euid == 0 and host.init_userns and not userns

    timens = None
    offsets = linux.get("timeOffsets") or {}
    if offsets:
        if not create & CLONE_NEWTIME:
            raise ConfigError("$.linux.timeOffsets", "needs a new time namespace")
        clocks = {"monotonic": "monotonic", "boottime": "boottime"}
        timens = "".join(f"{clocks[k]} {int(v.get('secs', 0))} {int(v.get('nanosecs', 0))}\n"
                         for k, v in sorted(offsets.items()))

    before, after = _rootfs_propagation(linux.get("rootfsPropagation"))
    ops: list[Op] = []
    if own_mntns:
        ops.append(Op("propagation", "/", "make / a private or slave mount tree", mflags=before,
                      flags=["host_target"]))
    ops.append(Op("mount_host", rootfs, f"bind the rootfs {rootfs} on itself", source=rootfs,
                  mflags=MS_BIND | MS_REC))
    mounts = _mount_ops(cfg, bundle, userns or not host.init_userns, host.cgroup_binds)
    if create & CLONE_NEWUSER and own_mntns and host.euid == 0 and host.init_userns:
        _preopen_bind_sources(mounts, rootfs, before)
    for op in mounts:
        if "idmap" in op.flags and not op.propagation and own_mntns:
            op.propagation = before   # an idmapped clone, too, leaves the host's peer group
    mounts += _device_ops(cfg, privileged)
    # Before pivot_root: the remount goes through /proc/self/fd of the host's
    # procfs (the container's /proc need not be procfs).
    ops += mounts + _defer_readonly(mounts)
    ops.append(Op("hooks_sync", "/", "run createRuntime and createContainer hooks"))
    if not own_mntns:
        ops.append(Op("pivot", "/", "chroot into the rootfs (no mount namespace)", flags=["chroot"]))
    elif host.no_pivot:
        ops.append(Op("pivot", "/", "move the rootfs to / and chroot", flags=["no_pivot"]))
    else:
        ops.append(Op("pivot", "/", "pivot_root into the rootfs"))
    cwd = posixpath.normpath((cfg.get("process") or {}).get("cwd") or "/")
    if cwd != "/":
        # A missing working directory is made, as runc and crun do: inside
        # the new root (resolved there, never through it), owned by the
        # container's root, 0755, before the rootfs may become read-only.
        # Best effort: what cannot be made (a /proc magic link, a file on
        # the way) is then refused by the chdir, with its own checks.
        ops.append(Op("mkdir", cwd, f"create the working directory {cwd} ($.process.cwd)", mode=0o755,
                      flags=["optional"]))
    for key, value in sorted((linux.get("sysctl") or {}).items()):
        try:
            path = "/proc/sys/" + "/".join(sysctl_parts(key))
        except ValueError as e:
            raise ConfigError("$.linux.sysctl", f"sysctl {key!r} names no file under /proc/sys: {e}"
                              ) from None
        ops.append(Op("write_file", path, f"set sysctl {key} ($.linux.sysctl)", data=str(value)))
    for i, path in enumerate(linux.get("readonlyPaths") or []):
        ops.append(Op("readonly", posixpath.normpath(path),
                      f"make {path} read-only ($.linux.readonlyPaths[{i}])", flags=["optional"]))
    for i, path in enumerate(linux.get("maskedPaths") or []):
        ops.append(Op("mask", posixpath.normpath(path), f"mask {path} ($.linux.maskedPaths[{i}])",
                      flags=["optional"]))
    if (cfg.get("root") or {}).get("readonly"):
        ops.append(Op("remount", "/", "remount the rootfs read-only ($.root.readonly)",
                      mflags=MS_RDONLY, flags=["host_target"]))
    if after and own_mntns:
        ops.append(Op("propagation", "/", "set the rootfs propagation ($.linux.rootfsPropagation)",
                      mflags=after, flags=["host_target"]))

    setgroups_denied = idmap is not None and idmap.setgroups == "deny"
    hostname = cfg.get("hostname") or None
    domainname = cfg.get("domainname") or None
    return Plan(
        unshare_flags=create,
        join=join,
        idmap=idmap,
        idmap_writer=writer,
        timens_offsets=timens,
        hostname=hostname,
        domainname=domainname,
        rootfs=rootfs,
        ops=ops,
        process=_process(cfg, host, setgroups_denied),
        own_mount_ns=own_mntns,
        join_fields=join_fields,
    )


# Flags used by other modules when building extra ops.
READONLY_REMOUNT = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC


def build_exec_plan(process: dict[str, Any], join: list[tuple[int, str]], chroot: str | None,
                    host: Host, setgroups_denied: bool, seccomp: dict[str, Any] | None = None,
                    personality: dict[str, Any] | None = None,
                    memory_policy: dict[str, Any] | None = None) -> Plan:
    """The plan of `exec`: join the container's namespaces (and, for a
    container without a mount namespace of its own, chroot into its root),
    then set up and exec the process; no filesystem program.  The
    container's seccomp filter, personality and memory policy (recorded at
    create) apply to it as to the init."""
    ops: list[Op] = []
    if chroot:
        ops.append(Op("pivot", "/", f"chroot into {chroot}", flags=["chroot"]))
    return Plan(unshare_flags=0, join=join, idmap=None, idmap_writer="direct", timens_offsets=None,
                hostname=None, domainname=None, rootfs=chroot or "/", ops=ops,
                process=_process({"process": process,
                                  "linux": {"seccomp": seccomp, "personality": personality,
                                            "memoryPolicy": memory_policy}},
                                 host, setgroups_denied),
                own_mount_ns=chroot is None)
