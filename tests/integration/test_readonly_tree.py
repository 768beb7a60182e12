"""Read-only all the way down, never silently less (issue 12, item 5).

A recursive bind made read-only (the `rro` option; the host's /sys bound
for a rootless container, by `pyoci spec --rootless` or by the sysfs
fallback) must leave no writable mount below it.  pyoci uses
mount_setattr(AT_RECURSIVE, MOUNT_ATTR_RDONLY) (Linux 5.12+, which pyoci
needs anyway: read-only and masked paths are made with it).  Where that
call fails, create fails naming the mount: the sysfs fallback used to go on
silently with writable submounts when the kernel answered ENOSYS.

The kernel here has mount_setattr, so the older kernel is played by a
seccomp filter that answers mount_setattr with ENOSYS, loaded by a small
wrapper before it executes pyoci (root may load one without
no_new_privs).  Runs as root: the same code serves rootless containers
(tests/security/test_rootless_sys_readonly.py runs those).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.ocitest import PYTHON, Bundle, Env, Result

ENOSYS_WRAPPER = r"""
import ctypes, os, sys
from pyoci.linux.seccomp import compile_filter
bpf, count, _flags = compile_filter({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
    {"names": ["mount_setattr"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]})
class Fprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
buf = ctypes.create_string_buffer(bpf, len(bpf))
prog = Fprog(count, ctypes.cast(buf, ctypes.c_void_p))
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(22, 2, ctypes.byref(prog), 0, 0) != 0:   # PR_SET_SECCOMP, SECCOMP_MODE_FILTER
    sys.exit(f"seccomp: errno {ctypes.get_errno()}")
os.execv(sys.argv[1], sys.argv[1:])
"""

CHECK = ("cat /proc/self/mountinfo; echo ==; "
         "for d in {targets}; do touch $d/pyoci-escape 2>&1 && echo WROTE $d; done; echo END")


def _run(oci: Env, b: Bundle, enosys: bool) -> Result:
    b.save()
    cmd, env = oci.command(["run", "--bundle", str(b.path), oci.cid()])
    if enosys:
        cmd = [PYTHON, "-c", ENOSYS_WRAPPER, *cmd]
    out, err = oci.tmp / f".ro-out.{oci.cid()}", oci.tmp / f".ro-err.{oci.cid()}"
    with open(out, "wb") as fo, open(err, "wb") as fe:
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=fo, stderr=fe, env=env, timeout=60)
    return Result(cmd, p.returncode, out.read_text(errors="replace"), err.read_text(errors="replace"))


def _assert_refused(r: Result, what: str) -> None:
    """Without mount_setattr: one error line naming the step, nothing run."""
    assert r.rc == 1 and "END" not in r.stdout, str(r)
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and what in lines[0] and "Function not implemented" in lines[0], str(r)


def _assert_readonly_below(r: Result, top: str) -> None:
    assert r.rc == 0 and "END" in r.stdout, str(r)
    mountinfo, _, writes = r.stdout.partition("==\n")
    below = [f for f in (ln.split() for ln in mountinfo.splitlines())
             if len(f) > 5 and (f[4] == top or f[4].startswith(top + "/"))]
    assert len(below) > 1, f"no submount under {top}:\n{mountinfo}"
    rw = [" ".join(f[4:6]) for f in below if "ro" not in f[5].split(",")]
    assert not rw, f"writable under {top}:\n  " + "\n  ".join(rw)
    assert "WROTE" not in writes, writes


@pytest.fixture
def tree(oci: Env) -> Iterator[Path]:
    """A directory with a tmpfs mounted below it (unmounted by the leak check's
    cleanup should the test fail; unmounted here otherwise)."""
    top = oci.mkdir("tree")
    (top / "sub").mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "pyoci-test", str(top / "sub")], check=True)
    yield top
    subprocess.run(["umount", "-l", str(top / "sub")], check=False)


@pytest.mark.parametrize("enosys", [False, True], ids=["mount_setattr", "without-mount_setattr"])
def test_rro_bind_makes_every_submount_readonly(oci: Env, tree: Path, enosys: bool) -> None:
    b = oci.bundle(["sh", "-c", CHECK.format(targets="/mnt/t /mnt/t/sub")])
    b.config["mounts"].append({"destination": "/mnt/t", "type": "bind", "source": str(tree),
                               "options": ["rbind", "ro", "rro"]})
    r = _run(oci, b, enosys)
    if enosys:
        _assert_refused(r, "make /mnt/t and every mount below it read-only")
    else:
        _assert_readonly_below(r, "/mnt/t")
    assert not (tree / "sub" / "pyoci-escape").exists()
    # the host's own mounts are untouched
    probe = tree / "sub" / "host-can-write"
    probe.write_text("x")
    probe.unlink()


@pytest.mark.parametrize("enosys", [False, True], ids=["mount_setattr", "without-mount_setattr"])
def test_sysfs_fallback_readonly_all_the_way_down(oci: Env, enosys: bool) -> None:
    """Root with a user namespace and no network namespace: a sysfs mount is
    refused and the host's /sys is bound instead, read-only to the bottom."""
    b = oci.bundle(["sh", "-c", CHECK.format(targets="/sys/fs/cgroup /sys/kernel")], rootless=True,
                   uid=100000, gid=100000)
    b.drop_namespace("network")
    b.linux["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    b.linux["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    mounts = [m for m in b.config["mounts"] if not m["destination"].startswith("/sys")]
    b.config["mounts"] = [mounts[0], {"destination": "/sys", "type": "sysfs", "source": "sysfs",
                                      "options": ["nosuid", "noexec", "nodev", "ro"]}, *mounts[1:]]
    b.linux.pop("readonlyPaths")     # (made with mount_setattr too: they would fail first)
    r = _run(oci, b, enosys)
    if enosys:
        _assert_refused(r, "make the host's /sys bound on /sys read-only recursively")
    else:
        _assert_readonly_below(r, "/sys")


@pytest.mark.parametrize("enosys", [False, True], ids=["mount_setattr", "without-mount_setattr"])
def test_rootless_template_sys_as_root(oci: Env, enosys: bool) -> None:
    """The rootless template's /sys (rbind, ro, rro), run by root."""
    b = oci.bundle(["sh", "-c", CHECK.format(targets="/sys/fs/cgroup /sys/kernel")], rootless=True,
                   uid=100000, gid=100000)
    b.linux["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    b.linux["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    b.linux.pop("readonlyPaths")
    r = _run(oci, b, enosys)
    if enosys:
        _assert_refused(r, "make /sys and every mount below it read-only")
    else:
        _assert_readonly_below(r, "/sys")
