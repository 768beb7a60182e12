"""Pure checks of issue 12 items 1, 2, 6, 17, 18 and `exec -g abc`: sysctls
only in namespaces the container owns, ids in 0..2147483647 on every path,
additionalGids never dropped where setgroups is denied, and the inputs runc
refuses (cgroupsPath "/", env "=x", an empty root.path)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from pyoci.errors import ConfigError, PyociError
from pyoci.lifecycle.exec_ import check_exec_flags, parse_groups_flag, parse_user_flag, process_from_args
from pyoci.plan.build import Host, build_exec_plan, build_plan
from pyoci.spec import checks
from pyoci.spec.load import load_process, parse_config

BASE: dict[str, Any] = {
    "ociVersion": "1.2.0",
    "root": {"path": "rootfs"},
    "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}, "env": ["PATH=/bin"]},
    "linux": {"namespaces": [{"type": "mount"}, {"type": "pid"}]},
}
ROOT_HOST = Host(euid=0, egid=0, init_userns=True)


def cfg(namespaces: list[str] | None = None, **linux: Any) -> dict[str, Any]:
    c = copy.deepcopy(BASE)
    if namespaces is not None:
        c["linux"]["namespaces"] = [{"type": t} for t in namespaces]
    c["linux"].update(linux)
    return c


def refused(c: dict[str, Any]) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(json.dumps(c))
    assert str(info.value).startswith(f"config.json {info.value.field}: ")
    return info.value


# -- sysctls (items 1, 6, 18) ------------------------------------------------------------------

@pytest.mark.parametrize("key, missing", [
    ("net.ipv4.ip_default_ttl", "host network namespace"),
    ("net/ipv4/ip_forward", "host network namespace"),
    ("net.core.somaxconn", "host network namespace"),
    ("kernel.shmmax", "host's IPC namespace"),
    ("kernel.msgmnb", "host's IPC namespace"),
    ("kernel.sem", "host's IPC namespace"),
    ("kernel/shm_rmid_forced", "host's IPC namespace"),
    ("fs.mqueue.queues_max", "host's IPC namespace"),
    ("fs/mqueue/msg_max", "host's IPC namespace"),
    ("kernel.hostname", "host's UTS namespace"),
    ("kernel.domainname", "host's UTS namespace"),
])
def test_namespaced_sysctl_needs_its_namespace(key: str, missing: str) -> None:
    e = refused(cfg(["mount", "pid"], sysctl={key: "1"}))
    assert e.field == f"$.linux.sysctl['{key}']"
    assert f'sysctl "{key}"' in str(e) and missing in str(e), str(e)


@pytest.mark.parametrize("key, ns", [
    ("net.ipv4.ip_default_ttl", "network"), ("net/ipv4/conf/eth0.100/forwarding", "network"),
    ("kernel.shmmax", "ipc"), ("fs.mqueue.queues_max", "ipc"), ("kernel/sem", "ipc"),
])
def test_namespaced_sysctl_with_its_namespace(key: str, ns: str) -> None:
    doc = parse_config(json.dumps(cfg(["mount", "pid", ns], sysctl={key: "1"})))
    plan = build_plan(doc, "/b", "/b/rootfs", ROOT_HOST)
    writes = [op.target for op in plan.ops if op.kind == "write_file"]
    sep = "/" if "/" in key else "."
    assert writes == ["/proc/sys/" + "/".join(key.split(sep))]


@pytest.mark.parametrize("key", ["vm.swappiness", "kernel.core_pattern", "kernel.pid_max", "fs.file-max",
                                 "kernel.shm_next_id", "kernel.msgmax.x", "user.max_user_namespaces",
                                 "net", "fs.mqueue", "kernel.pyoci_nope", "dev.tty.ldisc_autoload"])
def test_sysctl_outside_every_namespace(key: str) -> None:
    e = refused(cfg(["mount", "pid", "network", "ipc", "uts"], sysctl={key: "1"}))
    assert f'sysctl "{key}" is not in a separate kernel namespace' in str(e), str(e)


@pytest.mark.parametrize("key", ["kernel.hostname", "kernel.domainname"])
def test_hostname_sysctls_conflict_with_the_fields(key: str) -> None:
    e = refused(cfg(["mount", "pid", "uts"], sysctl={key: "x"}))
    field = key.split(".")[1]
    assert f'conflicts with the OCI "{field}" field' in str(e), str(e)


@pytest.mark.parametrize("key", ["net/../../kernel/core_pattern", "net/ipv4//ip_forward", "net..ipv4",
                                 "net.ipv4.", ".net.ipv4", "net/./ipv4/ip_forward", "net/ipv4/..",
                                 "net.ipv4\u0000.x", "/net/ipv4/ip_forward", "net/ipv4/ip_forward/"])
def test_sysctl_key_never_leaves_proc_sys(key: str) -> None:
    e = refused(cfg(["mount", "pid", "network", "ipc"], sysctl={key: "1"}))
    # (a NUL is refused first, in any string, by pyoci.spec.limits.check_strings)
    assert "names no file under /proc/sys" in str(e) or ("\x00" in key and "NUL" in str(e)), str(e)
    with pytest.raises(ValueError):
        checks.sysctl_parts(key)


def test_net_sysctl_in_a_joined_netns() -> None:
    """As runc: a network namespace joined by path counts unless it is the
    runtime's own (the host's); the same rule for IPC and UTS."""
    own = cfg(["mount"], sysctl={"net.ipv4.ip_forward": "1"})
    own["linux"]["namespaces"].append({"type": "network", "path": "/proc/self/ns/net"})
    e = refused(own)
    assert "not allowed in host network namespace" in str(e)
    ipc = cfg(["mount"], sysctl={"kernel.shmmax": "1"})
    ipc["linux"]["namespaces"].append({"type": "ipc", "path": "/proc/self/ns/ipc"})
    assert "host's IPC namespace" in str(refused(ipc))
    # another namespace (here: a path that is not the caller's own) counts
    other = cfg(["mount"], sysctl={"net.ipv4.ip_forward": "1"})
    other["linux"]["namespaces"].append({"type": "network", "path": "/run/netns/pyoci-not-the-host"})
    parse_config(json.dumps(other))
    assert checks.is_host_namespace("/proc/self/ns/net", "network")
    assert not checks.is_host_namespace("/nonexistent/pyoci-netns", "network")
    assert not checks.is_host_namespace("/proc/self/ns/ipc", "network")


# -- ids (item 2) ------------------------------------------------------------------------------

@pytest.mark.parametrize("field, value", [
    ("uid", 4294967295), ("gid", 4294967295), ("uid", 2147483648), ("gid", 3000000000)])
def test_process_ids_out_of_range(field: str, value: int) -> None:
    c = cfg()
    c["process"]["user"][field] = value
    e = refused(c)
    assert e.field == f"$.process.user.{field}" and "0..2147483647" in str(e) and str(value) in str(e)


def test_additional_gid_out_of_range() -> None:
    c = cfg()
    c["process"]["user"]["additionalGids"] = [10, 4294967295]
    assert refused(c).field == "$.process.user.additionalGids[1]"


def test_highest_id_is_accepted() -> None:
    c = cfg()
    c["process"]["user"] = {"uid": 2147483647, "gid": 2147483647, "additionalGids": [2147483647]}
    plan = build_plan(parse_config(json.dumps(c)), "/b", "/b/rootfs", ROOT_HOST)
    assert (plan.process.uid, plan.process.gid, plan.process.groups) == (2147483647, 2147483647, [2147483647])


@pytest.mark.parametrize("key", ["uid", "gid"])
def test_device_ids_out_of_range(key: str) -> None:
    c = cfg(devices=[{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, key: 4294967295}])
    assert refused(c).field == f"$.linux.devices[0].{key}"


def test_plan_rechecks_ids() -> None:
    """The plan is the last stop before C: an unchecked document (exec's
    template, say) still never gets (uid_t)-1 through."""
    for user, field in (({"uid": 4294967295, "gid": 0}, "$.process.user.uid"),
                        ({"uid": 0, "gid": -1}, "$.process.user.gid"),
                        ({"uid": 0, "gid": 0, "additionalGids": [4294967295]},
                         "$.process.user.additionalGids[0]")):
        with pytest.raises(ConfigError) as info:
            build_exec_plan({"args": ["sh"], "cwd": "/", "user": user}, [], None, ROOT_HOST, False)
        assert info.value.field == field


@pytest.mark.parametrize("where, entry, field", [
    ("linux", {"containerID": 0, "hostID": 4294967295, "size": 1}, "hostID"),
    ("linux", {"containerID": 4294967290, "hostID": 0, "size": 10}, "containerID"),
    ("linux", {"containerID": 0, "hostID": 100000, "size": 0}, "size"),
    ("mount", {"containerID": 0, "hostID": 4294967200, "size": 1000}, "hostID"),
])
def test_id_mappings_out_of_range(where: str, entry: dict[str, int], field: str) -> None:
    c = cfg(["mount", "pid", "user"], uidMappings=[{"containerID": 0, "hostID": 1000, "size": 1}],
            gidMappings=[{"containerID": 0, "hostID": 1000, "size": 1}])
    if where == "linux":
        c["linux"]["gidMappings"] = [entry]
        expect = f"$.linux.gidMappings[0].{field}"
    else:
        c["mounts"] = [{"destination": "/m", "type": "bind", "source": "/tmp", "options": ["rbind"],
                        "uidMappings": [entry], "gidMappings": [entry]}]
        expect = f"$.mounts[0].uidMappings[0].{field}"
    assert refused(c).field == expect


# -- exec flags and --process (item 2, `exec -g abc`, item 18's env) ----------------------------

@pytest.mark.parametrize("user", ["4294967295", "0:4294967295", "2147483648", "-1", "abc", "1:x", ":1",
                                  "1:", "", "99999999999999999999", "１"])
def test_exec_user_flag_refused(user: str) -> None:
    with pytest.raises(PyociError) as info:
        check_exec_flags(user or "x", [], [])
    assert str(info.value).startswith("exec --user ") and "0..2147483647" in str(info.value)


def test_exec_user_flag_accepted() -> None:
    assert parse_user_flag("1000") == (1000, None)
    assert parse_user_flag("1000:2000") == (1000, 2000)
    assert parse_user_flag("2147483647:0") == (2147483647, 0)


@pytest.mark.parametrize("gid", ["abc", "4294967295", "-5", "1.5", ""])
def test_exec_additional_gids_flag_refused(gid: str) -> None:
    with pytest.raises(PyociError) as info:
        check_exec_flags(None, ["5", gid], [])
    assert str(info.value).startswith(f"exec --additional-gids {gid!r}: expected a gid"), str(info.value)
    assert parse_groups_flag(["5", "2147483647"]) == [5, 2147483647]


@pytest.mark.parametrize("env, why", [("=x", "empty variable name"), ("=", "empty variable name"),
                                      ("FOO", "not NAME=VALUE")])
def test_env_entries(env: str, why: str) -> None:
    with pytest.raises(PyociError) as info:
        check_exec_flags(None, [], ["A=1", env])
    assert str(info.value).startswith("exec --env: ") and why in str(info.value)
    c = cfg()
    c["process"]["env"] = ["A=1", env]
    e = refused(c)
    assert e.field == "$.process.env[1]" and why in str(e)
    check_exec_flags(None, [], ["A=", "B==", "C=x=y"])


def test_exec_user_keeps_template_gid() -> None:
    """As runc: `--user UID` alone keeps the container process's gid and
    groups; -g adds to the groups."""
    base = {"args": ["x"], "user": {"uid": 5, "gid": 7, "additionalGids": [9]}}
    p = process_from_args(base, ["id"], env=[], cwd=None, user="6", groups=[], caps=[], tty=False,
                          no_new_privs=False)
    assert p["user"] == {"uid": 6, "gid": 7, "additionalGids": [9]}
    p = process_from_args(base, ["id"], env=[], cwd=None, user="6:8", groups=["1", "2"], caps=[],
                          tty=False, no_new_privs=False)
    assert p["user"] == {"uid": 6, "gid": 8, "additionalGids": [9, 1, 2]}


def test_exec_process_file_ids_and_env(tmp_path: Any) -> None:
    for user, env, field in (({"uid": 4294967295, "gid": 0}, ["A=1"], "$.user.uid"),
                             ({"uid": 0, "gid": 0, "additionalGids": [2147483648]}, ["A=1"],
                              "$.user.additionalGids[0]"),
                             ({"uid": 0, "gid": 0}, ["=x"], "$.env[0]")):
        f = tmp_path / "p.json"
        f.write_text(json.dumps({"args": ["sh"], "cwd": "/", "user": user, "env": env}))
        with pytest.raises(ConfigError) as info:
            load_process(str(f))
        assert info.value.field == field
        assert str(info.value).startswith(f"process file {f} {field}: ")


# -- rootless additionalGids (item 17) ---------------------------------------------------------

def rootless(gid_map: list[dict[str, int]], groups: list[int]) -> dict[str, Any]:
    c = cfg(["mount", "pid", "user"], uidMappings=[{"containerID": 0, "hostID": 1000, "size": 1}],
            gidMappings=gid_map)
    c["process"]["user"]["additionalGids"] = groups
    return parse_config(json.dumps(c))


def test_rootless_single_id_map_refuses_groups() -> None:
    doc = rootless([{"containerID": 0, "hostID": 1000, "size": 1}], [0])
    with pytest.raises(ConfigError) as info:
        build_plan(doc, "/b", "/b/rootfs", Host(euid=1000, egid=1000, init_userns=True))
    assert info.value.field == "$.process.user.additionalGids"
    assert "cannot set any additional groups in a rootless container" in str(info.value)
    # without groups the same config plans (setgroups stays denied)
    doc["process"]["user"]["additionalGids"] = []
    plan = build_plan(doc, "/b", "/b/rootfs", Host(euid=1000, egid=1000, init_userns=True))
    assert plan.idmap is not None and plan.idmap.setgroups == "deny" and not plan.process.set_groups


def test_rootless_range_map_applies_groups() -> None:
    doc = rootless([{"containerID": 0, "hostID": 1000, "size": 1},
                    {"containerID": 1, "hostID": 100000, "size": 65536}], [0, 10, 65536])
    plan = build_plan(doc, "/b", "/b/rootfs", Host(euid=1000, egid=1000, init_userns=True))
    assert plan.idmap_writer == "helper" and plan.process.set_groups and plan.process.groups == [0, 10, 65536]


def test_groups_must_be_mapped() -> None:
    doc = rootless([{"containerID": 0, "hostID": 1000, "size": 1},
                    {"containerID": 1, "hostID": 100000, "size": 100}], [0, 100, 101])
    with pytest.raises(ConfigError) as info:
        build_plan(doc, "/b", "/b/rootfs", Host(euid=1000, egid=1000, init_userns=True))
    assert info.value.field == "$.process.user.additionalGids[2]" and "not mapped" in str(info.value)


def test_nested_root_with_setgroups_denied_refuses_groups() -> None:
    doc = rootless([{"containerID": 0, "hostID": 0, "size": 1}], [0])
    with pytest.raises(ConfigError):
        build_plan(doc, "/b", "/b/rootfs", Host(euid=0, egid=0, init_userns=False, setgroups_denied=True))


def test_exec_plan_refuses_groups_where_setgroups_is_denied() -> None:
    with pytest.raises(ConfigError) as info:
        build_exec_plan({"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0, "additionalGids": [1]}},
                        [], None, ROOT_HOST, True)
    assert info.value.field == "$.process.user.additionalGids"


# -- cgroupsPath and root.path (item 18) -------------------------------------------------------

@pytest.mark.parametrize("path, why", [
    ("/", "root cgroup"), ("//", "root cgroup"), ("/.", "root cgroup"), ("/./", "root cgroup"),
    (".", "runtime's own cgroup"), ("./", "runtime's own cgroup"),
    ("..", '".."'), ("../..", '".."'), ("../../x", '".."'), ("/a/../..", '".."'), ("/a/../b", '".."'),
    ("a/../../b", '".."'), ("..:p:n", '".."'), ("s:..:n", '".."')])
def test_cgroups_path_refused(path: str, why: str) -> None:
    e = refused(cfg(cgroupsPath=path))
    assert e.field == "$.linux.cgroupsPath" and why in str(e), str(e)


@pytest.mark.parametrize("path", ["", "/pyoci/c1", "pyoci/c1", "c1", "/a/./b", "machine.slice:pyoci:c1",
                                  ":pyoci:c1", "/a..b", "...", "/x/.../y"])
def test_cgroups_path_accepted(path: str) -> None:
    parse_config(json.dumps(cfg(cgroupsPath=path)))


def test_empty_root_path() -> None:
    c = cfg()
    c["root"]["path"] = ""
    e = refused(c)
    assert e.field == "$.root.path" and "must not be empty" in str(e)
