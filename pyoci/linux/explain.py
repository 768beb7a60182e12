"""Hints for errors whose cause lies outside the config: sysctls that forbid
user namespaces, filesystems that refuse subordinate ids, kernels or
filesystems without idmapped mounts.

Used only on error paths (pyoci.native.childerr.child_error), so it may read
/proc and mountinfo; nothing here runs when a container starts fine.  Each
function returns the hint text, or None when it has nothing to say.
"""

from __future__ import annotations

import os

from pyoci.linux import consts

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from pyoci.plan.build import Op, Plan

EPERM, ENOENT, EACCES, EINVAL, ENOSPC, ENOSYS, EUSERS = 1, 2, 13, 22, 28, 38, 87

DOCTOR = "run `pyoci doctor` for a full check"

# CLONE_NEW* flag -> (name in messages, its /proc/sys/user limit)
NAMESPACE_LIMITS: dict[int, tuple[str, str]] = {
    consts.CLONE_NEWNS: ("mount", "max_mnt_namespaces"),
    consts.CLONE_NEWCGROUP: ("cgroup", "max_cgroup_namespaces"),
    consts.CLONE_NEWUTS: ("uts", "max_uts_namespaces"),
    consts.CLONE_NEWIPC: ("ipc", "max_ipc_namespaces"),
    consts.CLONE_NEWUSER: ("user", "max_user_namespaces"),
    consts.CLONE_NEWPID: ("pid", "max_pid_namespaces"),
    consts.CLONE_NEWNET: ("network", "max_net_namespaces"),
    consts.CLONE_NEWTIME: ("time", "max_time_namespaces"),
}


