"""cgroup v2 without a kernel: linux.resources -> (file, value, field), the
conversions, validation errors naming the JSON path, the writer's errors
against a fake cgroup directory, and the eBPF device program (its encoding,
and its answers checked by a small BPF interpreter against the rules)."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pyoci.cgroups import bpfdev
from pyoci.cgroups import common as cgroups
from pyoci.cgroups import v2 as cgroup_v2
from pyoci.cgroups.bpfdev import ACC_MKNOD, ACC_READ, ACC_WRITE, DEV_BLOCK, DEV_CHAR, Rule
from pyoci.cgroups.v2 import plan
from pyoci.errors import ConfigError, PyociError

REPO = Path(__file__).resolve().parents[2]
GOOD = REPO / "spec-fixtures" / "config" / "good"
R = "$.linux.resources"
MB = 1024 * 1024


def files(resources: dict[str, Any], **kw: Any) -> list[tuple[str, str, str]]:
    return [w.astuple() for w in plan(resources, **kw)]


def refused(resources: dict[str, Any], field: str, **kw: Any) -> str:
    with pytest.raises(ConfigError) as e:
        plan(resources, **kw)
    assert e.value.field == field, str(e.value)
    assert field in str(e.value)
    return str(e.value)


# -- conversions ------------------------------------------------------------------------------


@pytest.mark.parametrize("shares,weight", [
    # opencontainers/cgroups' table (runc >= 1.3.1, crun >= 1.23)
    (2, 1), (3, 2), (4, 2), (10, 4), (100, 17), (512, 59), (1024, 100), (2048, 174),
    (4096, 303), (262143, 10000), (262144, 10000), (1, 1), (500000, 10000),
])
def test_shares_to_weight(shares: int, weight: int) -> None:
    assert cgroup_v2.shares_to_weight(shares) == weight


def test_shares_to_weight_is_monotonic_and_in_range() -> None:
    last = 0
    for shares in range(2, 262145, 97):
        w = cgroup_v2.shares_to_weight(shares)
        assert 1 <= w <= 10000 and w >= last
        last = w


@pytest.mark.parametrize("blkio,io", [(10, 1), (100, 910), (500, 4950), (1000, 10000)])
def test_blkio_weight_to_io_weight(blkio: int, io: int) -> None:
    assert cgroup_v2.blkio_to_io_weight(blkio) == io


# -- every field --------------------------------------------------------------------------------


def test_pids() -> None:
    assert files({"pids": {"limit": 50}}) == [("pids.max", "50", f"{R}.pids.limit")]
    assert files({"pids": {"limit": 0}}) == [("pids.max", "max", f"{R}.pids.limit")]
    assert files({"pids": {"limit": -1}}) == [("pids.max", "max", f"{R}.pids.limit")]
    assert files({"pids": {}}) == []


def test_memory_limit_reservation_and_swap() -> None:
    assert files({"memory": {"limit": 64 * MB, "swap": 128 * MB, "reservation": 32 * MB}}) == [
        ("memory.swap.max", str(64 * MB), f"{R}.memory.swap"),
        ("memory.max", str(64 * MB), f"{R}.memory.limit"),
        ("memory.low", str(32 * MB), f"{R}.memory.reservation"),
    ]


@pytest.mark.parametrize("memory,out", [
    ({"limit": 64 * MB, "swap": 64 * MB}, [("memory.swap.max", "0"), ("memory.max", str(64 * MB))]),
    ({"limit": 64 * MB, "swap": -1}, [("memory.swap.max", "max"), ("memory.max", str(64 * MB))]),
    ({"limit": -1}, [("memory.swap.max", "max"), ("memory.max", "max")]),
    ({"limit": -1, "swap": 5 * MB}, [("memory.swap.max", str(5 * MB)), ("memory.max", "max")]),
    ({"limit": 64 * MB}, [("memory.max", str(64 * MB))]),
    ({"limit": 64 * MB, "swap": 0}, [("memory.max", str(64 * MB))]),
    ({"reservation": -1}, [("memory.low", "max")]),
    ({"limit": 0, "reservation": 0}, []),
])
def test_memory_swap_conversions(memory: dict[str, int], out: list[tuple[str, str]]) -> None:
    assert [(f, v) for f, v, _ in files({"memory": memory})] == out


def test_swap_without_swap_accounting_is_not_an_error() -> None:
    ws = plan({"memory": {"limit": 64 * MB, "swap": 64 * MB}})
    assert ws[0].file == "memory.swap.max" and ws[0].missing_ok
    ws = plan({"memory": {"limit": 64 * MB, "swap": 96 * MB}})
    assert not ws[0].missing_ok


def test_swap_errors_name_the_field() -> None:
    assert "at least memory.limit" in refused({"memory": {"limit": 64 * MB, "swap": 32 * MB}},
                                              f"{R}.memory.swap")
    assert "needs memory.limit" in refused({"memory": {"swap": 32 * MB}}, f"{R}.memory.swap")
    refused({"memory": {"limit": -5}}, f"{R}.memory.limit")


def test_update_of_swap_alone_uses_the_current_limit() -> None:
    assert files({"memory": {"swap": 96 * MB}}, current={"memory.max": str(64 * MB)}) == [
        ("memory.swap.max", str(32 * MB), f"{R}.memory.swap")]
    assert files({"memory": {"swap": 96 * MB}}, current={"memory.max": "max"}) == [
        ("memory.swap.max", str(96 * MB), f"{R}.memory.swap")]


def test_memory_fields_v2_has_no_knob_for() -> None:
    assert files({"memory": {"swappiness": 10, "kernel": 1, "kernelTCP": 2, "useHierarchy": True,
                             "checkBeforeUpdate": True, "disableOOMKiller": False}}) == []
    assert "cannot disable the OOM killer" in refused({"memory": {"disableOOMKiller": True}},
                                                      f"{R}.memory.disableOOMKiller")


def test_cpu() -> None:
    assert files({"cpu": {"shares": 1024, "quota": 50000, "period": 100000, "burst": 1000,
                          "cpus": "0-1", "mems": "0"}}) == [
        ("cpu.weight", "100", f"{R}.cpu.shares"),
        ("cpu.max.burst", "1000", f"{R}.cpu.burst"),
        ("cpu.max", "50000 100000", f"{R}.cpu.quota"),
        ("cpuset.cpus", "0-1", f"{R}.cpu.cpus"),
        ("cpuset.mems", "0", f"{R}.cpu.mems"),
    ]


@pytest.mark.parametrize("cpu,value", [
    ({"quota": 20000}, "20000"),
    ({"quota": -1}, "max"),
    ({"quota": -1, "period": 50000}, "max 50000"),
    ({"period": 50000}, "max 50000"),
])
def test_cpu_max(cpu: dict[str, int], value: str) -> None:
    assert [(f, v) for f, v, _ in files({"cpu": cpu})] == [("cpu.max", value)]


def test_update_of_period_alone_keeps_the_quota() -> None:
    assert files({"cpu": {"period": 50000}}, current={"cpu.max": "20000 100000"}) == [
        ("cpu.max", "20000 50000", f"{R}.cpu.period")]


def test_cpu_idle_and_shares() -> None:
    assert files({"cpu": {"idle": 1, "shares": 512}}) == [("cpu.idle", "1", f"{R}.cpu.idle")]
    assert files({"cpu": {"idle": 0, "shares": 512}}) == [("cpu.idle", "0", f"{R}.cpu.idle"),
                                                         ("cpu.weight", "59", f"{R}.cpu.shares")]
    assert files({"cpu": {"shares": 0}}) == []


@pytest.mark.parametrize("key", ["realtimeRuntime", "realtimePeriod"])
def test_realtime_is_refused(key: str) -> None:
    assert "realtime" in refused({"cpu": {key: 1000}}, f"{R}.cpu.{key}")
    assert files({"cpu": {key: 0}}) == []


def test_block_io_without_bfq() -> None:
    blkio = {"weight": 500,
             "weightDevice": [{"major": 8, "minor": 0, "weight": 100}, {"major": 8, "minor": 16}],
             "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}],
             "throttleWriteBpsDevice": [{"major": 8, "minor": 0, "rate": 0}],
             "throttleReadIOPSDevice": [{"major": 8, "minor": 0, "rate": 100}],
             "throttleWriteIOPSDevice": [{"major": 253, "minor": 1, "rate": 200}]}
    assert files({"blockIO": blkio}) == [
        ("io.weight", "4950", f"{R}.blockIO.weight"),
        ("io.weight", "8:0 910", f"{R}.blockIO.weightDevice[0]"),
        ("io.max", "8:0 rbps=1048576", f"{R}.blockIO.throttleReadBpsDevice[0]"),
        ("io.max", "8:0 wbps=max", f"{R}.blockIO.throttleWriteBpsDevice[0]"),
        ("io.max", "8:0 riops=100", f"{R}.blockIO.throttleReadIOPSDevice[0]"),
        ("io.max", "253:1 wiops=200", f"{R}.blockIO.throttleWriteIOPSDevice[0]"),
    ]


def test_block_io_weights_with_bfq() -> None:
    blkio = {"weight": 500, "weightDevice": [{"major": 8, "minor": 0, "weight": 100}]}
    assert files({"blockIO": blkio}, bfq=True) == [
        ("io.bfq.weight", "500", f"{R}.blockIO.weight"),
        ("io.bfq.weight", "8:0 100", f"{R}.blockIO.weightDevice[0]"),
    ]


def test_block_io_errors() -> None:
    refused({"blockIO": {"leafWeight": 300}}, f"{R}.blockIO.leafWeight")
    refused({"blockIO": {"weightDevice": [{"major": 8, "minor": 0, "leafWeight": 3}]}},
            f"{R}.blockIO.weightDevice[0].leafWeight")
    refused({"blockIO": {"weight": 5}}, f"{R}.blockIO.weight")
    refused({"blockIO": {"throttleReadBpsDevice": [{"major": -1, "minor": 0, "rate": 1}]}},
            f"{R}.blockIO.throttleReadBpsDevice[0].major")


def test_hugepages() -> None:
    limits = [{"pageSize": "2MB", "limit": 4 * MB}, {"pageSize": "1GB", "limit": 0}]
    assert files({"hugepageLimits": limits}) == [
        ("hugetlb.2MB.max", str(4 * MB), f"{R}.hugepageLimits[0]"),
        ("hugetlb.2MB.rsvd.max", str(4 * MB), f"{R}.hugepageLimits[0]"),
        ("hugetlb.1GB.max", "0", f"{R}.hugepageLimits[1]"),
        ("hugetlb.1GB.rsvd.max", "0", f"{R}.hugepageLimits[1]"),
    ]
    ws = plan({"hugepageLimits": [{"pageSize": "64KB", "limit": 1}]})
    assert [w.missing_ok for w in ws] == [False, True]
    for bad in ("2mb", "../2MB", "2MB/x", "MB", "02MB", ""):
        refused({"hugepageLimits": [{"pageSize": bad, "limit": 1}]}, f"{R}.hugepageLimits[0].pageSize")


def test_rdma() -> None:
    rdma = {"mlx5_1": {"hcaHandles": 3, "hcaObjects": 10000}, "mlx4_0": {"hcaObjects": 7}}
    assert files({"rdma": rdma}) == [
        ("rdma.max", "mlx5_1 hca_handle=3 hca_object=10000", f"{R}.rdma['mlx5_1']"),
        ("rdma.max", "mlx4_0 hca_object=7", f"{R}.rdma['mlx4_0']"),
    ]
    refused({"rdma": {"bad name": {"hcaHandles": 1}}}, f"{R}.rdma['bad name']")


def test_network_is_refused() -> None:
    assert "net_cls" in refused({"network": {"classID": 1048577}}, f"{R}.network.classID")
    refused({"network": {"priorities": [{"name": "eth0", "priority": 5}]}}, f"{R}.network.priorities")
    assert files({"network": {}}) == []


def test_unified_is_written_verbatim_and_last() -> None:
    ws = plan({"unified": {"memory.high": "1073741824", "io.max": "8:0 rbps=1\n8:16 wbps=2"},
               "pids": {"limit": 5}})
    assert [w.astuple() for w in ws] == [
        ("pids.max", "5", f"{R}.pids.limit"),
        ("memory.high", "1073741824", f"{R}.unified['memory.high']"),
        ("io.max", "8:0 rbps=1\n8:16 wbps=2", f"{R}.unified['io.max']"),
    ]
    assert ws[1].by_line and ws[2].by_line


@pytest.mark.parametrize("key", ["../memory.high", "a/b", "", ".", "..", "memory", ".memory",
                                 "memory.", "memory.high\n", "memory high"])
def test_unified_keys_must_be_plain_file_names(key: str) -> None:
    assert "CONTROLLER.PARAMETER" in refused({"unified": {key: "1"}}, f"{R}.unified[{key!r}]")


def test_unknown_fields_are_refused() -> None:
    refused({"memory": {"limt": 5}}, f"{R}.memory.limt")
    refused({"foo": {}}, f"{R}.foo")


def test_device_rules_are_checked() -> None:
    assert files({"devices": [{"allow": False, "access": "rwm"}]}) == []
    refused({"devices": [{"allow": False}, {"allow": True, "type": "x"}]}, f"{R}.devices[1].type")
    refused({"devices": [{"allow": True, "type": "c", "access": "rwx"}]}, f"{R}.devices[0].access")
    refused({"devices": [{"allow": True, "type": "c", "access": ""}]}, f"{R}.devices[0].access")
    refused({"devices": [{"allow": True, "type": "c", "major": -2}]}, f"{R}.devices[0].major")


def test_podman_and_spec_fixtures_convert() -> None:
    """What engines send applies on v2 (spec examples also use v1-only fields)."""
    for f in sorted(GOOD.glob("podman-*.json")):
        res = (json.loads(f.read_text()).get("linux") or {}).get("resources") or {}
        plan(res)
    update = json.loads((REPO / "spec-fixtures/resources/good/podman-root-update.json").read_text())
    assert files(update) == [("memory.swap.max", "134217728", f"{R}.memory.swap"),
                             ("memory.max", "134217728", f"{R}.memory.limit"),
                             ("cpu.weight", "59", f"{R}.cpu.shares")]


def test_controllers_needed() -> None:
    ws = plan({"pids": {"limit": 1}, "memory": {"limit": MB}, "cpu": {"cpus": "0"},
               "unified": {"cgroup.max.depth": "3", "memory.high": "5"}})
    assert cgroup_v2.controllers(ws) == ["pids", "memory", "cpuset"]


# -- the writer against a fake cgroup tree --------------------------------------------------


def fake_tree(tmp: Path, files_in_leaf: list[str], root_controllers: str = "cpu memory pids",
              subtree: str = "") -> tuple[str, str]:
    mount = tmp / "cg"
    leaf = mount / "a" / "b"
    leaf.mkdir(parents=True)
    (mount / "cgroup.controllers").write_text(root_controllers + "\n")
    for d in (mount, mount / "a"):
        (d / "cgroup.subtree_control").write_text(subtree + "\n")
    for f in files_in_leaf:
        (leaf / f).write_text("")
    return str(mount), str(leaf)


def test_ancestors(tmp_path: Path) -> None:
    assert cgroup_v2.ancestors("/sys/fs/cgroup", "/sys/fs/cgroup/a/b/c") == [
        "/sys/fs/cgroup", "/sys/fs/cgroup/a", "/sys/fs/cgroup/a/b"]
    assert cgroup_v2.ancestors("/sys/fs/cgroup", "/sys/fs/cgroup/c") == ["/sys/fs/cgroup"]


def test_enable_controllers_writes_each_missing_one(tmp_path: Path) -> None:
    mount, leaf = fake_tree(tmp_path, [], subtree="cpu")
    failed = cgroup_v2.enable_controllers(mount, leaf, ["cpu", "pids"])
    assert failed == {}
    # a plain file keeps the last write: "+pids" (cpu was there already)
    assert (Path(mount) / "cgroup.subtree_control").read_text().startswith("+pids")
    assert (Path(mount) / "a" / "cgroup.subtree_control").read_text().startswith("+pids")


def test_writer_writes_values(tmp_path: Path) -> None:
    mount, leaf = fake_tree(tmp_path, ["pids.max", "memory.max"])
    cgroup_v2.write(leaf, plan({"pids": {"limit": 7}, "memory": {"limit": MB}}), mount)
    assert (Path(leaf) / "pids.max").read_text() == "7"
    assert (Path(leaf) / "memory.max").read_text() == str(MB)


def test_missing_file_names_field_file_and_controller(tmp_path: Path) -> None:
    mount, leaf = fake_tree(tmp_path, [])
    with pytest.raises(PyociError) as e:
        cgroup_v2.write(leaf, plan({"pids": {"limit": 7}}), mount,
                        failed={"pids": (mount, 16)})
    msg = str(e.value)
    assert msg.startswith(f"{R}.pids.limit: {leaf}/pids.max does not exist: the pids controller is not "
                          f"enabled in {mount}/a/cgroup.subtree_control"), msg
    assert "Device or resource busy" in msg and "has processes of its own" in msg


def test_missing_controller_on_the_host(tmp_path: Path) -> None:
    mount, leaf = fake_tree(tmp_path, [], root_controllers="")
    with pytest.raises(PyociError) as e:
        cgroup_v2.write(leaf, plan({"hugepageLimits": [{"pageSize": "2MB", "limit": 0}]}), mount)
    assert f"{leaf}/hugetlb.2MB.max does not exist: this host's cgroup v2 has no hugetlb controller" \
        in str(e.value)
    assert e.value.field == f"{R}.hugepageLimits[0]"


def test_optional_files_may_be_missing(tmp_path: Path) -> None:
    mount, leaf = fake_tree(tmp_path, ["hugetlb.2MB.max"], root_controllers="hugetlb")
    cgroup_v2.write(leaf, plan({"hugepageLimits": [{"pageSize": "2MB", "limit": 0}]}), mount)
    assert (Path(leaf) / "hugetlb.2MB.max").read_text() == "0"


def test_apply_reads_what_an_update_needs(tmp_path: Path) -> None:
    mount, leaf = fake_tree(tmp_path, ["memory.swap.max", "cpu.max"], subtree="cpu memory")
    (Path(leaf) / "memory.max").write_text(f"{64 * MB}\n")
    (Path(leaf) / "cpu.max").write_text("20000 100000\n")
    cgroup_v2.apply({"memory": {"swap": 96 * MB}, "cpu": {"period": 50000}}, leaf, mount)
    assert (Path(leaf) / "memory.swap.max").read_text() == str(32 * MB)
    assert (Path(leaf) / "cpu.max").read_text().startswith("20000 50000")


def test_apply_uses_bfq_when_the_cgroup_has_it(tmp_path: Path) -> None:
    mount, leaf = fake_tree(tmp_path, ["io.bfq.weight"], root_controllers="io", subtree="io")
    cgroup_v2.apply({"blockIO": {"weight": 300}}, leaf, mount)
    assert (Path(leaf) / "io.bfq.weight").read_text() == "300"


def test_unified_values_are_written_line_by_line(tmp_path: Path) -> None:
    mount, leaf = fake_tree(tmp_path, ["io.max"])
    cgroup_v2.write(leaf, plan({"unified": {"io.max": "8:0 rbps=1\n8:16 wbps=2\n"}}), mount)
    # one write(2) per line, each at offset 0 of the regular file: the last line shows
    assert (Path(leaf) / "io.max").read_text().startswith("8:16 wbps=2")


# -- layout ------------------------------------------------------------------------------


def test_layouts() -> None:
    assert cgroups.is_v2(cgroups.Layout({}, "/sys/fs/cgroup"))
    assert cgroups.is_v2(cgroups.Layout({"name=systemd": "/x"}, "/sys/fs/cgroup"))
    assert not cgroups.is_v2(cgroups.Layout({"pids": "/sys/fs/cgroup/pids"}, "/sys/fs/cgroup/unified"))
    assert not cgroups.is_v2(cgroups.Layout({"pids": "/sys/fs/cgroup/pids"}, None))


def test_v2_default_path_is_beside_our_own_cgroup(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cgroups, "own_cgroups", lambda pid="self": {"": "/user.slice/session-1.scope"})
    v2 = cgroups.Layout({}, "/sys/fs/cgroup")
    assert cgroups.container_paths(None, "x", v2) == {"": "/sys/fs/cgroup/user.slice/x"}
    assert cgroups.container_paths("/a/b", "x", v2) == {"": "/sys/fs/cgroup/a/b"}
    monkeypatch.setattr(cgroups, "own_cgroups", lambda pid="self": {"": "/"})
    assert cgroups.container_paths(None, "x", v2) == {"": "/sys/fs/cgroup/x"}


def test_hot_path_imports_stay_cheap() -> None:
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import pyoci.cgroups.v2, pyoci.cgroups.bpfdev; "
            "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('re', 'enum', 'json', 'typing', 'dataclasses', 'functools', 'collections', 'struct'))))")
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code, str(REPO)], capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == ""


# -- the device program -----------------------------------------------------------------------


def test_encoding_of_deny_all_but_dev_null() -> None:
    insns = bpfdev.build([Rule(False), Rule(True, DEV_CHAR, 1, 3)])
    assert insns == [
        (0x61, 2, 1, 0, 0),          # r2 = ctx->access_type
        (0xBC, 3, 2, 0, 0),          # w3 = w2
        (0x54, 2, 0, 0, 0xFFFF),     # w2 &= 0xffff        (type)
        (0x74, 3, 0, 0, 16),         # w3 >>= 16           (access)
        (0x61, 4, 1, 4, 0),          # r4 = ctx->major
        (0x61, 5, 1, 8, 0),          # r5 = ctx->minor
        (0x55, 2, 0, 3, DEV_CHAR),   # if r2 != c goto +3
        (0x55, 4, 0, 2, 1),          # if r4 != 1 goto +2
        (0x55, 5, 0, 1, 3),          # if r5 != 3 goto +1
        (0x05, 0, 0, 1, 0),          # goto allow
        (0x05, 0, 0, 2, 0),          # goto deny
        (0xB7, 0, 0, 0, 1),          # allow: r0 = 1
        (0x95, 0, 0, 0, 0),          # exit
        (0xB7, 0, 0, 0, 0),          # deny: r0 = 0
        (0x95, 0, 0, 0, 0),          # exit
    ]
    raw = bpfdev.encode(insns)
    assert len(raw) == 8 * 15
    if sys.byteorder == "little":
        assert raw[:8] == bytes([0x61, 0x12, 0, 0, 0, 0, 0, 0])
        assert raw[8 * 2:8 * 3] == bytes([0x54, 0x02, 0, 0, 0xFF, 0xFF, 0, 0])
        assert raw[8 * 6:8 * 7] == bytes([0x55, 0x02, 3, 0, 2, 0, 0, 0])


def test_trivial_programs() -> None:
    allow_all = [(0xB7, 0, 0, 0, 1), (0x95, 0, 0, 0, 0)]
    assert bpfdev.build([]) == allow_all
    assert bpfdev.build([Rule(True)]) == allow_all
    assert bpfdev.build([Rule(False), Rule(True)]) == allow_all
    deny = bpfdev.build([Rule(True, DEV_CHAR, 1, 3), Rule(False)])
    assert len(deny) == 8 and deny[-2:] == [(0xB7, 0, 0, 0, 0), (0x95, 0, 0, 0, 0)]


def test_access_groups() -> None:
    # deny-all, then read-only /dev/null: reads and writes differ, mknod as writes
    rules = [Rule(False), Rule(True, DEV_CHAR, 1, 3, ACC_READ)]
    groups = bpfdev.decisions(rules)
    assert [(m, len(c), d) for m, c, d in groups] == [(ACC_MKNOD | ACC_WRITE, 0, False), (ACC_READ, 1, False)]
    insns = bpfdev.build(rules)
    assert insns[6] == (0x45, 3, 0, 1, ACC_MKNOD | ACC_WRITE)   # if r3 & (m|w) goto +1


def test_type_a_means_every_device_and_access() -> None:
    r = bpfdev.parse_rule({"allow": False, "type": "a", "major": 1, "minor": 3, "access": "r"}, "x")
    assert (r.dtype, r.major, r.minor, r.access) == (0, None, None, 7)
    r = bpfdev.parse_rule({"allow": True}, "x")
    assert (r.dtype, r.major, r.minor, r.access, r.allow) == (0, None, None, 7, True)
    r = bpfdev.parse_rule({"allow": True, "type": "b", "major": 8, "minor": -1, "access": "rw"}, "x")
    assert (r.dtype, r.major, r.minor, r.access) == (DEV_BLOCK, 8, None, ACC_READ | ACC_WRITE)


def test_rules_for_adds_defaults_and_nodes() -> None:
    rules = bpfdev.rules_for([{"allow": False, "access": "rwm"}],
                             [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229},
                              {"path": "/dev/sda", "type": "b", "major": 8, "minor": 0},
                              {"path": "/dev/u", "type": "u", "major": 4, "minor": 1},
                              {"path": "/dev/fifo", "type": "p"}])
    assert rules[0] == Rule(False)
    assert len(rules) == 1 + len(cgroups.DEFAULT_ALLOWED) + 3
    assert rules[1] == Rule(True, DEV_CHAR, 1, 3, 7)
    assert rules[len(cgroups.DEFAULT_ALLOWED)] == Rule(True, DEV_CHAR, 136, None, 7)
    assert rules[-3:] == [Rule(True, DEV_CHAR, 10, 229, ACC_MKNOD), Rule(True, DEV_BLOCK, 8, 0, ACC_MKNOD),
                          Rule(True, DEV_CHAR, 4, 1, ACC_MKNOD)]
    # Podman's deny-all with the defaults: two groups (mknod also for the node), every
    # jump in range
    insns = bpfdev.build(rules)
    run_bpf(insns, DEV_CHAR, 1, 3, ACC_READ)


def run_bpf(insns: list[tuple[int, int, int, int, int]], dtype: int, major: int, minor: int,
            access: int) -> bool:
    """A BPF interpreter for the instructions bpfdev emits, with the checks
    the kernel's verifier would make (no jump out of range, no unreachable
    instruction, registers read only after being written)."""
    reached = set()
    regs: dict[int, int] = {1: -1}          # r1: the context pointer
    ctx = {0: access << 16 | dtype, 4: major, 8: minor}
    pc = 0
    for _ in range(10000):
        assert 0 <= pc < len(insns), f"pc {pc} out of range"
        reached.add(pc)
        code, dst, src, off, imm = insns[pc]
        pc += 1
        if code == 0x61:
            assert regs.get(src) == -1
            regs[dst] = ctx[off]
        elif code == 0xBC:
            regs[dst] = regs[src] & 0xFFFFFFFF
        elif code == 0x54:
            regs[dst] = regs[dst] & imm & 0xFFFFFFFF
        elif code == 0x74:
            regs[dst] = (regs[dst] & 0xFFFFFFFF) >> imm
        elif code == 0xB7:
            regs[dst] = imm
        elif code == 0x05:
            pc += off
        elif code == 0x55:
            if regs[dst] != imm:
                pc += off
        elif code == 0x45:
            if regs[dst] & imm:
                pc += off
        elif code == 0x95:
            assert regs[0] in (0, 1)
            return regs[0] == 1
        else:
            raise AssertionError(f"unexpected opcode {code:#x}")
    raise AssertionError("no exit")


def reference(rules: list[Rule], dtype: int, major: int, minor: int, access: int) -> bool:
    """Last match wins, each access on its own; no match: allowed."""
    for bit in (ACC_READ, ACC_WRITE, ACC_MKNOD):
        if not access & bit:
            continue
        allowed = True
        for r in rules:
            if not r.access & bit:
                continue
            if r.dtype and r.dtype != dtype:
                continue
            if r.major is not None and r.major != major:
                continue
            if r.minor is not None and r.minor != minor:
                continue
            allowed = r.allow
        if not allowed:
            return False
    return True


def reachable(insns: list[tuple[int, int, int, int, int]]) -> set[int]:
    seen: set[int] = set()
    todo = [0]
    while todo:
        i = todo.pop()
        if i in seen or i >= len(insns):
            continue
        seen.add(i)
        code, _d, _s, off, _imm = insns[i]
        if code in (0x05, 0x55, 0x45):
            todo.append(i + 1 + off)
        if code not in (0x05, 0x95):
            todo.append(i + 1)
    return seen


def test_program_agrees_with_the_rules() -> None:
    rng = random.Random(5)
    devices = [(t, ma, mi) for t in (DEV_CHAR, DEV_BLOCK) for ma in (1, 5, 8) for mi in (0, 3, 5)]

    def rand_rule() -> Rule:
        t = rng.choice([0, DEV_CHAR, DEV_CHAR, DEV_BLOCK])
        return Rule(rng.random() < 0.5, t, rng.choice([None, 1, 5, 8]), rng.choice([None, 0, 3, 5]),
                    rng.randint(1, 7))

    for _ in range(400):
        rules = [rand_rule() for _ in range(rng.randint(0, 7))]
        insns = bpfdev.build(rules)
        assert reachable(insns) == set(range(len(insns))), rules
        for dtype, major, minor in devices:
            for access in range(1, 8):
                want = reference(rules, dtype, major, minor, access)
                assert bpfdev.allows(rules, dtype, major, minor, access) == want
                got = run_bpf(insns, dtype, major, minor, access)
                assert got == want, (rules, dtype, major, minor, access)


def test_v1_like_lists() -> None:
    podman = bpfdev.rules_for([{"allow": False, "access": "rwm"},
                               {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"}])
    insns = bpfdev.build(podman)
    assert run_bpf(insns, DEV_CHAR, 1, 3, ACC_READ | ACC_WRITE)
    assert run_bpf(insns, DEV_CHAR, 136, 7, ACC_READ | ACC_WRITE)      # a pty
    assert not run_bpf(insns, DEV_CHAR, 1, 11, ACC_READ)               # /dev/kmsg
    assert not run_bpf(insns, DEV_BLOCK, 1, 3, ACC_READ)               # block 1:3 is not c 1:3
    # allow-all, then a write ban on one device
    rules = [Rule(True), Rule(False, DEV_CHAR, 1, 5, ACC_WRITE)]
    insns = bpfdev.build(rules)
    assert run_bpf(insns, DEV_CHAR, 1, 5, ACC_READ)
    assert not run_bpf(insns, DEV_CHAR, 1, 5, ACC_READ | ACC_WRITE)
    assert run_bpf(insns, DEV_CHAR, 1, 3, ACC_WRITE)


def test_attach_names_the_syscall_on_failure(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        # a plain directory is no cgroup: BPF_PROG_QUERY refuses it
        with pytest.raises(PyociError) as e:
            bpfdev.attach(str(tmp_path), bpfdev.build([Rule(False)]))
        assert str(e.value).startswith(f"bpf(BPF_PROG_QUERY) on {tmp_path}: ")
