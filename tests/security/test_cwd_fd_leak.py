"""CVE-2024-21626: a working directory reached through an fd of the host, and
what a container inherits from the runtime's caller (fds, environment).

The caller of pyoci (an engine) may hold fds of host directories: leaked by
mistake, or handed over on purpose with --preserve-fds.  A process.cwd (or
`exec --cwd`) of /proc/self/fd/N makes chdir() follow the fd out of the
container; runc refuses such a working directory since 1.1.12.  Here the
caller holds a host directory (with a file "secret") as fds 3..10.
"""

from __future__ import annotations

import os
import stat
import uuid
from pathlib import Path

from helpers.ocitest import Bundle, Result
from helpers.secutil import Side, describe, install, refused

LEAKED = range(3, 11)
SECRET = "HOST-SECRET-21626"


def host_dir(side: Side) -> Path:
    d = side.workdir("hostdir")
    (d / "secret").write_text(SECRET + "\n")
    side.chown(d / "secret")
    return d


def naive_chdir_escape(side: Side, b: Bundle, fds: dict[int, Path], n: int) -> None:
    """The unprotected path: a runtime that keeps the caller's fds and
    chdirs to the configured cwd after chroot reads the host's file."""
    p = side.naive(f'exec chroot "$ROOTFS" /bin/sh -c "cd /proc/self/fd/{n} && cat secret"',
                   mount_proc=str(b.rootfs / "proc"), env={"ROOTFS": str(b.rootfs)}, fds=fds)
    assert SECRET in p.stdout, describe(p)


def refused_cleanly(side: Side, cid: str, r: Result, out: Path) -> str | None:
    """None when `create` failed with one error line and left nothing;
    otherwise what went wrong (starting the container, if it was created,
    to show where its working directory is)."""
    if r.rc != 0:
        if not refused(r):
            return f"create failed, but not with one error line:\n{r}"
        if side.pyoci("state", cid).rc == 0 or (side.root / cid).exists():
            return f"create failed, yet the container exists:\n{r}"
        return None
    side.pyoci("start", cid)
    side.pyoci("delete", "--force", cid)
    shown = out.read_text()
    where = "in the HOST directory" if SECRET in shown else "inside the container"
    return f"create accepted the working directory (the process ran {where}):\n{r}\n  output: {shown!r}"


def test_cwd_through_leaked_fds(side: Side) -> None:
    hostdir = host_dir(side)
    fds = {n: hostdir for n in LEAKED}
    b = side.bundle(["sh", "-c", "pwd; cat secret"])
    side.save(b)
    naive_chdir_escape(side, b, fds, 3)

    problems = []
    for n in LEAKED:
        b.process["cwd"] = f"/proc/self/fd/{n}"
        side.save(b)
        cid = side.oci.cid()
        out = side.oci.tmp / f"cwd-{cid}.out"
        r = side.pyoci_with_fds("create", "--bundle", str(b.path), cid, fds=fds, stdout=out)
        why = refused_cleanly(side, cid, r, out)
        if why:
            problems.append(f"process.cwd /proc/self/fd/{n}: {why}")
    assert not problems, "\n".join(problems)


def test_cwd_through_preserved_fd(side: Side) -> None:
    """--preserve-fds hands fd 3 (and 4) to the container on purpose; a cwd
    through it still leads out of the container and must be refused."""
    hostdir = host_dir(side)
    b = side.bundle(["sh", "-c", "pwd; cat secret"])
    side.save(b)
    naive_chdir_escape(side, b, {3: hostdir}, 3)

    problems = []
    for preserve, n in ((1, 3), (2, 4)):
        b.process["cwd"] = f"/proc/self/fd/{n}"
        side.save(b)
        cid = side.oci.cid()
        out = side.oci.tmp / f"cwd-{cid}.out"
        r = side.pyoci_with_fds("create", "--preserve-fds", str(preserve), "--bundle", str(b.path), cid,
                                fds={3: hostdir, 4: hostdir}, stdout=out)
        why = refused_cleanly(side, cid, r, out)
        if why:
            problems.append(f"--preserve-fds {preserve}, process.cwd /proc/self/fd/{n}: {why}")
    assert not problems, "\n".join(problems)


def test_exec_cwd_through_fd(side: Side) -> None:
    hostdir = host_dir(side)
    fds = {n: hostdir for n in LEAKED}
    b = side.bundle(["sleep", "30"])
    side.save(b)
    naive_chdir_escape(side, b, fds, 5)

    cid = side.oci.cid()
    side.pyoci("run", "--detach", "--bundle", str(b.path), cid).ok()
    problems = []
    try:
        cases = [([], n) for n in LEAKED] + [(["--preserve-fds", "1"], 3)]
        for extra, n in cases:
            r = side.pyoci_with_fds("exec", *extra, "--cwd", f"/proc/self/fd/{n}", cid,
                                    "sh", "-c", "pwd; cat secret", fds=fds)
            if r.rc == 0 or SECRET in r.stdout:
                where = "in the HOST directory" if SECRET in r.stdout else "inside the container"
                problems.append(f"exec {' '.join(extra)} --cwd /proc/self/fd/{n} ran {where}:\n{r}")
            elif not refused(r):
                problems.append(f"exec --cwd /proc/self/fd/{n} did not fail with one error line:\n{r}")
        procs = side.pyoci("ps", "--format", "json", cid).ok().json()
        assert len(procs) == 1, f"processes left in the container: {procs}"
    finally:
        side.pyoci("delete", "--force", cid).ok()
    assert not problems, "\n".join(problems)


