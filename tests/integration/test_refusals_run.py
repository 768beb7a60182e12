"""Issue 12 items 1, 2, 6, 17, 18 on the real binary: what is refused is
refused with exactly one stderr line naming the field (or the flag), exit
status 1 (255 for exec, as runc), and nothing left (no state directory; the fixture checks processes
and mounts); what stays allowed still works (a net.* sysctl in the
container's own or a joined network namespace, groups through newgidmap)."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers.ocitest import Bundle, Env, Result
from helpers.users import Rootless, subids


def one_line(r: Result, *needles: str) -> str:
    # a failure of `exec` itself exits 255, as runc's does; every other command 1
    assert r.rc == (255 if "exec" in r.args else 1), str(r)
    lines = r.stderr.splitlines()
    assert len(lines) == 1, f"expected exactly one line on stderr:\n{r}"
    line = lines[0]
    assert line.startswith("pyoci: ") and "internal error" not in line and "Traceback" not in r.stderr, line
    for n in needles:
        assert n in line, f"{n!r} not in {line!r}"
    return line


def without(b: Bundle, ns_type: str) -> None:
    b.linux["namespaces"] = [n for n in b.linux["namespaces"] if n["type"] != ns_type]


def sysctl(key: str, value: str = "1", drop: str | None = None) -> Callable[[Bundle], None]:
    def f(b: Bundle) -> None:
        if drop:
            without(b, drop)
        b.linux["sysctl"] = {key: value}
    return f


def user(**fields: Any) -> Callable[[Bundle], None]:
    return lambda b: b.process["user"].update(fields)


def env(entry: str) -> Callable[[Bundle], None]:
    return lambda b: b.process["env"].append(entry)


CASES: dict[str, tuple[Callable[[Bundle], None], list[str]]] = {
    "net-sysctl-host-netns": (sysctl("net.ipv4.ip_default_ttl", "63", drop="network"),
                              ["$.linux.sysctl['net.ipv4.ip_default_ttl']", "not allowed in host network namespace"]),
    "net-sysctl-slashes": (sysctl("net/ipv4/ip_forward", drop="network"),
                           ["$.linux.sysctl['net/ipv4/ip_forward']", "host network namespace"]),
    "mqueue-sysctl-host-ipc": (sysctl("fs.mqueue.queues_max", "300", drop="ipc"),
                               ["fs.mqueue.queues_max", "host's IPC namespace"]),
    "shm-sysctl-host-ipc": (sysctl("kernel.shmmax", drop="ipc"), ["kernel.shmmax", "host's IPC namespace"]),
    "vm-sysctl": (sysctl("vm.swappiness", "10"), ["vm.swappiness", "not in a separate kernel namespace"]),
    "kernel-sysctl": (sysctl("kernel.core_pattern", "|/x"), ["kernel.core_pattern", "not in a separate"]),
    "hostname-sysctl": (sysctl("kernel.hostname", "x"), ["kernel.hostname", 'conflicts with the OCI "hostname"']),
    "domainname-sysctl": (sysctl("kernel.domainname", "x"), ["kernel.domainname", '"domainname" field']),
    "sysctl-dotdot": (sysctl("net/../../kernel/core_pattern", "|/x"), ["names no file under /proc/sys"]),
    "uid-4294967295": (user(uid=4294967295), ["$.process.user.uid", "0..2147483647"]),
    "gid-4294967295": (user(gid=4294967295), ["$.process.user.gid", "0..2147483647"]),
    "uid-2147483648": (user(uid=2147483648), ["$.process.user.uid", "2147483648"]),
    "additional-gid-4294967295": (user(additionalGids=[4294967295]),
                                  ["$.process.user.additionalGids[0]", "0..2147483647"]),
    "device-uid": (lambda b: b.linux.__setitem__("devices", [{"path": "/dev/fuse", "type": "c", "major": 10,
                                                              "minor": 229, "uid": 4294967295}]),
                   ["$.linux.devices[0].uid"]),
    "env-empty-name": (env("=x"), ["$.process.env[", "empty variable name"]),
    "env-without-equals": (env("FOO"), ["$.process.env[", "not NAME=VALUE"]),
    "empty-root-path": (lambda b: b.config["root"].__setitem__("path", ""), ["$.root.path", "must not be empty"]),
    "cgroups-path-root": (lambda b: b.linux.__setitem__("cgroupsPath", "/"), ["$.linux.cgroupsPath", "root cgroup"]),
    "cgroups-path-root-dot": (lambda b: b.linux.__setitem__("cgroupsPath", "//."), ["$.linux.cgroupsPath"]),
    "cgroups-path-climbs": (lambda b: b.linux.__setitem__("cgroupsPath", "../.."), ["$.linux.cgroupsPath", '".."']),
    "cgroups-path-own": (lambda b: b.linux.__setitem__("cgroupsPath", "."), ["runtime's own cgroup"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_refused(oci: Env, case: str) -> None:
    mutate, needles = CASES[case]
    b = oci.bundle(["true"])
    mutate(b)
    b.save()
    cid = oci.cid()
    for verb in ("create", "run"):
        r = oci.pyoci(verb, "--bundle", str(b.path), cid)
        if r.rc == 0:
            oci.pyoci("delete", "--force", cid)
        one_line(r, *needles)
        assert not (oci.root / cid).exists()
        assert oci.pyoci("state", cid).rc != 0


def test_net_sysctl_in_own_and_joined_netns(oci: Env) -> None:
    """Still allowed: a new network namespace, and one joined by path that
    is not the host's (runc's rule)."""
    host_ttl = Path("/proc/sys/net/ipv4/ip_default_ttl").read_text().strip()
    b = oci.bundle(["cat", "/proc/sys/net/ipv4/ip_default_ttl"])
    b.linux["sysctl"] = {"net/ipv4/ip_default_ttl": "33"}
    r = oci.run(b).ok()
    assert r.stdout.strip() == "33"
    name = f"pyoci-it-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    oci.netns.append(name)
    without(b, "network")
    b.linux["namespaces"].append({"type": "network", "path": f"/run/netns/{name}"})
    b.linux["sysctl"] = {"net.ipv4.ip_default_ttl": "34"}
    assert oci.run(b).ok().stdout.strip() == "34"
    r = subprocess.run(["ip", "netns", "exec", name, "cat", "/proc/sys/net/ipv4/ip_default_ttl"],
                       capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "34"
    # the runtime's own network namespace, joined by path, is the host's
    without(b, "network")
    b.linux["namespaces"].append({"type": "network", "path": "/proc/self/ns/net"})
    b.save()
    one_line(oci.pyoci("run", "--bundle", str(b.path), oci.cid()), "not allowed in host network namespace")
    assert Path("/proc/sys/net/ipv4/ip_default_ttl").read_text().strip() == host_ttl


def test_ipc_sysctl_in_own_ipc_namespace(oci: Env) -> None:
    b = oci.bundle(["cat", "/proc/sys/fs/mqueue/queues_max", "/proc/sys/kernel/shmmni"])
    b.linux["sysctl"] = {"fs.mqueue.queues_max": "77", "kernel/shmmni": "1234"}
    assert oci.run(b).ok().stdout.split() == ["77", "1234"]


# -- exec ------------------------------------------------------------------------------------------

def running(oci: Env) -> str:
    b = oci.bundle(["sleep", "1000"])
    cid = oci.cid()
    oci.pyoci("run", "-d", "--bundle", str(b.path), cid).ok()
    return cid


def test_exec_refusals(oci: Env) -> None:
    cid = running(oci)
    marker = "/tmp/exec-ran"
    try:
        for flags, needles in ((["--user", "4294967295"], ["exec --user", "0..2147483647"]),
                               (["--user", "0:4294967295"], ["exec --user"]),
                               (["--user", "abc"], ["exec --user 'abc'"]),
                               (["-g", "abc"], ["exec --additional-gids 'abc'", "expected a gid"]),
                               (["--additional-gids", "4294967295"], ["exec --additional-gids"]),
                               (["--env", "=x"], ["exec --env", "empty variable name"]),
                               (["-e", "NOEQUALS"], ["exec --env", "not NAME=VALUE"])):
            r = oci.pyoci("exec", *flags, cid, "touch", marker)
            one_line(r, *needles)
        # the same checks before the container is looked up
        one_line(oci.pyoci("exec", "-g", "abc", "no-such-container", "true"), "--additional-gids")
        for proc, field in (({"uid": 4294967295, "gid": 0}, "$.user.uid"),
                            ({"uid": 0, "gid": 4294967295}, "$.user.gid"),
                            ({"uid": 0, "gid": 0, "additionalGids": [4294967295]}, "$.user.additionalGids[0]")):
            f = oci.path(f"process-{uuid.uuid4().hex[:6]}.json")
            f.write_text(json.dumps({"args": ["touch", marker], "cwd": "/", "user": proc,
                                     "env": ["PATH=/bin"]}))
            one_line(oci.pyoci("exec", "--process", str(f), cid), field)
        f = oci.path("process-env.json")
        f.write_text(json.dumps({"args": ["touch", marker], "cwd": "/", "user": {"uid": 0, "gid": 0},
                                 "env": ["=x"]}))
        one_line(oci.pyoci("exec", "--process", str(f), cid), "$.env[0]")
        r = oci.pyoci("exec", cid, "sh", "-c", f"test -e {marker} && echo RAN || echo never")
        assert r.ok().stdout.strip() == "never"
        # what is allowed: the highest id, and --user UID keeping the template's gid
        r = oci.pyoci("exec", "--user", "2147483647:2147483647", "-g", "5", cid, "sh", "-c", "id -u; id -g; id -G")
        assert r.ok().stdout.split() == ["2147483647", "2147483647", "2147483647", "5"]
    finally:
        oci.pyoci("delete", "--force", cid)


# -- rootless additionalGids (item 17) -----------------------------------------------------------

@pytest.fixture
def rl(oci: Env, test_user: Any) -> Rootless:  # noqa: F811
    return Rootless(oci, test_user)


def test_rootless_single_id_map_refuses_additional_gids(rl: Rootless) -> None:
    b = rl.bundle(["id", "-G"])
    b.process["user"]["additionalGids"] = [0]
    rl.save(b)
    cid = rl.oci.cid()
    r = rl.pyoci("run", "--bundle", str(b.path), cid)
    one_line(r, "$.process.user.additionalGids", "cannot set any additional groups in a rootless container")
    assert not (rl.root / cid).exists()
    # exec -g into a single-id-map container: refused too, never dropped
    b2 = rl.bundle(["sleep", "1000"])
    rl.save(b2)
    cid2 = rl.oci.cid()
    rl.pyoci("run", "-d", "--bundle", str(b2.path), cid2).ok()
    try:
        one_line(rl.pyoci("exec", "-g", "0", cid2, "id", "-G"), "cannot set any additional groups")
    finally:
        rl.pyoci("delete", "--force", cid2)


def test_rootless_range_map_applies_additional_gids(rl: Rootless) -> None:
    sub_uid, _ = subids(rl.user, "/etc/subuid")
    sub_gid, _ = subids(rl.user, "/etc/subgid")
    b = rl.bundle(["sleep", "1000"])
    b.linux["uidMappings"] = [{"containerID": 0, "hostID": rl.user.uid, "size": 1},
                              {"containerID": 1, "hostID": sub_uid, "size": 1000}]
    b.linux["gidMappings"] = [{"containerID": 0, "hostID": rl.user.gid, "size": 1},
                              {"containerID": 1, "hostID": sub_gid, "size": 1000}]
    b.process["user"]["additionalGids"] = [10, 20]
    rl.save(b)
    cid = rl.oci.cid()
    rl.pyoci("run", "-d", "--bundle", str(b.path), cid).ok()
    try:
        r = rl.pyoci("exec", cid, "sh", "-c", "id -G; cat /proc/1/status | grep ^Groups")
        out = r.ok().stdout.splitlines()
        assert out[0].split() == ["0", "10", "20"], r.stdout
        assert out[1].split()[1:] == ["10", "20"], r.stdout
        # -g adds to the process's groups, as runc's exec does
        r = rl.pyoci("exec", "-g", "30", "-g", "40", cid, "id", "-G")
        assert r.ok().stdout.split() == ["0", "10", "20", "30", "40"]
        # a gid outside the map: named, not EINVAL from setgroups
        b.process["user"]["additionalGids"] = [10, 5000]
        rl.save(b)
        one_line(rl.pyoci("run", "--bundle", str(b.path), rl.oci.cid()), "$.process.user.additionalGids[1]",
                 "not mapped")
    finally:
        rl.pyoci("delete", "--force", cid)
