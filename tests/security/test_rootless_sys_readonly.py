"""The host's cgroup tree under a rootless container's /sys (issue 12, item 5).

A rootless container without a network namespace cannot mount a fresh
sysfs, so ``pyoci spec --rootless`` binds the host's /sys (``rbind``).  A
read-only remount of that bind makes only its top mount read-only: the
host's mounts below it, /sys/fs/cgroup's hierarchies among them, stay
writable (CVE-2023-25809 in runc).  A cgroup subtree delegated to the user
(a cgroup v2 directory it owns, as systemd hands out) is then writable from
inside the container: it can make sub-cgroups, move processes, change
limits of its owner's other processes.

The naive path (``mount --rbind /sys``, then ``remount,bind,ro``) shows a
delegated cgroup directory writable below the "read-only" /sys.  pyoci's
template is read-only all the way down (``rro``), so is the config with a read-only
``cgroup`` mount over /sys/fs/cgroup (runc's template), and so is the sysfs fallback
(a ``sysfs`` mount refused for lack of a network namespace): every mount
at or under /sys is read-only and a write into the delegated directory
fails with EROFS.

The delegated directory is made by the test in the cgroup2 mount
(/sys/fs/cgroup/unified on this project's hybrid hosts) and chowned to the
test user; the test skips where no cgroup2 is mounted.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.ocitest import Env, HostUser
from helpers.secutil import Side, describe
from helpers.users import Rootless

from pyoci.cgroups import manager as cgroups


@pytest.fixture
def rootless(oci: Env, test_user: HostUser) -> Side:
    """The rootless side only: root containers get a fresh sysfs."""
    return Side(oci, Rootless(oci, test_user))


@pytest.fixture
def delegated(rootless: Side) -> Iterator[Path]:
    """A cgroup v2 directory owned by the test user."""
    unified = cgroups.layout().unified
    if not unified:
        pytest.skip("no cgroup2 mount to delegate a directory from")
    d = Path(unified) / f"pyoci-deleg-{uuid.uuid4().hex[:10]}"
    d.mkdir()
    assert rootless.user is not None
    for p in [d, *(d / f for f in ("cgroup.procs", "cgroup.subtree_control", "cgroup.threads"))]:
        if p.exists():
            os.chown(p, rootless.user.uid, rootless.user.gid)
    try:
        yield d
    finally:
        for sub in sorted(d.rglob("*"), reverse=True):
            if sub.is_dir():
                sub.rmdir()
        d.rmdir()


def _sys_mounts(mountinfo: str) -> list[list[str]]:
    return [f for f in (ln.split() for ln in mountinfo.splitlines())
            if len(f) > 5 and (f[4] == "/sys" or f[4].startswith("/sys/"))]


def _check(out: str, target: str) -> None:
    mountinfo, _, rest = out.partition("==\n")
    mounts = _sys_mounts(mountinfo)
    assert mounts, f"no mount at or under /sys:\n{out}"
    rw = [" ".join(f[4:6]) for f in mounts if "ro" not in f[5].split(",")]
    assert not rw, "mounts under /sys are writable:\n  " + "\n  ".join(rw)
    assert "MKDIR-OK" not in rest, f"wrote into {target}:\n{rest}"
    assert "Read-only file system" in rest, rest


SCRIPT = ("cat /proc/self/mountinfo; echo ==; "
          "for d in {target}; do mkdir $d/escape 2>&1 && echo MKDIR-OK; done; "
          "touch /sys/fs/cgroup/escape 2>&1 && echo MKDIR-OK; echo END")


def test_naive_rbind_leaves_the_delegated_cgroup_writable(rootless: Side, delegated: Path) -> None:
    x = rootless.workdir("sysx")
    p = rootless.naive(f'mount --rbind /sys {x} && mount -o remount,bind,ro {x} && '
                       f'mkdir {x}/{delegated.relative_to("/sys")}/escape && echo MKDIR-OK; '
                       f'touch {x}/kernel/x 2>&1', pid=False)
    assert "MKDIR-OK" in p.stdout, describe(p)            # the attack works
    assert "Read-only file system" in p.stdout, describe(p)  # although the top is read-only
    (delegated / "escape").rmdir()


def test_rootless_template_sys_is_readonly_all_the_way_down(rootless: Side, delegated: Path) -> None:
    """The template as `pyoci spec --rootless` writes it: the host's cgroup
    tree is visible under /sys/fs/cgroup, read-only."""
    b = rootless.bundle(["sh", "-c", SCRIPT.format(target=f"{delegated} /sys/fs/cgroup/*")])
    assert [m["options"] for m in b.config["mounts"] if m["destination"] == "/sys"] == \
        [["rbind", "nosuid", "noexec", "nodev", "ro", "rro"]]
    rootless.save(b)
    r = rootless.pyoci("run", "--bundle", str(b.path), rootless.oci.cid())
    assert r.rc == 0 and "END" in r.stdout, str(r)
    _check(r.stdout, str(delegated))
    assert not (delegated / "escape").exists()


def test_sys_bind_with_a_cgroup_mount(rootless: Side, delegated: Path) -> None:
    """runc's template: a read-only `cgroup` mount over /sys/fs/cgroup too
    (the caller's own cgroups)."""
    b = rootless.bundle(["sh", "-c", SCRIPT.format(target="/sys/fs/cgroup/*")])
    b.add_mount("/sys/fs/cgroup", "cgroup", "cgroup", ["nosuid", "noexec", "nodev", "relatime", "ro"])
    rootless.save(b)
    r = rootless.pyoci("run", "--bundle", str(b.path), rootless.oci.cid())
    assert r.rc == 0 and "END" in r.stdout, str(r)
    _check(r.stdout, "/sys/fs/cgroup")
    assert not (delegated / "escape").exists()


def test_sysfs_fallback_is_readonly_all_the_way_down(rootless: Side, delegated: Path) -> None:
    """A `sysfs` mount the kernel refuses (no network namespace of our own):
    pyoci binds the host's /sys instead, read-only all the way down."""
    b = rootless.bundle(["sh", "-c", SCRIPT.format(target=str(delegated))])
    mounts = [m for m in b.config["mounts"] if not m["destination"].startswith("/sys")]
    b.config["mounts"] = [mounts[0], {"destination": "/sys", "type": "sysfs", "source": "sysfs",
                                      "options": ["nosuid", "noexec", "nodev", "ro"]}, *mounts[1:]]
    rootless.save(b)
    r = rootless.pyoci("run", "--bundle", str(b.path), rootless.oci.cid())
    assert r.rc == 0 and "END" in r.stdout, str(r)
    _check(r.stdout, str(delegated))
    assert not (delegated / "escape").exists()
