"""A missing process.cwd is created (issue 15, item 12, as runc and crun do):
the image decides what the path's components are, so it can make one a
symlink to a host directory.

The naive path: a runtime that makes the working directory before it enters
the rootfs, with `mkdir -p <rootfs>/<cwd>` on the host: the image's symlink
(rootfs/escape -> /some/host/dir) is followed on the host, and the directory
appears in the host's tree (owned by the runtime's user: root, for a root
runtime).  pyoci makes it after pivot_root, resolved inside the new root,
where the same link leads to <rootfs>/some/host/dir.
"""

from __future__ import annotations

from helpers.secutil import Side, describe


def test_cwd_creation_stays_in_the_rootfs(side: Side) -> None:
    host_dir = side.workdir("host-dir")
    b = side.bundle(["true"])
    (b.rootfs / "escape").symlink_to(str(host_dir))
    side.chown(b.rootfs / "escape")

    # The naive runtime: mkdir -p through the image's link, on the host.
    p = side.naive(f"mkdir -p {b.rootfs}/escape/naive-made")
    assert p.returncode == 0, describe(p)
    assert (host_dir / "naive-made").is_dir(), "the naive mkdir did not reach the host directory"

    b.process["cwd"] = "/escape/pyoci-made"
    side.save(b)
    r = side.pyoci("run", "--bundle", str(b.path), side.oci.cid())
    assert r.rc == 0, str(r)
    assert not (host_dir / "pyoci-made").exists(), "pyoci made the cwd in the host's directory"
    inside = b.rootfs / str(host_dir).lstrip("/") / "pyoci-made"
    assert inside.is_dir(), f"the cwd was not made inside the rootfs ({inside})"