def read_sysctl(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def unshare_user_hint(err: int, read: Callable[[str], str | None] = read_sysctl,
                      euid: int | None = None) -> str:
    """Why unshare(CLONE_NEWUSER) failed with ``err``: the sysctls that
    allow user namespaces, with their values here, and what to change."""
    if euid is None:
        euid = os.geteuid()
    facts: list[str] = []
    fixes: list[str] = []
    maxns = read("/proc/sys/user/max_user_namespaces")
    if maxns is not None:
        if maxns == "0":
            facts.append("user.max_user_namespaces is 0 in this user namespace "
                         "(/proc/sys/user/max_user_namespaces): no new user namespace may be created")
            fixes.append("as root (of this user namespace): sysctl -w user.max_user_namespaces=15000 "
                         "(and persist it in /etc/sysctl.d/)")
        elif err == ENOSPC:
            facts.append(f"user.max_user_namespaces is {maxns} here (/proc/sys/user/max_user_namespaces); "
                         "ENOSPC means that many exist already for this user, or the limit of an "
                         "enclosing user namespace is reached")
            fixes.append("raise it: sysctl -w user.max_user_namespaces=<more>, or end unused containers")
        else:
            facts.append(f"user.max_user_namespaces is {maxns} (/proc/sys/user/max_user_namespaces)")
    clone = read("/proc/sys/kernel/unprivileged_userns_clone")
    if clone is not None:
        if clone == "0" and euid != 0:
            facts.append("kernel.unprivileged_userns_clone is 0: only root may create user namespaces")
            fixes.append("as root: sysctl -w kernel.unprivileged_userns_clone=1 (and persist it in "
                         "/etc/sysctl.d/)")
        else:
            facts.append(f"kernel.unprivileged_userns_clone is {clone}")
    aa = read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns")
    if aa == "1":
        facts.append("AppArmor restricts unprivileged user namespaces "
                     "(kernel.apparmor_restrict_unprivileged_userns is 1)")
        fixes.append("as root: sysctl -w kernel.apparmor_restrict_unprivileged_userns=0, or give the "
                     "interpreter that runs pyoci an AppArmor profile that allows `userns,` (a file in "
                     "/etc/apparmor.d/, loaded with apparmor_parser -r)")
    if err == EUSERS:
        facts.append("user namespaces nest at most 32 deep, and this one would be deeper")
    if err == EPERM and not fixes:
        facts.append("no sysctl here forbids it: a seccomp filter, a chroot (unshare(CLONE_NEWUSER) "
                     "refuses a chrooted caller) or the sandbox or container pyoci runs in may")
    fixes.append(DOCTOR)
    return "; ".join(facts + fixes)


def unshare_hint(err: int, flags: int, read: Callable[[str], str | None] = read_sysctl) -> str | None:
    """Why unshare of the other namespaces failed: a /proc/sys/user limit
    of 0 (or, for ENOSPC, every limit of those namespaces)."""
    names = [(name, limit) for flag, (name, limit) in NAMESPACE_LIMITS.items()
             if flags & flag and flag != consts.CLONE_NEWUSER]
    zero = []
    shown = []
    for name, limit in names:
        value = read(f"/proc/sys/user/{limit}")
        if value is None:
            continue
        shown.append(f"user.{limit}={value}")
        if value == "0":
            zero.append(f"user.{limit} is 0: no new {name} namespace may be created "
                        f"(as root: sysctl -w user.{limit}=15000)")
    if zero:
        return "; ".join(zero)
    if err == ENOSPC and shown:
        return "a namespace limit is reached: " + ", ".join(shown) + "; " + DOCTOR
    return None


# -- filesystems ------------------------------------------------------------------------------


def _fs_of(path: str) -> tuple[str, str, str]:
    from pyoci.linux.doctor import fs_type

    return fs_type(path)


def refuses_ids(fstype: str) -> bool:
    """Network and FUSE filesystems: where subordinate ids (and often every
    id but the mounting user's) are refused."""
    from pyoci.linux.doctor import NETWORK_FS

    base = fstype.split(".")[0]
    return fstype in NETWORK_FS or base in ("nfs", "nfs4", "cifs", "smb3", "fuse", "fuseblk")


def storage_hint(paths: list[str], fs_of: Callable[[str], tuple[str, str, str]] = _fs_of) -> str | None:
    """For an EPERM/EACCES of a chown, mknod or mount in a user namespace:
    the first of ``paths`` on a network or FUSE filesystem, its type, and
    the fix (local storage, as `pyoci doctor`'s storage check says)."""
    from pyoci.linux.doctor import STORAGE_FIX

    for path in paths:
        fstype, src, point = fs_of(path)
        if not refuses_ids(fstype):
            continue
        fuse = ""
        if fstype.split(".")[0] in ("fuse", "fuseblk"):
            fuse = ("a FUSE mount made without -o allow_other refuses every user but the one that "
                    "mounted it (user_allow_other in /etc/fuse.conf lets users ask for it), and ")
        return (f"{path} is on {fstype} ({src} on {point}): {fuse}network and FUSE filesystems "
                "refuse files owned by the subordinate ids of a user namespace; "
                + STORAGE_FIX.format(user=_user_name()) + " (`pyoci doctor` checks this)")
    return None


def _user_name() -> str:
    import pwd

    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


def op_paths(op: Op, plan: Plan) -> list[str]:
    """Host paths an op touches: its bind source, and its target inside the
    rootfs.  They need not exist (nor be reachable: a FUSE mount may refuse
    us): the filesystem is found from mountinfo by path."""
    out = []
    if op.kind in ("mount", "bind_dev") and op.source and op.source.startswith("/"):
        out.append(op.source)
    if op.kind == "mount_host":
        out.append(op.target)
    elif op.kind in ("mount", "mknod", "bind_dev", "symlink", "mkdir", "chmod"):
        out.append(os.path.join(plan.rootfs, op.target.lstrip("/")))
    return out


# -- idmapped mounts --------------------------------------------------------------------------


def idmap_hint(op: Op, err: int, text: str, fs_of: Callable[[str], tuple[str, str, str]] = _fs_of,
               euid: int | None = None) -> str | None:
    """Why an idmapped mount failed: ``text`` is the child's detail
    ("open_tree ...", "mount_setattr(MOUNT_ATTR_IDMAP) ...", "move_mount ...")."""
    if euid is None:
        euid = os.geteuid()
    field = op.idmap.field if op.idmap is not None else "$.mounts"
    source = op.source or "?"
    fstype, src, point = fs_of(source) if source.startswith("/") else ("?", "?", "?")
    kernel = os.uname().release
    need = (f"idmapped mounts need Linux >= 5.12 (this is {kernel}) and a filesystem that supports "
            "them (ext4, xfs, btrfs, f2fs, vfat; overlayfs from 5.19, tmpfs from 6.3; not nfs, "
            "proc, sysfs or most FUSE filesystems)")
    if err == ENOSYS:
        return f"this kernel has no mount_setattr: {need}; drop {field}"
    where = f"{source} is on {fstype} ({src} on {point})"
    rootless = (f"{where}; an idmapped mount is made by cloning the source (CAP_SYS_ADMIN over "
                "the caller's mount namespace) and idmapping the clone (CAP_SYS_ADMIN in the user "
                "namespace that owns the filesystem: the initial one for a host filesystem), so "
                f"an unprivileged caller cannot idmap it: run as root, or drop {field}")
    if text.startswith("open_tree"):
        if err == ENOENT:
            return f"the source {source} does not exist on the host"
        if err == EPERM and euid != 0:
            return rootless
        return None
    if text.startswith("mount_setattr"):
        if err == EINVAL:
            return (f"the kernel refused to idmap {source} ({field}): {where}; {need}; "
                    "the mappings must also be valid (no overlaps)")
        if err == EPERM:
            if euid != 0:
                return f"the kernel refused to idmap {source} ({field}): {rootless}; {need}"
            return (f"the kernel refused to idmap {source} ({field}): {where}; idmapped mounts "
                    "need CAP_SYS_ADMIN in the user namespace that owns the filesystem (pyoci in "
                    f"a user namespace cannot idmap a host filesystem); {need}")
    return None
