"""Rootless done well, the parts that need no kernel: the plan for the sysfs
fallback and idmapped mounts, and the hints errors carry (user namespace
sysctls, network/FUSE storage, idmapped mounts)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pyoci.errors import ConfigError
from pyoci.linux import explain
from pyoci.linux.idmap import _maps_root
from pyoci.plan import mountopts as mo
from pyoci.plan.build import Host, MountIdMap, Op, build_plan
from pyoci.spec.load import parse_config

ROOT = Host(euid=0, egid=0, init_userns=True)
ROOTLESS = Host(euid=1000, egid=1000, init_userns=True)
SYSFS = {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "ro"]}
USERNS = {"namespaces": [{"type": "mount"}, {"type": "user"}],
          "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
          "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}]}


def _cfg(mounts: list[dict[str, Any]], linux: dict[str, Any] | None = None) -> dict[str, Any]:
    return parse_config(json.dumps({
        "ociVersion": "1.2.0", "root": {"path": "rootfs"},
        "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
        "mounts": mounts, "linux": linux or {"namespaces": [{"type": "mount"}]}}))


def _op(plan: Any, target: str) -> Op:
    (op,) = [o for o in plan.ops if o.kind == "mount" and o.target == target]
    return op  # type: ignore[no-any-return]


# -- sysfs ------------------------------------------------------------------------------


def test_sysfs_fallback_only_in_a_user_namespace() -> None:
    plan = build_plan(_cfg([SYSFS]), "/b", "/b/rootfs", ROOT)
    assert "sysfs_fallback" not in _op(plan, "/sys").flags
    plan = build_plan(_cfg([SYSFS], USERNS), "/b", "/b/rootfs", ROOTLESS)
    op = _op(plan, "/sys")
    assert op.flags == ["mkdir", "ordinary_dir", "sysfs_fallback"] and op.mflags & mo.MS_RDONLY
    # root inside someone else's user namespace (rootless Podman) too
    inside = Host(euid=0, egid=0, init_userns=False, setgroups_denied=False)
    assert "sysfs_fallback" in _op(build_plan(_cfg([SYSFS]), "/b", "/b/rootfs", inside), "/sys").flags


def test_setgroups_denied_in_the_callers_namespace_is_inherited() -> None:
    nested = Host(euid=0, egid=0, init_userns=False, setgroups_denied=True)
    plan = build_plan(_cfg([], USERNS), "/b", "/b/rootfs", nested)
    assert plan.idmap is not None and plan.idmap.setgroups == "deny"
    assert plan.process.set_groups is False
    plan = build_plan(_cfg([], USERNS), "/b", "/b/rootfs", ROOT)
    assert plan.idmap is not None and plan.idmap.setgroups is None and plan.process.set_groups


# -- idmapped mounts ------------------------------------------------------------------------


def test_idmap_options_are_parsed() -> None:
    assert mo.parse_options(["rbind", "idmap"]).idmap == "idmap"
    assert mo.parse_options(["ridmap", "idmap"]).idmap == "ridmap"
    assert mo.parse_options(["bind"]).idmap is None
    assert mo.parse_options(["idmap"]).unsupported == []


def test_idmapped_bind_plan() -> None:
    m = {"destination": "/data", "type": "bind", "source": "/srv", "options": ["rbind", "ro"],
         "uidMappings": [{"containerID": 1000, "hostID": 0, "size": 1}],
         "gidMappings": [{"containerID": 2000, "hostID": 0, "size": 2}]}
    op = _op(build_plan(_cfg([m]), "/b", "/b/rootfs", ROOT), "/data")
    assert op.flags == ["mklike", "idmap"]
    assert op.mflags == mo.MS_BIND | mo.MS_REC and op.remount == mo.MS_RDONLY
    assert op.idmap == MountIdMap([(1000, 0, 1)], [(2000, 0, 2)], None, "$.mounts[0].uidMappings")
    assert "idmapped bind mount /srv on /data ($.mounts[0].uidMappings)" == op.describe
    assert op.to_json()["idmap"]["uid_lines"] == [[1000, 0, 1]]
    m["options"] = ["rbind", "ridmap"]
    assert _op(build_plan(_cfg([m]), "/b", "/b/rootfs", ROOT), "/data").flags == ["mklike", "idmap",
                                                                                  "idmap_rec"]


def test_plain_ops_keep_their_json_shape() -> None:
    assert "idmap" not in Op("mount", "/x", "d").to_json()


def test_idmap_option_takes_the_containers_mappings() -> None:
    m = {"destination": "/data", "type": "bind", "source": "/srv", "options": ["bind", "idmap"]}
    op = _op(build_plan(_cfg([m], USERNS), "/b", "/b/rootfs", ROOT), "/data")
    assert op.idmap is not None
    assert (op.idmap.uid_lines, op.idmap.path, op.idmap.field) == ([(0, 1000, 1)], None,
                                                                   "$.mounts[0].options")
    joined = {"namespaces": [{"type": "mount"}, {"type": "user", "path": "/proc/7/ns/user"}]}
    op = _op(build_plan(_cfg([m], joined), "/b", "/b/rootfs", ROOT), "/data")
    assert op.idmap is not None and op.idmap.path == "/proc/7/ns/user"


def test_shared_mappings_share_a_user_namespace_key() -> None:
    a = MountIdMap([(0, 1, 2)], [(0, 1, 2)], None, "$.mounts[0].uidMappings")
    b = MountIdMap([(0, 1, 2)], [(0, 1, 2)], None, "$.mounts[3].uidMappings")
    assert a.key() == b.key()


def test_idmap_on_a_non_bind_mount_is_refused() -> None:
    m = {"destination": "/t", "type": "tmpfs", "source": "tmpfs",
         "uidMappings": [{"containerID": 0, "hostID": 1, "size": 1}],
         "gidMappings": [{"containerID": 0, "hostID": 1, "size": 1}]}
    with pytest.raises(ConfigError) as e:
        build_plan(_cfg([m]), "/b", "/b/rootfs", ROOT)
    assert e.value.field == "$.mounts[0].uidMappings" and "bind mounts only" in str(e.value)


def test_idmap_hints() -> None:
    op = _op(build_plan(_cfg([{"destination": "/k", "type": "bind", "source": "/sys/kernel",
                                "options": ["bind", "idmap"]}], USERNS), "/b", "/b/rootfs", ROOT), "/k")

    def fs(path: str) -> tuple[str, str, str]:
        return ("sysfs", "sysfs", "/sys")

    hint = explain.idmap_hint(op, 22, "mount_setattr(MOUNT_ATTR_IDMAP) on /sys/kernel", fs, euid=0)
    assert hint is not None
    assert "$.mounts[0].options" in hint and "sysfs" in hint and "5.12" in hint
    hint = explain.idmap_hint(op, 1, "open_tree /sys/kernel (clone it ...)", fs, euid=1000)
    assert hint is not None and "run as root" in hint and "is on sysfs" in hint
    hint = explain.idmap_hint(op, 38, "mount_setattr(MOUNT_ATTR_IDMAP) on /sys/kernel", fs, euid=0)
    assert hint is not None and "no mount_setattr" in hint
    assert explain.idmap_hint(op, 1, "move_mount ...", fs, euid=0) is None


# -- user namespace sysctls ------------------------------------------------------------------


def _reader(values: dict[str, str]) -> Any:
    return lambda path: values.get(path)


def test_unshare_user_hint_max_user_namespaces_zero() -> None:
    hint = explain.unshare_user_hint(28, _reader({"/proc/sys/user/max_user_namespaces": "0"}), euid=1000)
    assert "user.max_user_namespaces is 0" in hint and "/proc/sys/user/max_user_namespaces" in hint
    assert "sysctl -w user.max_user_namespaces=15000" in hint and "pyoci doctor" in hint


def test_unshare_user_hint_enospc_says_the_value() -> None:
    hint = explain.unshare_user_hint(28, _reader({"/proc/sys/user/max_user_namespaces": "12"}), euid=1000)
    assert "user.max_user_namespaces is 12" in hint and "ENOSPC" in hint


def test_unshare_user_hint_debian_and_apparmor() -> None:
    hint = explain.unshare_user_hint(1, _reader({
        "/proc/sys/user/max_user_namespaces": "1000",
        "/proc/sys/kernel/unprivileged_userns_clone": "0",
        "/proc/sys/kernel/apparmor_restrict_unprivileged_userns": "1"}), euid=1000)
    assert "kernel.unprivileged_userns_clone is 0" in hint
    assert "sysctl -w kernel.unprivileged_userns_clone=1" in hint
    assert "kernel.apparmor_restrict_unprivileged_userns is 1" in hint
    assert "sysctl -w kernel.apparmor_restrict_unprivileged_userns=0" in hint and "userns," in hint
    assert hint.endswith("run `pyoci doctor` for a full check")


def test_unshare_user_hint_nothing_forbids_it() -> None:
    hint = explain.unshare_user_hint(1, _reader({"/proc/sys/user/max_user_namespaces": "1000"}),
                                     euid=1000)
    assert "seccomp" in hint and "pyoci doctor" in hint
    assert "apparmor" not in hint.lower()


def test_unshare_hint_other_namespaces() -> None:
    from pyoci.plan.build import CLONE_NEWNET, CLONE_NEWPID

    hint = explain.unshare_hint(28, CLONE_NEWPID | CLONE_NEWNET,
                                _reader({"/proc/sys/user/max_pid_namespaces": "0",
                                         "/proc/sys/user/max_net_namespaces": "9"}))
    assert hint is not None and "user.max_pid_namespaces is 0" in hint and "net" not in hint
    hint = explain.unshare_hint(28, CLONE_NEWNET, _reader({"/proc/sys/user/max_net_namespaces": "9"}))
    assert hint is not None and "user.max_net_namespaces=9" in hint
    assert explain.unshare_hint(22, CLONE_NEWNET, _reader({})) is None


def test_child_error_carries_the_unshare_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    from pyoci.native._helper import lib

    from pyoci.native import childerr, spawn

    monkeypatch.setattr(explain, "read_sysctl", _reader({"/proc/sys/user/max_user_namespaces": "0"}))
    monkeypatch.setattr(explain.unshare_user_hint, "__defaults__", (explain.read_sysctl, None))
    msg = spawn.Message(lib.PYOCI_MSG_ERROR, lib.PYOCI_STAGE_NS, lib.PYOCI_STEP_UNSHARE_USER, 28, 0,
                        "unshare(CLONE_NEWUSER)")
    err = childerr.child_error(msg, None)
    text = str(err)
    assert text.startswith("create user namespace: unshare(CLONE_NEWUSER): No space left on device")
    assert "user.max_user_namespaces is 0" in text


# -- storage ----------------------------------------------------------------------------------


def test_storage_hint_names_the_filesystem() -> None:
    def fs(path: str) -> tuple[str, str, str]:
        if path.startswith("/home"):
            return ("nfs4", "srv:/export/home", "/home")
        return ("ext4", "/dev/vda", "/")

    hint = explain.storage_hint(["/var/lib/x", "/home/alice/bundle/rootfs/dev"], fs)
    assert hint is not None
    assert hint.startswith("/home/alice/bundle/rootfs/dev is on nfs4 (srv:/export/home on /home)")
    assert "local filesystem" in hint and "pyoci doctor" in hint and "allow_other" not in hint
    assert explain.storage_hint(["/var/lib/x"], fs) is None

    def fuse(path: str) -> tuple[str, str, str]:
        return ("fuse.sshfs", "me@host:", "/mnt")

    hint = explain.storage_hint(["/mnt/x"], fuse)
    assert hint is not None and "fuse.sshfs" in hint and "allow_other" in hint


def test_op_paths() -> None:
    plan = build_plan(_cfg([{"destination": "/data", "type": "bind", "source": "/srv/d",
                             "options": ["bind"]}], USERNS), "/b", "/b/rootfs", ROOTLESS)
    assert explain.op_paths(_op(plan, "/data"), plan) == ["/srv/d", "/b/rootfs/data"]
    assert explain.op_paths(plan.ops[1], plan) == ["/b/rootfs"]          # mount_host: the rootfs


def test_maps_root() -> None:
    assert _maps_root("0 0 1\n")
    assert not _maps_root("0 1000 1\n1 100000 65536\n")
