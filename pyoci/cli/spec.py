"""pyoci spec: write a starting config.json (like `runc spec`)."""

from __future__ import annotations

import json
import os

from pyoci import SPEC_VERSION
from pyoci.cli.flags import Flag
from pyoci.errors import PyociError, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DESCRIPTION = """Write a starting config.json into the bundle directory (never over an
existing one). --rootless writes one for an unprivileged user: a user
namespace mapping the caller's uid and gid to 0, no network namespace, and
the host's /sys bound read-only all the way down."""
EXAMPLE = "pyoci spec --rootless --bundle /tmp/demo"
USAGE = "[--rootless] [--bundle DIR]"
FLAGS = [
    Flag("bundle", "str", aliases=("b",), default=".", help="write config.json into this directory"),
    Flag("rootless", help="a config for an unprivileged user (user namespace mapping you to root)"),
]

DEFAULT_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]


def default_spec(rootless: bool, uid: int, gid: int, args: list[str] | None = None,
                 terminal: bool = True) -> dict[str, Any]:
    mounts: list[dict[str, Any]] = [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
    ]
    namespaces = [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")]
    linux: dict[str, Any] = {
        "namespaces": namespaces,
        "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                        "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
                        "/proc/scsi"],
        "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
    }
    if rootless:
        namespaces[:] = [n for n in namespaces if n["type"] != "network"] + [{"type": "user"}]
        linux["uidMappings"] = [{"containerID": 0, "hostID": uid, "size": 1}]
        linux["gidMappings"] = [{"containerID": 0, "hostID": gid, "size": 1}]
        # A fresh sysfs needs a network namespace of our own: bind the host's,
        # read-only all the way down (`rro`): the mounts below it, the host's
        # cgroup hierarchies among them, would stay writable with `ro` alone
        # (CVE-2023-25809).  No `cgroup` mount: the host's /sys/fs/cgroup,
        # read-only, is what shows (a bind of the caller's own cgroups
        # cannot be made where pyoci itself runs in a container that shows
        # only its own).
        mounts[5] = {"destination": "/sys", "type": "none", "source": "/sys",
                     "options": ["rbind", "nosuid", "noexec", "nodev", "ro", "rro"]}
        mounts.pop(6)
        mounts[2]["options"].remove("gid=5")
    return {
        "ociVersion": SPEC_VERSION,
        "process": {
            "terminal": terminal,
            "user": {"uid": 0, "gid": 0},
            "args": args or ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {k: list(DEFAULT_CAPS) for k in ("bounding", "effective", "permitted")},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "pyoci",
        "mounts": mounts,
        "linux": linux,
    }


def run(g: Any, opts: dict[str, Any], pos: list[str]) -> int:
    if pos:
        raise UsageError(f"usage: pyoci spec {USAGE}")
    path = os.path.join(str(opts["bundle"]), "config.json")
    if os.path.exists(path):
        raise PyociError(f"{path} already exists", path=path, hint="remove it first")
    spec = default_spec(bool(opts["rootless"]), os.geteuid(), os.getegid())
    try:
        with open(path, "x") as f:
            json.dump(spec, f, indent=2)
            f.write("\n")
    except OSError as e:
        raise PyociError.from_os("write", e, path=path) from None
    return 0
