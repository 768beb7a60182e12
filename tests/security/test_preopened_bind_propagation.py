"""Bind sources cloned before the user namespace exists (issue 15, item 12:
sources only the host's root can reach still mount, as runc opens them
early) and idmapped clones.

A clone made by open_tree(OPEN_TREE_CLONE) of a host mount that is shared
stays in the host mount's peer group, wherever it is moved.  The naive path:
clone the source, enter a new mount namespace (made private, as runtimes
do), move the clone onto the target, and let the container mount something
below it: the mount propagates back and appears in the host's tree.  pyoci
gives the moved clone the rootfs's propagation (slave, or what the mount
asks for), so nothing the container mounts reaches the host.

Root only: open_tree needs CAP_SYS_ADMIN over the host's mount namespace,
so a rootless pyoci never pre-opens sources.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from helpers.ocitest import Env

NAIVE = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
SYS_open_tree, SYS_move_mount = 428, 429
src, target = sys.argv[1], sys.argv[2]
tree = libc.syscall(SYS_open_tree, -100, src.encode(), 1 | 0o2000000)   # OPEN_TREE_CLONE|CLOEXEC
assert tree >= 0, os.strerror(ctypes.get_errno())
assert libc.unshare(0x00020000) == 0                                    # CLONE_NEWNS
assert libc.mount(None, b"/", None, 0x40000 | 0x4000, None) == 0        # MS_PRIVATE|MS_REC
r = libc.syscall(SYS_move_mount, tree, b"", -100, target.encode(), 4)   # MOVE_MOUNT_F_EMPTY_PATH
assert r == 0, os.strerror(ctypes.get_errno())
r = libc.mount(b"tmpfs", (target + "/sub").encode(), b"tmpfs", 0, None)
assert r == 0, os.strerror(ctypes.get_errno())
"""


def _host_has_tmpfs_at(path: Path) -> bool:
    return any(line.split()[4] == str(path) and " - tmpfs " in line
               for line in Path("/proc/self/mountinfo").read_text().splitlines())


def test_preopened_bind_clone_does_not_propagate_to_the_host(oci: Env) -> None:
    shared = oci.mkdir("shared")
    (shared / "sub").mkdir()
    target = oci.mkdir("target")
    subprocess.run(["mount", "--bind", str(shared), str(shared)], check=True)
    try:
        subprocess.run(["mount", "--make-shared", str(shared)], check=True)
        # The naive runtime: the container's tmpfs below the moved clone shows on the host.
        p = subprocess.run([sys.executable, "-c", NAIVE, str(shared), str(target)],
                           capture_output=True, text=True, timeout=30)
        assert p.returncode == 0, p.stderr
        assert _host_has_tmpfs_at(shared / "sub"), "the naive clone's mount did not reach the host"
        subprocess.run(["umount", "-l", str(shared / "sub")], check=True)

        b = oci.bundle(["sh", "-c", "mount -t tmpfs tmpfs /s/sub && grep -c ' /s/sub ' /proc/self/mountinfo"])
        b.set_namespace("user")
        b.linux["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        b.linux["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        b.chown_all(100000, 100000)
        b.bind(shared, "/s")
        for kind in ("bounding", "effective", "permitted"):
            b.process["capabilities"][kind].append("CAP_SYS_ADMIN")
        r = oci.run(b).ok()
        assert r.stdout.strip() == "1", r
        assert not _host_has_tmpfs_at(shared / "sub"), "the container's mount reached the host"
    finally:
        subprocess.run(["umount", "-R", "-l", str(shared)], check=False)
