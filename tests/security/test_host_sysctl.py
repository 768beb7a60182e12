"""Sysctls written into the host's namespaces (issue 12 items 1 and 6).

A sysctl is written by the container's init under /proc/sys after
pivot_root.  When the container does not own the namespace the sysctl
belongs to (net.* without a network namespace of its own, fs.mqueue.* or
kernel.shm* without an IPC namespace) or the sysctl belongs to no namespace
at all (vm.*, most of kernel.*), that write changes the host's value for
every process, and it stays changed after the container is deleted.

The naive path: a runtime that sets up a mount and a pid namespace and
writes the key under /proc/sys, as runc's init does, without checking
whose namespace it is in.  The demonstration changes the host's value (by
one) and puts it back at once.  Rootless, the kernel itself refuses such a
write (the host's namespaces belong to the initial user namespace), so the
demonstration needs root; pyoci must refuse the config on both sides.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.secutil import Side, describe, refused


def proc_sys(key: str) -> Path:
    return Path("/proc/sys") / key.replace(".", "/")


def other_value(now: str) -> str:
    """A harmless neighbour of the current value."""
    n = int(now.split()[0])
    return str(n - 1 if n > 2 else n + 1)


# key, the namespace it needs (dropped from the config), written with slashes too
CASES = [("net.ipv4.ip_default_ttl", "network", False),
         ("net.ipv4.ip_default_ttl", "network", True),
         ("vm.swappiness", None, False),
         ("fs.mqueue.queues_max", "ipc", False)]


def naive_write_changes_host(side: Side, key: str) -> None:
    path = proc_sys(key)
    before = path.read_text().strip()
    new = other_value(before)
    try:
        p = side.naive(f"echo {new} > {path}")
        assert p.returncode == 0, describe(p)
        assert path.read_text().strip() == new, (
            f"the naive write of {key} did not reach the host:\n{describe(p)}")
    finally:
        path.write_text(before + "\n")
    assert path.read_text().strip() == before


@pytest.mark.parametrize("key, ns, slashes", CASES,
                         ids=[f"{k}{'-slashes' if s else ''}" for k, _, s in CASES])
def test_host_sysctl_unchanged(side: Side, key: str, ns: str | None, slashes: bool) -> None:
    path = proc_sys(key)
    if not path.exists():
        pytest.skip(f"this kernel has no {path}")
    if side.rootless:
        p = side.naive(f"echo 1 > {path}")
        assert p.returncode != 0, f"a user namespace's root changed the host's {key}:\n{describe(p)}"
    else:
        naive_write_changes_host(side, key)

    before = path.read_text().strip()
    written = key.replace(".", "/") if slashes else key
    b = side.bundle(["sh", "-c", f"cat {path}"])
    if ns is not None:
        b.linux["namespaces"] = [n for n in b.linux["namespaces"] if n["type"] != ns]
    b.linux["sysctl"] = {written: other_value(before)}
    side.save(b)
    cid = side.oci.cid()
    r = side.pyoci("run", "--bundle", str(b.path), cid)
    if r.rc == 0:
        side.pyoci("delete", "--force", cid)
    after = path.read_text().strip()
    if after != before:
        path.write_text(before + "\n")
    assert after == before, f"pyoci changed the host's {key} from {before} to {after}:\n{r}"
    assert refused(r), f"the config was not refused with one error line:\n{r}"
    assert written in r.stderr and "$.linux.sysctl" in r.stderr, str(r)
    assert side.pyoci("state", cid).rc != 0 and not (side.root / cid).exists()
