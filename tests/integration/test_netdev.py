"""linux.netDevices (runtime-spec 1.2; issue 15 item 10): host network devices
moved into the container's network namespace with pyroute2, on the real
kernel, with veth pairs (this kernel has no dummy module).

What runc does, and pyoci with it: the device is moved and renamed in one
netlink request, its permanent global addresses are added again inside (the
kernel drops them on a move), and it is set up.  Nothing is moved back at
delete (the spec: a runtime MUST NOT); when the namespace dies the kernel
returns physical devices to the host and destroys virtual ones, so a veth
is gone with its peer afterwards.  A create that fails after the move puts
the devices back on the host as they were (runc leaves that to the kernel).
runc 1.1.5 predates netDevices (it ignores the field), so there is no runc
control here."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.ocitest import Env, HostUser
from helpers.users import Rootless

from pyoci.linux.netdev import F


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def _exists(name: str, netns: str | None = None) -> bool:
    pre = ["-n", netns] if netns else []
    return _ip(*pre, "link", "show", "dev", name, check=False).returncode == 0


def _addrs(name: str) -> set[str]:
    out = _ip("-j", "addr", "show", "dev", name).stdout
    return {f"{a['local']}/{a['prefixlen']}" for a in json.loads(out)[0]["addr_info"]
            if a.get("scope") == "global"}


def _is_up(name: str) -> bool:
    return "UP" in json.loads(_ip("-j", "link", "show", "dev", name).stdout)[0]["flags"]


class Veth:
    """A veth pair on the host, removed after the test if still there."""

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:8]
        self.a, self.b = f"nd{tag}a", f"nd{tag}b"
        _ip("link", "add", self.a, "type", "veth", "peer", "name", self.b)

    def configure(self, *addrs: str, up: bool = True) -> Veth:
        for a in addrs:
            _ip("addr", "add", a, "dev", self.a, *(["nodad"] if ":" in a else []))
        if up:
            _ip("link", "set", self.a, "up")
        return self

    def remove(self) -> None:
        for name in (self.a, self.b):
            if _exists(name):
                _ip("link", "del", name, check=False)


@pytest.fixture
def veth(oci: Env) -> Iterator[Veth]:
    if _ip("link", "add", "ndprobe0", "type", "veth", "peer", "name", "ndprobe1", check=False).returncode:
        pytest.skip("this kernel cannot make veth pairs")
    _ip("link", "del", "ndprobe0", check=False)
    v = Veth()
    yield v
    v.remove()


ADDRS = ("10.213.7.1/24", "fd00:213:7::1/64")


def _wait_freed(name: str) -> None:
    """Give the kernel up to 5 s to free a deleted container's network
    namespace (it does so asynchronously), and with it the device ``name``."""
    for _ in range(100):
        if not _exists(name):
            return
        time.sleep(0.05)


def test_device_moves_in_renamed_with_its_addresses_and_up(oci: Env, veth: Veth) -> None:
    veth.configure(*ADDRS, up=False)       # (the spec: the runtime sets it up inside)
    b = oci.bundle()
    b.linux["netDevices"] = {veth.a: {"name": "eth7"}}
    b.sh("ip -o addr show dev eth7; cat /sys/class/net/eth7/flags; ls /sys/class/net")
    r = oci.run(b).ok()
    assert "10.213.7.1/24" in r.stdout and "fd00:213:7::1/64" in r.stdout, r.stdout
    flags = [ln for ln in r.stdout.splitlines() if ln.startswith("0x")]
    assert flags and int(flags[0], 16) & 1, r.stdout          # IFF_UP
    assert veth.a not in r.stdout.split()                      # renamed, not copied
    # delete (run removes the container): the namespace is gone, and with it
    # the veth and its peer; nothing was moved back
    _wait_freed(veth.b)
    assert not _exists(veth.a) and not _exists(veth.b)


def test_created_container_has_the_device_and_delete_leaves_it_to_the_kernel(oci: Env, veth: Veth) -> None:
    """create (no start): the device is inside already; delete moves nothing
    back, and the kernel destroys the veth (and its peer) with the namespace."""
    veth.configure(ADDRS[0])
    b = oci.bundle(["true"]).save()
    b.linux["netDevices"] = {veth.a: {"name": "eth7"}}
    b.save()
    cid = oci.cid()
    oci.pyoci("create", "--bundle", str(b.path), cid).ok()
    pid = oci.state(cid)["pid"]
    inside = subprocess.run(["nsenter", "-t", str(pid), "-n", "ip", "-o", "addr", "show", "dev", "eth7"],
                            capture_output=True, text=True)
    assert inside.returncode == 0 and "10.213.7.1/24" in inside.stdout, inside
    assert not _exists(veth.a) and _exists(veth.b)
    oci.pyoci("delete", "--force", cid).ok()
    _wait_freed(veth.b)
    assert not _exists(veth.a) and not _exists(veth.b)


def test_device_keeps_its_name_and_the_kernel_numbers_a_template(oci: Env, veth: Veth) -> None:
    veth.configure(ADDRS[0])
    b = oci.bundle()
    b.linux["netDevices"] = {veth.a: {}, veth.b: {"name": "ctr%d"}}
    b.sh("ls /sys/class/net")
    names = set(oci.run(b).ok().stdout.split())
    assert {veth.a, "ctr0", "lo"} <= names, names


def test_missing_device_is_one_clear_error_and_nothing_moves(oci: Env, veth: Veth) -> None:
    veth.configure(*ADDRS)
    b = oci.bundle(["true"])
    b.linux["netDevices"] = {veth.a: {"name": "eth7"}, "eth9": {}}
    r = oci.run(b).fails()
    assert r.rc == 1
    assert r.err_lines == [f"pyoci: config.json {F}.eth9: no network device 'eth9' on the host "
                             "(hint: `ip link show` lists the host's devices)"], r.stderr
    assert _exists(veth.a) and _addrs(veth.a) == set(ADDRS) and _is_up(veth.a)
    assert not list(oci.root.iterdir()) if oci.root.exists() else True


def test_failed_create_puts_the_devices_back_as_they_were(oci: Env, veth: Veth) -> None:
    """A createRuntime hook fails after the move: both ends of the pair come
    back under their names, with the addresses and up/down state they had."""
    veth.configure(*ADDRS, up=True)
    b = oci.bundle(["true"])
    b.linux["netDevices"] = {veth.a: {"name": "eth7"}, veth.b: {}}
    b.config["hooks"] = {"createRuntime": [oci.hook("exit 3")]}
    r = oci.run(b).fails()
    assert "createRuntime" in r.stderr and len(r.err_lines) == 1, r.stderr
    assert _exists(veth.a) and _exists(veth.b)
    assert _addrs(veth.a) == set(ADDRS)
    assert _is_up(veth.a) and not _is_up(veth.b)


def test_name_taken_in_the_namespace_is_refused_with_a_hint(oci: Env, veth: Veth) -> None:
    name = f"ndns{uuid.uuid4().hex[:8]}"
    _ip("netns", "add", name)
    oci.netns.append(name)
    _ip("-n", name, "link", "add", "eth7", "type", "veth", "peer", "name", "eth8")
    veth.configure(ADDRS[0])
    b = oci.bundle(["true"])
    b.set_namespace("network", f"/run/netns/{name}")
    b.linux["netDevices"] = {veth.a: {"name": "eth7"}}
    r = oci.run(b).fails()
    assert r.err_lines[0].startswith(f"pyoci: {F}.{veth.a}: move into the container's network "
                                       "namespace: File exists (hint: a device named \"eth7\" already "
                                       "exists"), r.stderr
    assert _exists(veth.a) and _addrs(veth.a) == {ADDRS[0]}


def test_joined_namespace_keeps_the_device_after_delete(oci: Env, veth: Veth) -> None:
    """A namespace joined by path (a pod's, made by the engine) outlives the
    container: the device stays in it, as the spec says the namespace's
    owner manages it."""
    name = f"ndns{uuid.uuid4().hex[:8]}"
    _ip("netns", "add", name)
    oci.netns.append(name)
    veth.configure(ADDRS[0])
    b = oci.bundle(["true"])
    b.set_namespace("network", f"/run/netns/{name}")
    b.linux["netDevices"] = {veth.a: {"name": "pod0"}}
    oci.run(b).ok()
    assert _exists("pod0", netns=name) and not _exists(veth.a)
    assert _exists(veth.b)                  # the peer stayed on the host


@pytest.mark.parametrize("devices,namespaces,where,text", [
    ({"eth0": {}}, False, F, "without a private network namespace"),
    ({"a/b": {}}, True, F + "['a/b']", "must not contain '/'"),
    ({"eth0": {"name": "x" * 16}}, True, F + ".eth0.name", "at most 15"),
    ({"eth0": {"name": ".."}}, True, F + ".eth0.name", "cannot be . or .."),
    ({"eth0": {"name": "lo"}}, True, F + ".eth0.name", "own loopback"),
    ({"lo": {"name": "lo0"}}, True, F + ".lo", "cannot leave its network namespace"),
    ({"eth0": {"name": "x"}, "eth1": {"name": "x"}}, True, F + ".eth1", "as $.linux.netDevices.eth0 does"),
])
def test_config_refusals(oci: Env, devices: dict[str, object], namespaces: bool, where: str,
                         text: str) -> None:
    b = oci.bundle(["true"])
    if not namespaces:
        b.drop_namespace("network")
    b.linux["netDevices"] = devices
    r = oci.run(b).fails()
    assert len(r.err_lines) == 1 and f"config.json {where}: " in r.stderr and text in r.stderr, r.stderr


@pytest.fixture
def rootless(oci: Env, test_user: HostUser) -> Rootless:  # noqa: F811 (the fixture)
    return Rootless(oci, test_user)


def test_rootless_is_refused_with_a_hint(rootless: Rootless) -> None:
    rl = rootless
    b = rl.bundle(["true"])
    b.set_namespace("network")
    b.linux["netDevices"] = {"eth0": {}}
    rl.save(b)
    r = rl.pyoci("run", "--bundle", str(b.path), rl.oci.cid()).fails()
    assert len(r.err_lines) == 1 and "a rootless container cannot move network devices" \
        in r.stderr and "CAP_NET_ADMIN" in r.stderr, r.stderr


def test_features_report_net_devices(oci: Env) -> None:
    feats = oci.pyoci("features").ok().json()
    assert feats["linux"]["netDevices"] == {"enabled": True}


def test_configs_without_net_devices_never_import_pyroute2() -> None:
    """The hot path stays as fast as it was: only a config listing devices
    pays for pyroute2 (tests/unit/test_import_cost.py guards the rest)."""
    repo = Path(__file__).resolve().parents[2]
    code = ("import sys; import pyoci.lifecycle.create, pyoci.spec.load; "
            "print('pyroute2' in sys.modules)")
    out = subprocess.run([str(repo / ".venv" / "bin" / "python"), "-c", code], capture_output=True,
                         text=True, check=True, env={**os.environ, "PYTHONPATH": str(repo)}).stdout
    assert out.strip() == "False"
