"""A /proc (or /sys) that is a symlink in the image.

procfs mounted where the image's symlink points is how LSM-label and masking
defences have been bypassed (CVE-2019-16884, CVE-2019-19921): the runtime
believes /proc is procfs and writes labels or masks paths there, while the
real procfs sits elsewhere, unmasked.  runc refuses such an image: `filesystem
"proc" must be mounted on ordinary directory`.  pyoci refuses it too, naming
the path, and mounts nothing (the leak check after each test covers mounts).
"""

from __future__ import annotations

import os

import pytest
from helpers.secutil import Side, describe, refused

PROC_SUPER_MAGIC = "9fa0"


def test_naive_mount_follows_an_image_proc_symlink(side: Side) -> None:
    """The unprotected path: mount(2) on ROOTFS/proc follows the image's
    symlink, and procfs lands where the image chose."""
    b = side.bundle(["true"])
    os.rmdir(b.rootfs / "proc")
    (b.rootfs / "bad-proc").mkdir()
    os.symlink("bad-proc", b.rootfs / "proc")
    side.chown(b.rootfs / "bad-proc")
    p = side.naive('mount -t proc proc "$ROOTFS/proc" && stat -f -c %t "$ROOTFS/bad-proc"',
                   env={"ROOTFS": str(b.rootfs)})
    assert p.returncode == 0 and p.stdout.split() == [PROC_SUPER_MAGIC], describe(p)


@pytest.mark.parametrize("dest,link", [("proc", "/bad-proc"), ("proc", "bad-proc"),
                                       ("sys", "/bad-sys"), ("proc", "/dev")])
def test_proc_or_sys_symlink_in_the_image_is_refused(side: Side, dest: str, link: str) -> None:
    b = side.bundle(["true"])
    os.rmdir(b.rootfs / dest)
    target = b.rootfs / link.lstrip("/")
    target.mkdir(exist_ok=True)
    os.symlink(link, b.rootfs / dest)
    side.save(b)
    r = side.pyoci("run", "--bundle", str(b.path), side.oci.cid())
    assert refused(r), str(r)
    # (rootless, /sys is the host's bound: "bind")
    fstypes = ["proc"] if dest == "proc" else ["sysfs", "bind"]
    assert any(f'filesystem "{t}" must be mounted on ordinary directory' in r.stderr
               for t in fstypes), str(r)
    assert f"/{dest} in the rootfs is a symlink" in r.stderr and "$.mounts[" in r.stderr, str(r)
    assert os.path.islink(b.rootfs / dest)
    if link != "/dev":
        assert not os.listdir(target), "the refused mount left something behind"


def test_proc_that_is_a_file_in_the_image_is_refused(side: Side) -> None:
    b = side.bundle(["true"])
    os.rmdir(b.rootfs / "proc")
    (b.rootfs / "proc").write_text("not a directory\n")
    side.save(b)
    r = side.pyoci("run", "--bundle", str(b.path), side.oci.cid())
    assert refused(r) and "/proc in the rootfs is not a directory" in r.stderr, str(r)


def test_proc_below_a_symlinked_parent_stays_in_the_rootfs(side: Side) -> None:
    """Only the last component must be a directory: a parent that is a
    symlink is resolved inside the rootfs (RESOLVE_IN_ROOT), as for every
    mount, and the container runs."""
    b = side.bundle(["sh", "-c", "stat -f -c %t /inner/proc"])
    (b.rootfs / "real" / "proc").mkdir(parents=True)
    os.symlink("/real", b.rootfs / "inner")
    b.add_mount("/inner/proc", "proc", "proc")
    side.save(b)
    r = side.pyoci("run", "--bundle", str(b.path), side.oci.cid())
    assert r.rc == 0 and r.stdout.split() == [PROC_SUPER_MAGIC], str(r)
