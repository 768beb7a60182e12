"""HOME from the image's /etc/passwd: the image chooses what that path is.

When process.env has no HOME, pyoci reads the process user's home directory
from the container's /etc/passwd (as runc).  An image can make that path a
symlink to a file of the host (an absolute link, resolved on the host by a
runtime that opens ``<rootfs>/etc/passwd`` from outside: the host's data
becomes the container's HOME), or a fifo (a plain open() blocks until
someone writes: `create` would hang).  pyoci reads it from inside the
container, resolved in the container's root (RESOLVE_IN_ROOT), only when
it is a regular file, and at most 4 MiB of it.
"""

from __future__ import annotations

import os
import subprocess

from helpers.secutil import Side, describe

SECRET = "HOST-SECRET-HOME"


def test_passwd_symlink_to_a_host_file(side: Side) -> None:
    host = side.workdir("hostetc")
    (host / "passwd").write_text(f"root:x:0:0::/{SECRET}:/bin/sh\n")
    side.chown(host / "passwd")
    b = side.bundle(["sh", "-u", "-c", "echo $HOME"])
    b.process["env"] = ["PATH=/bin"]
    link = b.rootfs / "etc" / "passwd"
    link.unlink()
    os.symlink(str(host / "passwd"), link)
    side.save(b)
    # The unprotected path: the runtime opens <rootfs>/etc/passwd on the host.
    p = side.naive(f'cat "{link}"', pid=False)
    assert SECRET in p.stdout, describe(p)

    r = side.pyoci("run", "--bundle", str(b.path), side.oci.cid())
    assert r.rc == 0, str(r)
    assert SECRET not in r.stdout and r.stdout.strip() == "/", str(r)


def test_passwd_fifo_does_not_hang_create(side: Side) -> None:
    b = side.bundle(["sh", "-u", "-c", "echo $HOME"])
    b.process["env"] = ["PATH=/bin"]
    fifo = b.rootfs / "etc" / "passwd"
    fifo.unlink()
    os.mkfifo(fifo)
    side.save(b)
    # The unprotected path: a plain open() of the fifo blocks.
    p = side.naive(f'timeout 2 cat "{fifo}"; echo "rc=$?"', pid=False)
    assert "rc=124" in p.stdout, describe(p)

    try:
        r = side.pyoci("run", "--bundle", str(b.path), side.oci.cid(), timeout=30)
    except subprocess.TimeoutExpired as e:
        raise AssertionError("run hung on the image's /etc/passwd fifo") from e
    assert r.rc == 0 and r.stdout.strip() == "/", str(r)
