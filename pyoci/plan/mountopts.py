"""Mount options (config.json ``mounts[].options``) to mount(2) flags.

Pure data and one pure function; no I/O.
"""

from __future__ import annotations

from pyoci.linux.consts import (
    MS_BIND,
    MS_DIRSYNC,
    MS_LAZYTIME,
    MS_MANDLOCK,
    MS_NOATIME,
    MS_NODEV,
    MS_NODIRATIME,
    MS_NOEXEC,
    MS_NOSUID,
    MS_NOSYMFOLLOW,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_RELATIME,
    MS_REMOUNT,
    MS_SHARED,
    MS_SILENT,
    MS_SLAVE,
    MS_STRICTATIME,
    MS_SYNCHRONOUS,
    MS_UNBINDABLE,
)

# option -> (flags to clear, flags to set)
FLAG_OPTIONS: dict[str, tuple[int, int]] = {
    "ro": (0, MS_RDONLY),
    "rw": (MS_RDONLY, 0),
    "nosuid": (0, MS_NOSUID),
    "suid": (MS_NOSUID, 0),
    "nodev": (0, MS_NODEV),
    "dev": (MS_NODEV, 0),
    "noexec": (0, MS_NOEXEC),
    "exec": (MS_NOEXEC, 0),
    "sync": (0, MS_SYNCHRONOUS),
    "async": (MS_SYNCHRONOUS, 0),
    "dirsync": (0, MS_DIRSYNC),
    "remount": (0, MS_REMOUNT),
    "mand": (0, MS_MANDLOCK),
    "nomand": (MS_MANDLOCK, 0),
    "atime": (MS_NOATIME, 0),
    "noatime": (0, MS_NOATIME),
    "diratime": (MS_NODIRATIME, 0),
    "nodiratime": (0, MS_NODIRATIME),
    "relatime": (0, MS_RELATIME),
    "norelatime": (MS_RELATIME, 0),
    "strictatime": (0, MS_STRICTATIME),
    "nostrictatime": (MS_STRICTATIME, 0),
    "lazytime": (0, MS_LAZYTIME),
    "nolazytime": (MS_LAZYTIME, 0),
    "symfollow": (MS_NOSYMFOLLOW, 0),
    "nosymfollow": (0, MS_NOSYMFOLLOW),
    "silent": (0, MS_SILENT),
    "loud": (MS_SILENT, 0),
    "defaults": (0, 0),
    "bind": (0, MS_BIND),
    "rbind": (0, MS_BIND | MS_REC),
}

PROPAGATION_OPTIONS: dict[str, int] = {
    "private": MS_PRIVATE,
    "rprivate": MS_PRIVATE | MS_REC,
    "shared": MS_SHARED,
    "rshared": MS_SHARED | MS_REC,
    "slave": MS_SLAVE,
    "rslave": MS_SLAVE | MS_REC,
    "unbindable": MS_UNBINDABLE,
    "runbindable": MS_UNBINDABLE | MS_REC,
}

# Options engines pass that are not for the kernel.  tmpcopyup (Podman) and
# SELinux relabel flags are accepted and have no effect here.
IGNORED_OPTIONS = frozenset({"tmpcopyup", "z", "Z", "notmpcopyup", "copy", "nocopy"})


# Idmapped mounts (runtime-spec 1.1): "idmap" idmaps the mount itself,
# "ridmap" every mount of a recursive bind too.
IDMAP_OPTIONS = frozenset({"idmap", "ridmap"})


class MountOptions:
    __slots__ = ("flags", "propagation", "data", "unsupported", "idmap", "recursive_ro")

    def __init__(self) -> None:
        self.flags = 0
        self.propagation: list[int] = []
        self.data: list[str] = []
        self.unsupported: list[str] = []
        self.recursive_ro = False      # `rro`: every submount read-only too
        self.idmap: str | None = None   # "idmap", "ridmap" or None

    @property
    def is_bind(self) -> bool:
        return bool(self.flags & MS_BIND)

    @property
    def recursive(self) -> bool:
        return bool(self.flags & MS_REC)


# Recursive mount attributes (mount_setattr) come later.
UNSUPPORTED_OPTIONS = frozenset({"rrw", "rnosuid", "rsuid", "rnodev", "rdev", "rnoexec", "rexec",
                                 "rnoatime", "ratime", "rrelatime", "rnorelatime", "rstrictatime",
                                 "rnostrictatime", "rnosymfollow", "rsymfollow", "rnodiratime",
                                 "rdiratime"})


def parse_options(options: list[str]) -> MountOptions:
    parsed = MountOptions()
    for opt in options:
        if opt in FLAG_OPTIONS:
            clear, setf = FLAG_OPTIONS[opt]
            parsed.flags = (parsed.flags & ~clear) | setf
        elif opt in PROPAGATION_OPTIONS:
            parsed.propagation.append(PROPAGATION_OPTIONS[opt])
        elif opt == "rro":
            parsed.recursive_ro = True
        elif opt in IGNORED_OPTIONS:
            continue
        elif opt in IDMAP_OPTIONS:
            # ridmap wins over idmap, whatever the order (as in runc).
            if parsed.idmap != "ridmap":
                parsed.idmap = opt
        elif opt in UNSUPPORTED_OPTIONS:
            parsed.unsupported.append(opt)
        else:
            parsed.data.append(opt)
    return parsed