def fd_numbers(out: str) -> dict[int, str]:
    fds = {}
    for line in out.splitlines():
        if line.startswith("fd "):
            num, _, target = line[3:].partition(" -> ")
            fds[int(num)] = target
    return fds


def test_fds_a_container_receives(side: Side, probe: Path) -> None:
    """Exactly 0-2, plus the --preserve-fds ones, whatever the caller holds."""
    hostdir = host_dir(side)
    fds = {n: hostdir for n in LEAKED}
    b = side.bundle(["/bin/probe", "fds"])
    install(probe, b.rootfs)
    side.save(b)
    # the unprotected path: everything the caller holds reaches the program
    p = side.naive('exec chroot "$ROOTFS" /bin/probe fds', mount_proc=str(b.rootfs / "proc"),
                   env={"ROOTFS": str(b.rootfs)}, fds=fds)
    assert set(LEAKED) <= set(fd_numbers(p.stdout)), describe(p)

    r = side.pyoci_with_fds("run", "--bundle", str(b.path), side.oci.cid(), fds=fds)
    assert r.rc == 0, str(r)
    assert sorted(fd_numbers(r.stdout)) == [0, 1, 2], str(r)
    r = side.pyoci_with_fds("run", "--preserve-fds", "2", "--bundle", str(b.path), side.oci.cid(), fds=fds)
    assert r.rc == 0, str(r)
    got = fd_numbers(r.stdout)
    assert sorted(got) == [0, 1, 2, 3, 4], str(r)

    b.set_args("sleep", "30")
    side.save(b)
    cid = side.oci.cid()
    side.pyoci_with_fds("create", "--bundle", str(b.path), cid, fds=fds).ok()
    try:
        # the created init holds no file or directory of the host (sockets of
        # the protocol, its own root and the null device are fine)
        pid = side.pyoci("state", cid).ok().json()["pid"]
        root = os.stat(f"/proc/{pid}/root")
        held = []
        for fd in os.listdir(f"/proc/{pid}/fd"):
            if int(fd) <= 2:
                continue
            st = os.stat(f"/proc/{pid}/fd/{fd}")
            null = stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3)
            if stat.S_ISSOCK(st.st_mode) or null or (st.st_dev, st.st_ino) == (root.st_dev, root.st_ino):
                continue
            held.append(f"fd {fd} -> {os.readlink(f'/proc/{pid}/fd/{fd}')}")
        assert not held, f"the created init holds host files: {held}"
        side.pyoci("start", cid).ok()
        r = side.pyoci_with_fds("exec", cid, "/bin/probe", "fds", fds=fds)
        assert r.rc == 0 and sorted(fd_numbers(r.stdout)) == [0, 1, 2], str(r)
        r = side.pyoci_with_fds("exec", "--preserve-fds", "1", cid, "/bin/probe", "fds", fds=fds)
        assert r.rc == 0 and sorted(fd_numbers(r.stdout)) == [0, 1, 2, 3], str(r)
    finally:
        side.pyoci("delete", "--force", cid).ok()


def test_caller_environment_not_inherited(side: Side) -> None:
    var = f"PYOCI_SEC_HOSTVAR={uuid.uuid4().hex}"
    name, value = var.split("=", 1)
    b = side.bundle(["sh", "-c", "env; tr '\\0' '\\n' < /proc/self/environ"])
    side.save(b)
    p = side.naive('exec chroot "$ROOTFS" /bin/env', pid=False, env={"ROOTFS": str(b.rootfs), name: value})
    assert var in p.stdout, describe(p)

    r = side.pyoci("run", "--bundle", str(b.path), side.oci.cid(), env={name: value})
    assert r.rc == 0 and "PATH=" in r.stdout, str(r)
    assert value not in r.stdout, f"the caller's environment reached the container:\n{r}"
    b.set_args("sleep", "30")
    side.save(b)
    cid = side.oci.cid()
    side.pyoci("run", "--detach", "--bundle", str(b.path), cid, env={name: value}).ok()
    try:
        r = side.pyoci("exec", cid, "sh", "-c", "env; tr '\\0' '\\n' < /proc/self/environ; "
                       "cat /proc/1/environ", env={name: value})
        assert r.rc == 0 and "PATH=" in r.stdout, str(r)
        assert value not in r.stdout, f"the caller's environment reached an exec'd process:\n{r}"
    finally:
        side.pyoci("delete", "--force", cid).ok()
