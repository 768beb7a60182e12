"""Which linux.resources fields pyoci knows, and that the rest is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pyoci.cgroups import common as cgroups
from pyoci.cgroups import v1
from pyoci.errors import PyociError

GOOD = Path(__file__).resolve().parents[2] / "spec-fixtures" / "config" / "good"


def test_podman_resources_are_all_known() -> None:
    for f in sorted(GOOD.glob("*.json")):
        res = (json.loads(f.read_text()).get("linux") or {}).get("resources") or {}
        assert cgroups.unsupported(res) == [], f.name


def test_every_runtime_spec_field_is_known() -> None:
    res = {
        "memory": {"limit": 1, "reservation": 1, "swap": 1, "kernel": 1, "kernelTCP": 1, "swappiness": 1,
                   "disableOOMKiller": True, "useHierarchy": True, "checkBeforeUpdate": True},
        "cpu": {"shares": 1, "quota": 1, "burst": 1, "period": 1, "realtimeRuntime": 1, "realtimePeriod": 1,
                "cpus": "0", "mems": "0", "idle": 1},
        "pids": {"limit": 1},
        "blockIO": {"weight": 1, "leafWeight": 1, "weightDevice": [], "throttleReadBpsDevice": [],
                    "throttleWriteBpsDevice": [], "throttleReadIOPSDevice": [],
                    "throttleWriteIOPSDevice": []},
        "hugepageLimits": [{"pageSize": "2MB", "limit": 1}],
        "network": {"classID": 1, "priorities": [{"name": "lo", "priority": 1}]},
        "rdma": {"mlx5_0": {"hcaHandles": 1}},
        "unified": {"memory.high": "1"},
        "devices": [{"allow": False, "access": "rwm"}],
    }
    assert cgroups.unsupported(res) == []


@pytest.mark.parametrize("res,field", [
    ({"memory": {"limt": 1}}, "$.linux.resources.memory.limt"),
    ({"cpu": {"burstiness": 10}}, "$.linux.resources.cpu.burstiness"),
    ({"intelRdt": {"closID": "x"}}, "$.linux.resources.intelRdt"),
])
def test_unknown_fields_are_named(res: dict[str, object], field: str) -> None:
    assert cgroups.unsupported(res) == [field]
    with pytest.raises(PyociError) as e:
        cgroups.check_supported(res)
    assert field in str(e.value)


def test_empty_and_ignored_fields_pass() -> None:
    assert cgroups.unsupported({"blockIO": {}, "memory": {"kernel": 1, "kernelTCP": 2},
                                "devices": [], "hugepageLimits": []}) == []


def test_a_cgroup2_only_host_refuses_limits_with_the_field() -> None:
    lay = cgroups.Layout({}, "/sys/fs/cgroup")
    with pytest.raises(PyociError) as e:
        v1.apply({"memory": {"kernel": 5, "limit": 10}}, {"": "/sys/fs/cgroup/x"}, lay)
    assert "$.linux.resources.memory.limit" in str(e.value)
    # Podman's deny-all device rule alone is not a limit
    v1.apply({"devices": [{"allow": False, "access": "rwm"}]}, {"": "/nonexistent"}, lay)


def test_the_manager_follows_the_layout() -> None:
    from pyoci.cgroups import manager

    def kind(v1: dict[str, str], unified: str | None) -> str:
        return manager.for_layout(cgroups.Layout(v1, unified)).kind

    assert kind({}, "/sys/fs/cgroup") == "v2"
    assert kind({"name=systemd": "/sys/fs/cgroup/systemd"}, "/sys/fs/cgroup/unified") == "v2"
    assert kind({"pids": "/sys/fs/cgroup/pids"}, "/sys/fs/cgroup/unified") == "hybrid"
    assert kind({"pids": "/sys/fs/cgroup/pids"}, None) == "v1"
    assert kind({}, None) == "v1"           # no cgroups at all: limits refused (v1.apply)
    # each checks with its own rules: v2 cannot disable the OOM killer, v1 can
    res = {"memory": {"disableOOMKiller": True}}
    manager.for_layout(cgroups.Layout({"pids": "/p"}, None)).check(res)
    with pytest.raises(PyociError) as e:
        manager.for_layout(cgroups.Layout({}, "/sys/fs/cgroup")).check(res)
    assert "disableOOMKiller" in str(e.value)


def test_a_recorded_container_gets_the_manager_of_its_paths() -> None:
    """kill, delete, pause, ps, exec and events build their manager from the
    paths create recorded (for_paths): the same kind for_layout gives the
    layout those paths came from, and no mountinfo is read for it."""
    from pyoci.cgroups import manager

    def kinds(ctrls: dict[str, str], unified: str | None) -> tuple[str, str]:
        lay = cgroups.Layout(ctrls, unified)
        paths = cgroups.container_paths("/x", "x", lay)
        recorded = manager.for_paths(paths)
        assert recorded._lay is None        # the layout is read only by a method that needs it
        return manager.for_layout(lay).kind, recorded.kind

    for ctrls, unified in [({}, "/sys/fs/cgroup"),
                        ({"name=systemd": "/sys/fs/cgroup/systemd"}, "/sys/fs/cgroup/unified"),
                        ({"pids": "/sys/fs/cgroup/pids", "cpu": "/sys/fs/cgroup/cpu,cpuacct",
                          "cpuacct": "/sys/fs/cgroup/cpu,cpuacct"}, "/sys/fs/cgroup/unified"),
                        ({"pids": "/sys/fs/cgroup/pids"}, None)]:
        want, got = kinds(ctrls, unified)
        assert want == got, (ctrls, unified)
    assert manager.for_paths({}).kind == "v1"       # nothing recorded: nothing layout-specific is asked
