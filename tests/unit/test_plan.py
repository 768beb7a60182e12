"""config.json -> Plan (pyoci.plan.build) and mount options (pyoci.plan.mountopts).

Golden files: for every config in spec-fixtures/config/good/*.json the plan
built for a root caller is pinned in spec-fixtures/plans/<name>.json, and for
configs that create a user namespace the plan for an unprivileged caller
(uid/gid 1000) in spec-fixtures/plans/<name>.rootless.json.  A config pyoci
refuses to plan pins {"error": "<message>"} instead.

    PYOCI_UPDATE_GOLDEN=1 python -m pytest tests/unit/test_plan.py

rewrites them; review the diff before committing.
"""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path
from typing import Any

import pytest

from pyoci.errors import ConfigError
from pyoci.plan import mountopts as mo
from pyoci.plan.build import (
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWUSER,
    CLONE_NEWUTS,
    Host,
    build_plan,
)
from pyoci.spec.load import parse_config

REPO = Path(__file__).resolve().parents[2]
GOOD = sorted((REPO / "spec-fixtures" / "config" / "good").glob("*.json"))
PLANS = REPO / "spec-fixtures" / "plans"
UPDATE = os.environ.get("PYOCI_UPDATE_GOLDEN") == "1"

ROOT_HOST = Host(euid=0, egid=0, init_userns=True)
ROOTLESS_HOST = Host(euid=1000, egid=1000, init_userns=True)
BUNDLE = "/bundle"
ROOTFS = "/bundle/rootfs"


def _creates_userns(cfg: dict[str, Any]) -> bool:
    return any(ns.get("type") == "user" and not ns.get("path")
               for ns in (cfg.get("linux") or {}).get("namespaces") or [])


def _cases() -> list[tuple[str, Path, Host]]:
    cases = []
    for path in GOOD:
        cfg = json.loads(path.read_text())
        cases.append((path.stem, path, ROOT_HOST))
        if _creates_userns(cfg):
            cases.append((path.stem + ".rootless", path, ROOTLESS_HOST))
    return cases


CASES = _cases()


def _plan_doc(path: Path, host: Host) -> dict[str, Any]:
    cfg = parse_config(path.read_bytes())
    try:
        plan = build_plan(cfg, BUNDLE, ROOTFS, host)
    except ConfigError as e:
        return {"error": str(e)}
    # through JSON: tuples become lists, as in the golden file
    doc: dict[str, Any] = json.loads(json.dumps(plan.to_json()))
    return doc


