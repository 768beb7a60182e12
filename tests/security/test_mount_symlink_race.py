"""CVE-2021-30465: a mount destination that is (or is raced into) a symlink
out of the rootfs, so that the mount lands on a host directory.

The image plants /mnt/abs -> /<host dir> and /mnt/rel -> ../../../../<host
dir>, and a racing process exchanges the directory /mnt/dir with a symlink
to the host directory while the runtime sets up the mounts of many
containers.  The host directory holds target/HOST-MARKER; the mount's source
holds SRC-MARKER.

Where the mounts of pyoci land is observed from outside: a createRuntime
hook saves the container's mountinfo at SYNC 3 (mounts done, before
pivot_root, so still in host paths) together with the host's; with no mount
namespace at all (root), pyoci mounts in the host's namespace and the host's
own mountinfo shows where.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers.ocitest import PYTHON, Bundle
from helpers.secutil import (
    Side,
    describe,
    hook_mountinfo,
    host_mounts_under,
    mountinfo_hook,
    mounts_outside,
    refused,
    start_swapper,
    stop,
)

ROUNDS = 8

# The naive runtime: resolve the destination in userspace, confined to the
# rootfs (symlinks followed by hand, ".." clamped: the old securejoin), then
# mount(2) by path.  Run in a mount namespace of its own; prints what it saw.
NAIVE = r"""
import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
src, root, host, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
MS_BIND, MNT_DETACH = 4096, 2

def mount(target):
    return libc.mount(src.encode(), target.encode(), None, MS_BIND, None) == 0

def covered():
    return any(os.path.exists(os.path.join(host, d, "SRC-MARKER")) for d in ("", "target"))

def clean():
    for t in (os.path.join(host, "target"), host, os.path.join(root, "mnt/dir/target")):
        while libc.umount2(t.encode(), MNT_DETACH) == 0:
            pass

def securejoin(path):
    parts, cur, n = [p for p in path.split("/") if p], root, 0
    while parts:
        p = parts.pop(0)
        if p == "..":
            cur = os.path.dirname(cur) if cur != root else root
            continue
        nxt = os.path.join(cur, p)
        try:
            t = os.readlink(nxt) if n < 40 else None
        except OSError:
            t = None
        if t is not None:
            n += 1
            parts = [x for x in t.split("/") if x] + parts
            if t.startswith("/"):
                cur = root
            continue
        cur = nxt
    return cur

# 1. the planted symlinks: plain mount(2) follows them
for link in ("mnt/abs", "mnt/rel"):
    ok = mount(os.path.join(root, link))
    print(link, "mounted" if ok else "failed", "COVERED" if covered() else "not-covered", flush=True)
    clean()
# 2. check, then mount: the race
end, tries = time.monotonic() + seconds, 0
while time.monotonic() < end:
    tries += 1
    target = securejoin("/mnt/dir/target")
    mount(target)
    hit = covered()
    clean()
    if hit:
        print("race COVERED after", tries, "tries", flush=True)
        break
else:
    print("race not-covered after", tries, "tries", flush=True)
"""


def _plant(side: Side, b: Bundle, hostdir: Path) -> None:
    mnt = b.rootfs / "mnt"
    (mnt / "dir" / "target").mkdir(parents=True)
    os.symlink(str(hostdir), mnt / "abs")
    os.symlink("../" * 12 + str(hostdir).lstrip("/"), mnt / "rel")
    os.symlink(str(hostdir), mnt / "swap")


def _dirs(side: Side) -> tuple[Path, Path]:
    hostdir = side.workdir("hostdir")
    (hostdir / "target").mkdir()
    (hostdir / "target" / "HOST-MARKER").write_text("host\n")
    src = side.workdir("src")
    (src / "SRC-MARKER").write_text("src\n")
    for p in (hostdir / "target", hostdir / "target" / "HOST-MARKER", src / "SRC-MARKER"):
        side.chown(p)
    return hostdir, src


def _host_untouched(hostdir: Path) -> list[str]:
    problems = [f"host mount: {m}" for m in host_mounts_under(hostdir)]
    if sorted(os.listdir(hostdir)) != ["target"]:
        problems.append(f"{hostdir} now shows {sorted(os.listdir(hostdir))}")
    if sorted(os.listdir(hostdir / "target")) != ["HOST-MARKER"]:
        problems.append(f"{hostdir}/target now shows {sorted(os.listdir(hostdir / 'target'))}")
    return problems


@pytest.mark.parametrize("mntns", ["mount-ns", "no-mount-ns"])
def test_mount_destination_symlink_race(side: Side, mntns: str) -> None:
    if mntns == "no-mount-ns" and side.rootless:
        pytest.skip("a rootless container always has a mount namespace of its own")
    hostdir, src = _dirs(side)
    b = side.bundle(["true"])
    _plant(side, b, hostdir)
    for dest in ("/mnt/abs", "/mnt/rel", "/mnt/dir/target"):
        b.bind(src, dest)
    hook, hook_out = mountinfo_hook(side)
    b.config["hooks"] = {"createRuntime": [hook]}
    if mntns == "no-mount-ns":
        b.drop_namespace("mount")
    side.save(b)

    # The unprotected path, in a mount namespace of its own (as root, or as
    # the user in a user namespace): the planted symlinks and the race both
    # put the source over the host directory.
    swapper = start_swapper(b.rootfs / "mnt" / "dir", b.rootfs / "mnt" / "swap", 8)
    try:
        p = side.naive(f'exec "{PYTHON}" -I -S -c "$NAIVE" "$SRC" "$ROOTFS" "$HOST" 5', pid=False,
                       env={"NAIVE": NAIVE, "SRC": str(src), "ROOTFS": str(b.rootfs), "HOST": str(hostdir)})
    finally:
        stop(swapper)
    assert "mnt/abs mounted COVERED" in p.stdout and "mnt/rel mounted COVERED" in p.stdout, describe(p)
    assert "race COVERED" in p.stdout, describe(p)
    assert not _host_untouched(hostdir)

    # pyoci, with the same race running through every create
    problems: list[str] = []
    swapper = start_swapper(b.rootfs / "mnt" / "dir", b.rootfs / "mnt" / "swap", 60)
    created = 0
    try:
        # Many creates are refused (the swapped-in symlink leads nowhere
        # inside the rootfs): go on until ROUNDS of them got through.
        for _ in range(ROUNDS * 8):
            if created >= ROUNDS:
                break
            cid = side.oci.cid()
            r = side.pyoci("create", "--bundle", str(b.path), cid)
            if r.rc != 0:
                # refusing is fine (e.g. the swapped symlink leads nowhere); failing
                # untidily is not
                if not refused(r) or (side.root / cid).exists():
                    problems.append(f"create failed untidily:\n{r}")
                continue
            created += 1
            try:
                pid = side.pyoci("state", cid).ok().json()["pid"]
                container, host = hook_mountinfo(hook_out, pid)
                for line in mounts_outside(container, host, b.rootfs, side.oci.tmp):
                    problems.append(f"{cid}: a mount landed outside the rootfs: {line}")
                problems += [f"{cid}: {x}" for x in _host_untouched(hostdir)]
                if mntns == "no-mount-ns":
                    problems += [f"{cid}: host mount outside the rootfs: {ln}"
                                 for ln in host_mounts_under(side.oci.tmp)
                                 if not ln.split()[4].startswith(str(b.rootfs))]
            finally:
                side.pyoci("delete", "--force", cid).ok()
            problems += _host_untouched(hostdir)
    finally:
        stop(swapper)
    assert not problems, "\n".join(problems)
    assert created > 0, "no create succeeded while the swapper ran: nothing was checked"
