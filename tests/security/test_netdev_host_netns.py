"""linux.netDevices into the host's own network namespace (issue 15 item 10).

A config may join a network namespace by path.  When that path is the
host's own namespace (``/proc/<a host pid>/ns/net``), "moving" a device
there is no move at all: the kernel keeps it where it is and applies the
rename, so a naive runtime renames (and, as runc does before the move, sets
down) the host's interfaces: a config could take the host's uplink away.

The naive path: what runc's devChangeNetNamespace does, one RTM_NEWLINK with
IFLA_NET_NS_FD of the config's namespace and IFLA_IFNAME, without asking
whose namespace it is.  pyoci refuses the config (the container must own the
namespace) and, at the move itself, refuses a target that is its own
namespace.  Root only: a rootless caller cannot move devices at all.
"""

from __future__ import annotations

import os
import subprocess
import uuid

import pytest
from helpers.ocitest import Env

from pyoci.linux.netdev import F


def _exists(name: str) -> bool:
    return subprocess.run(["ip", "link", "show", "dev", name], capture_output=True).returncode == 0


@pytest.fixture
def veth(oci: Env):  # type: ignore[no-untyped-def]
    tag = uuid.uuid4().hex[:8]
    a, b = f"nh{tag}a", f"nh{tag}b"
    if subprocess.run(["ip", "link", "add", a, "type", "veth", "peer", "name", b],
                      capture_output=True).returncode:
        pytest.skip("this kernel cannot make veth pairs")
    yield a
    for name in (a, b, f"hj{tag}"):
        if _exists(name):
            subprocess.run(["ip", "link", "del", name], capture_output=True)


def naive_move_renames_the_hosts_device(name: str, host_netns: str) -> None:
    from pyroute2 import IPRoute

    hijacked = "hj" + name[2:10]
    fd = os.open(host_netns, os.O_RDONLY)
    try:
        with IPRoute() as ipr:
            index = ipr.link_lookup(ifname=name)[0]
            ipr.link("set", index=index, net_ns_fd=fd, ifname=hijacked)
            assert _exists(hijacked) and not _exists(name), "the naive move did not rename the host's device"
            ipr.link("set", index=index, ifname=name)       # put it back
    finally:
        os.close(fd)
    assert _exists(name)


def test_devices_are_never_moved_into_the_hosts_namespace(oci: Env, veth: str) -> None:
    host_netns = f"/proc/{os.getpid()}/ns/net"
    naive_move_renames_the_hosts_device(veth, host_netns)

    b = oci.bundle(["true"])
    b.set_namespace("network", host_netns)
    b.linux["netDevices"] = {veth: {"name": "hj" + veth[2:10]}}
    cid = oci.cid()
    r = oci.run(b, cid).fails()
    assert r.rc == 1 and len(r.err_lines) == 1, str(r)
    assert f"config.json {F}: unable to move network devices without a private network namespace" \
        in r.stderr, str(r)
    assert _exists(veth) and not _exists("hj" + veth[2:10])
    assert oci.pyoci("state", cid).rc != 0


def test_the_move_itself_refuses_its_own_namespace(veth: str) -> None:
    """The last line of defence, should the namespace behind a checked path
    change before the init joins it: the mover compares the init's namespace
    with its own (here: "the init" is this very process)."""
    from pyoci.errors import PyociError
    from pyoci.linux.netdev import Mover

    m = Mover({veth: {"name": "hj" + veth[2:10]}})
    with pytest.raises(PyociError) as e:
        m.move(os.getpid())
    m.restore()
    assert "the container's network namespace is the host's" in str(e.value)
    assert _exists(veth)