def _dump(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


@pytest.mark.parametrize("name,path,host", CASES, ids=[c[0] for c in CASES])
def test_plan_matches_golden(name: str, path: Path, host: Host) -> None:
    doc = _plan_doc(path, host)
    golden = PLANS / f"{name}.json"
    if UPDATE:
        PLANS.mkdir(exist_ok=True)
        if not golden.exists() or golden.read_text() != _dump(doc):
            golden.write_text(_dump(doc))
        return
    assert golden.exists(), f"{golden} is missing: run with PYOCI_UPDATE_GOLDEN=1 and review it"
    want = json.loads(golden.read_text())
    if doc != want:
        diff = "".join(difflib.unified_diff(_dump(want).splitlines(True), _dump(doc).splitlines(True),
                                            f"{golden.name} (golden)", "built now", n=2))
        pytest.fail(f"the plan for {path.name} (euid {host.euid}) changed; if intended, rerun with "
                    f"PYOCI_UPDATE_GOLDEN=1 and review the diff:\n{diff[:4000]}", pytrace=False)


def test_plan_is_deterministic() -> None:
    for _, path, host in CASES:
        assert _plan_doc(path, host) == _plan_doc(path, host), path.name


def test_no_stale_golden_files() -> None:
    expected = {f"{name}.json" for name, _, _ in CASES}
    present = {p.name for p in PLANS.glob("*.json")} if PLANS.exists() else set()
    stale = present - expected
    if UPDATE:
        for n in stale:
            (PLANS / n).unlink()
        return
    assert not stale, f"golden plans without a config: {sorted(stale)}"


# -- targeted plan checks --------------------------------------------------------------


def _minimal(**overrides: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "ociVersion": "1.2.0",
        "root": {"path": "rootfs"},
        "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
        "linux": {"namespaces": [{"type": "mount"}, {"type": "pid"}]},
    }
    for k, v in overrides.items():
        if isinstance(v, dict) and isinstance(cfg.get(k), dict):
            cfg[k].update(v)
        else:
            cfg[k] = v
    return parse_config(json.dumps(cfg))


def _kinds(plan: Any) -> list[str]:
    return [op.kind for op in plan.ops]


def test_ops_order_pivot_after_mounts_and_hooks() -> None:
    cfg = _minimal(mounts=[{"destination": "/proc", "type": "proc", "source": "proc"}],
                   linux={"namespaces": [{"type": "mount"}, {"type": "ipc"}], "maskedPaths": ["/proc/kcore"],
                          "readonlyPaths": ["/proc/sys"], "sysctl": {"kernel.shmmax": "1"}},
                   root={"path": "rootfs", "readonly": True})
    plan = build_plan(cfg, BUNDLE, ROOTFS, ROOT_HOST)
    kinds = _kinds(plan)
    assert kinds[:2] == ["propagation", "mount_host"]
    assert plan.ops[1].source == ROOTFS and plan.ops[1].target == ROOTFS
    pivot = kinds.index("pivot")
    assert kinds.index("hooks_sync") == pivot - 1
    assert kinds.index("mount") < pivot
    for after in ("write_file", "readonly", "mask", "remount"):
        assert kinds.index(after) > pivot, after
    sysctl = plan.ops[kinds.index("write_file")]
    assert sysctl.target == "/proc/sys/kernel/shmmax" and sysctl.data == "1"


def test_namespace_flags_and_joins() -> None:
    cfg = _minimal(linux={"namespaces": [
        {"type": "mount"}, {"type": "pid"}, {"type": "uts"}, {"type": "ipc"},
        {"type": "network", "path": "/run/netns/x"}]}, hostname="h")
    plan = build_plan(cfg, BUNDLE, ROOTFS, ROOT_HOST)
    assert plan.unshare_flags == CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC
    assert not plan.unshare_flags & CLONE_NEWNET
    assert plan.join == [(CLONE_NEWNET, "/run/netns/x")]
    assert plan.hostname == "h"


def test_join_order_user_first_mount_last() -> None:
    cfg = _minimal(linux={"namespaces": [
        {"type": "mount", "path": "/proc/1/ns/mnt"}, {"type": "network", "path": "/proc/1/ns/net"},
        {"type": "user", "path": "/proc/1/ns/user"}, {"type": "pid"}]})
    plan = build_plan(cfg, BUNDLE, ROOTFS, ROOT_HOST)
    kinds = [flag for flag, _ in plan.join]
    assert kinds[0] == CLONE_NEWUSER
    assert kinds[-1] == CLONE_NEWNS


def test_no_mount_namespace_means_chroot_in_the_callers_namespace() -> None:
    cfg = _minimal(linux={"namespaces": [{"type": "pid"}]})
    plan = build_plan(cfg, BUNDLE, ROOTFS, ROOT_HOST)
    assert plan.own_mount_ns is False
    assert not plan.unshare_flags & CLONE_NEWNS
    # no propagation change of the caller's /: that would alter the host
    assert "propagation" not in _kinds(plan)
    (pivot,) = [op for op in plan.ops if op.kind == "pivot"]
    assert pivot.flags == ["chroot"]

    plan = build_plan(_minimal(), BUNDLE, ROOTFS, ROOT_HOST)
    assert plan.own_mount_ns is True
    (pivot,) = [op for op in plan.ops if op.kind == "pivot"]
    assert pivot.flags == []


def test_bind_mount_relative_source_and_flags() -> None:
    cfg = _minimal(mounts=[
        {"destination": "/data", "type": "bind", "source": "data", "options": ["rbind", "ro", "nosuid"]},
        {"destination": "/abs", "source": "/srv/x", "options": ["bind", "rprivate"]},
    ])
    plan = build_plan(cfg, BUNDLE, ROOTFS, ROOT_HOST)
    binds = [op for op in plan.ops if op.kind == "mount" and op.mflags & mo.MS_BIND]
    assert [op.target for op in binds] == ["/data", "/abs"]
    data, ab = binds
    assert data.source == "/bundle/data"
    assert data.mflags == mo.MS_BIND | mo.MS_REC
    assert data.remount == mo.MS_RDONLY | mo.MS_NOSUID
    assert "mklike" in data.flags
    assert ab.source == "/srv/x"
    assert ab.mflags == mo.MS_BIND
    assert ab.propagation == mo.MS_PRIVATE | mo.MS_REC
    assert "$.mounts[0]" in data.describe and "$.mounts[1]" in ab.describe


def test_tmpfs_mount_data() -> None:
    cfg = _minimal(mounts=[{"destination": "/t", "type": "tmpfs", "source": "tmpfs",
                            "options": ["nosuid", "size=1m", "mode=755"]}])
    plan = build_plan(cfg, BUNDLE, ROOTFS, ROOT_HOST)
    (op,) = [op for op in plan.ops if op.target == "/t"]
    assert op.fstype == "tmpfs" and op.data == "size=1m,mode=755" and op.mflags == mo.MS_NOSUID
    assert "mkdir" in op.flags


def test_unsupported_mount_option_names_field() -> None:
    cfg = _minimal(mounts=[{"destination": "/t", "type": "tmpfs", "source": "tmpfs"},
                           {"destination": "/u", "type": "tmpfs", "source": "tmpfs", "options": ["rnosuid"]}])
    with pytest.raises(ConfigError) as e:
        build_plan(cfg, BUNDLE, ROOTFS, ROOT_HOST)
    assert e.value.field == "$.mounts[1].options"
    assert "rnosuid" in str(e.value)


def test_devices_root_mknod_userns_bind() -> None:
    cfg = _minimal(linux={"namespaces": [{"type": "mount"}],
                          "devices": [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229,
                                       "fileMode": 0o600, "uid": 1, "gid": 2}]})
    plan = build_plan(cfg, BUNDLE, ROOTFS, ROOT_HOST)
    nodes = {op.target: op for op in plan.ops if op.kind == "mknod"}
    assert set(nodes) >= {"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty",
                          "/dev/fuse"}
    fuse = nodes["/dev/fuse"]
    assert (fuse.major, fuse.minor, fuse.mode, fuse.uid, fuse.gid) == (10, 229, 0o020600, 1, 2)
    assert (nodes["/dev/null"].major, nodes["/dev/null"].minor) == (1, 3)
    links = {op.target: op.source for op in plan.ops if op.kind == "symlink"}
    assert links["/dev/ptmx"] == "pts/ptmx" and links["/dev/fd"] == "/proc/self/fd"

    cfg = _minimal(linux={"namespaces": [{"type": "mount"}, {"type": "user"}],
                          "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
                          "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}]})
    plan = build_plan(cfg, BUNDLE, ROOTFS, ROOTLESS_HOST)
    assert "mknod" not in _kinds(plan)
    binds = {op.target: op.source for op in plan.ops if op.kind == "bind_dev"}
    assert binds["/dev/null"] == "/dev/null"


def test_idmap_writers() -> None:
    def plan_for(uids: list[dict[str, int]], host: Host) -> Any:
        cfg = _minimal(linux={"namespaces": [{"type": "mount"}, {"type": "user"}],
                              "uidMappings": uids, "gidMappings": uids})
        return build_plan(cfg, BUNDLE, ROOTFS, host)

    own = [{"containerID": 0, "hostID": 1000, "size": 1}]
    p = plan_for(own, ROOTLESS_HOST)
    assert p.idmap_writer == "direct" and p.idmap.setgroups == "deny"
    assert p.idmap.uid_map() == "0 1000 1\n"
    assert p.process.set_groups is False

    wide = own + [{"containerID": 1, "hostID": 200000, "size": 65536}]
    p = plan_for(wide, ROOTLESS_HOST)
    assert p.idmap_writer == "helper" and p.idmap.setgroups is None
    assert p.idmap.uid_map() == "0 1000 1\n1 200000 65536\n"

    p = plan_for([{"containerID": 0, "hostID": 100000, "size": 65536}], ROOT_HOST)
    assert p.idmap_writer == "direct" and p.idmap.setgroups is None
    assert p.unshare_flags & CLONE_NEWUSER


def test_userns_without_mappings_is_refused() -> None:
    cfg = {"ociVersion": "1.2.0", "root": {"path": "rootfs"},
           "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
           "linux": {"namespaces": [{"type": "mount"}, {"type": "user"}]}}
    # the semantic checks refuse it on load ...
    with pytest.raises(ConfigError) as e:
        parse_config(json.dumps(cfg))
    assert e.value.field == "$.linux.uidMappings"
    # ... and the planner on its own too
    with pytest.raises(ConfigError) as e:
        build_plan(cfg, BUNDLE, ROOTFS, ROOTLESS_HOST)
    assert e.value.field == "$.linux.uidMappings"


def test_process_plan() -> None:
    cfg = _minimal(process={
        "args": ["a", "b"], "env": ["X=1"], "cwd": "/w",
        "user": {"uid": 5, "gid": 6, "additionalGids": [7, 8], "umask": 0o27},
        "capabilities": {"bounding": ["CAP_KILL", "CAP_CHOWN"], "ambient": ["CAP_KILL"],
                         "permitted": ["CAP_KILL"], "inheritable": ["CAP_KILL"]},
        "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 10, "hard": 20}],
        "noNewPrivileges": True, "oomScoreAdj": 100})
    p = build_plan(cfg, BUNDLE, ROOTFS, Host(euid=0, egid=0, init_userns=True, preserve_fds=3)).process
    assert (p.args, p.env, p.cwd, p.uid, p.gid, p.groups) == (["a", "b"], ["X=1"], "/w", 5, 6, [7, 8])
    assert p.umask == 0o27 and p.no_new_privs and p.oom_score_adj == 100 and p.preserve_fds == 3
    assert p.set_caps and p.caps["bounding"] == (1 << 5) | (1 << 0) and p.caps["ambient"] == 1 << 5
    assert p.caps["effective"] == 0 and p.notes == []
    assert p.rlimits == [(7, 10, 20)]


def test_ambient_caps_outside_permitted_and_inheritable_are_left_out() -> None:
    """`runc spec`'s default and Buildah's: ambient set, inheritable empty.  The
    kernel refuses to raise those (EPERM); runc and crun go on without them."""
    cfg = _minimal(process={"args": ["sh"], "cwd": "/", "capabilities": {
        "bounding": ["CAP_KILL", "CAP_CHOWN"], "permitted": ["CAP_KILL", "CAP_CHOWN"],
        "inheritable": ["CAP_CHOWN"], "ambient": ["CAP_KILL", "CAP_CHOWN"]}})
    p = build_plan(cfg, BUNDLE, ROOTFS, ROOT_HOST).process
    assert p.caps["ambient"] == 1 << 0
    assert [level for level, _ in p.notes] == ["debug"]
    assert "CAP_KILL" in p.notes[0][1] and "$.process.capabilities.ambient" in p.notes[0][1]


def test_unknown_capabilities_warn_and_are_left_out() -> None:
    """runtime-spec 1.1+: unknown capabilities are a warning, never an error."""
    cfg = _minimal(process={"args": ["sh"], "cwd": "/", "capabilities": {
        "bounding": ["CAP_KILL", "CAP_UNKNOWN"], "permitted": ["NET_ADMIN", "CAP_UNKNOWN"]}})
    p = build_plan(cfg, BUNDLE, ROOTFS, ROOT_HOST).process
    assert p.caps["bounding"] == 1 << 5 and p.caps["permitted"] == 0
    assert p.notes == [
        ("warning", "ignoring unknown capabilities: 'CAP_UNKNOWN' ($.process.capabilities.bounding[1]), "
                    "'NET_ADMIN' ($.process.capabilities.permitted[0], did you mean CAP_NET_ADMIN?)")]


@pytest.mark.parametrize("prop,before,after", [
    (None, mo.MS_SLAVE | mo.MS_REC, 0),
    ("rslave", mo.MS_SLAVE | mo.MS_REC, 0),
    ("private", mo.MS_PRIVATE | mo.MS_REC, 0),
    ("shared", mo.MS_SLAVE | mo.MS_REC, mo.MS_SHARED),
    ("rshared", mo.MS_SLAVE | mo.MS_REC, mo.MS_SHARED | mo.MS_REC),
    ("runbindable", mo.MS_SLAVE | mo.MS_REC, mo.MS_UNBINDABLE | mo.MS_REC),
])
def test_rootfs_propagation(prop: str | None, before: int, after: int) -> None:
    linux: dict[str, Any] = {"namespaces": [{"type": "mount"}]}
    if prop:
        linux["rootfsPropagation"] = prop
    plan = build_plan(_minimal(linux=linux), BUNDLE, ROOTFS, ROOT_HOST)
    assert plan.ops[0].kind == "propagation" and plan.ops[0].mflags == before
    tail = [op for op in plan.ops[2:] if op.kind == "propagation"]
    if after:
        assert len(tail) == 1 and tail[0].mflags == after
        assert _kinds(plan).index("propagation", 1) > _kinds(plan).index("pivot")
    else:
        assert not tail


# -- mount options ---------------------------------------------------------------------------


@pytest.mark.parametrize("options,flags", [
    ([], 0),
    (["ro"], mo.MS_RDONLY),
    (["ro", "rw"], 0),
    (["rw", "ro"], mo.MS_RDONLY),
    (["nosuid", "nodev", "noexec"], mo.MS_NOSUID | mo.MS_NODEV | mo.MS_NOEXEC),
    (["nosuid", "suid"], 0),
    (["nodev", "dev"], 0),
    (["noexec", "exec"], 0),
    (["sync", "async"], 0),
    (["sync"], mo.MS_SYNCHRONOUS),
    (["dirsync"], mo.MS_DIRSYNC),
    (["noatime", "nodiratime"], mo.MS_NOATIME | mo.MS_NODIRATIME),
    (["noatime", "atime"], 0),
    (["relatime"], mo.MS_RELATIME),
    (["relatime", "norelatime"], 0),
    (["strictatime"], mo.MS_STRICTATIME),
    (["lazytime"], mo.MS_LAZYTIME),
    (["nosymfollow"], mo.MS_NOSYMFOLLOW),
    (["bind"], mo.MS_BIND),
    (["rbind"], mo.MS_BIND | mo.MS_REC),
    (["remount", "ro"], mo.MS_REMOUNT | mo.MS_RDONLY),
    (["mand"], mo.MS_MANDLOCK),
    (["silent"], mo.MS_SILENT),
])
def test_mount_flag_options(options: list[str], flags: int) -> None:
    parsed = mo.parse_options(options)
    assert parsed.flags == flags
    assert parsed.data == [] and parsed.unsupported == [] and parsed.propagation == []


def test_mount_data_options_keep_order() -> None:
    parsed = mo.parse_options(["nosuid", "size=64k", "mode=1777", "uid=5", "newinstance", "ptmxmode=0666"])
    assert parsed.flags == mo.MS_NOSUID
    assert parsed.data == ["size=64k", "mode=1777", "uid=5", "newinstance", "ptmxmode=0666"]


def test_mount_propagation_options() -> None:
    parsed = mo.parse_options(["rbind", "rprivate", "shared", "rslave", "unbindable"])
    assert parsed.flags == mo.MS_BIND | mo.MS_REC
    assert parsed.propagation == [mo.MS_PRIVATE | mo.MS_REC, mo.MS_SHARED, mo.MS_SLAVE | mo.MS_REC,
                                  mo.MS_UNBINDABLE]
    assert parsed.is_bind and parsed.recursive


def test_mount_ignored_options() -> None:
    parsed = mo.parse_options(["z", "Z", "tmpcopyup", "notmpcopyup", "copy", "nocopy"])
    assert (parsed.flags, parsed.data, parsed.unsupported) == (0, [], [])


@pytest.mark.parametrize("opt", ["rrw", "rnosuid", "rnoexec", "rnodev", "ratime"])
def test_mount_unsupported_options(opt: str) -> None:
    parsed = mo.parse_options(["ro", opt])
    assert parsed.unsupported == [opt]
    assert opt not in parsed.data


def test_mount_defaults_option_is_not_mount_data() -> None:
    # runc treats "defaults" as a no-op flag; handed to the kernel as data it
    # makes e.g. tmpfs fail with EINVAL.
    parsed = mo.parse_options(["defaults", "nosuid"])
    assert parsed.flags == mo.MS_NOSUID
    assert parsed.data == []


def test_mount_options_not_bind() -> None:
    parsed = mo.parse_options(["ro"])
    assert not parsed.is_bind and not parsed.recursive


def test_rro_makes_the_bind_read_only_all_the_way_down() -> None:
    opts = mo.parse_options(["rbind", "rro"])
    assert opts.recursive_ro and opts.unsupported == []
    cfg = {"ociVersion": "1.2.0", "root": {"path": "rootfs"}, "process": {"args": ["sh"], "cwd": "/"},
           "mounts": [{"destination": "/m", "type": "bind", "source": "/srv", "options": ["rbind", "rro"]}],
           "linux": {"namespaces": [{"type": "mount"}]}}
    plan = build_plan(cfg, "/bundle", "/bundle/rootfs", Host(euid=0, egid=0, init_userns=True))
    op = next(o for o in plan.ops if o.target == "/m")
    assert "recursive_ro" in op.flags
    assert op.remount & 0x1  # MS_RDONLY
