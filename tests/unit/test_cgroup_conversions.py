"""The pure conversions behind cgroup limits, update's flags and events:
runc's value syntax, v1 file formats, write order, the stats JSON shape."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyoci.cgroups import common as cgroups
from pyoci.cgroups import stats as cgstats
from pyoci.cgroups.v1 import (
    blkio_device_line,
    is_unset_swappiness,
    memory_order,
    page_size_name,
    rdma_line,
)
from pyoci.cli.events import parse_duration
from pyoci.cli.update import parse_size, resources_from_flags
from pyoci.errors import PyociError, UsageError

MB = 1 << 20


@pytest.mark.parametrize("text,value", [
    ("0", 0), ("1024", 1024), ("64m", 64 * MB), ("64M", 64 * MB), ("64mb", 64 * MB), ("64MiB", 64 * MB),
    ("1.5g", 3 << 29), ("512 kb", 512 << 10), ("2t", 2 << 40), ("-1", -1), ("1b", 1),
])
def test_sizes_as_runc_reads_them(text: str, value: int) -> None:
    assert parse_size(text) == value


@pytest.mark.parametrize("text", ["", "m", "-2", "12x", "1..5m", "1.m", ".5m", "1e3", "64 m b"])
def test_bad_sizes(text: str) -> None:
    with pytest.raises(ValueError):
        parse_size(text)


def test_update_flags_to_resources() -> None:
    opts = {"memory": "64m", "memory-swap": "-1", "cpu-share": "512", "cpu-quota": "-1",
            "cpuset-cpus": "0-1", "pids-limit": "42", "blkio-weight": "300", "cpu-idle": "1",
            "cpu-burst": "1000", "cpuset-mems": ""}
    assert resources_from_flags(opts) == {
        "memory": {"limit": 64 * MB, "swap": -1},
        "cpu": {"shares": 512, "quota": -1, "cpus": "0-1", "idle": 1, "burst": 1000},
        "pids": {"limit": 42},
        "blockIO": {"weight": 300},
    }
    for bad in ({"cpu-share": "-1"}, {"cpu-quota": "1.5"}, {"memory": "lots"}, {"pids-limit": "x"}):
        with pytest.raises(UsageError):
            resources_from_flags(bad)


@pytest.mark.parametrize("text,seconds", [
    ("5s", 5.0), ("100ms", 0.1), ("1m30s", 90.0), ("1h", 3600.0), ("1.5s", 1.5), ("300us", 3e-4),
    ("300\u00b5s", 3e-4), ("10ns", 1e-8), ("0", 0.0), ("-1s", -1.0), ("+2m", 120.0),
])
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5", "s", "1x", "1.2.3s", "--1s", ".s"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize("limit,swap,current,order", [
    (64 * MB, 128 * MB, 32 * MB, ["swap", "limit"]),      # growing: memsw first
    (32 * MB, 64 * MB, 128 * MB, ["limit", "swap"]),      # shrinking: limit first
    (64 * MB, -1, 128 * MB, ["swap", "limit"]),           # unlimited swap first
    (64 * MB, None, 0, ["limit"]),
    (None, 64 * MB, 0, ["swap"]),
    (None, None, 0, []),
])
def test_memory_write_order(limit: int | None, swap: int | None, current: int, order: list[str]) -> None:
    assert memory_order(limit, swap, current) == order


def test_v1_line_formats() -> None:
    assert blkio_device_line({"major": 8, "minor": 0, "rate": 1048576}, "rate") == "8:0 1048576"
    assert blkio_device_line({"major": 254, "minor": 16, "weight": 500}, "weight") == "254:16 500"
    line = rdma_line("mlx5_0", {"hcaHandles": 2, "hcaObjects": 2000})
    assert line == "mlx5_0 hca_handle=2 hca_object=2000"
    assert rdma_line("mlx5_0", {"hcaObjects": 7}) == "mlx5_0 hca_object=7"
    assert [page_size_name(n) for n in (65536, 2 * MB, 32 * MB, 1 << 30)] == ["64KB", "2MB", "32MB", "1GB"]
    assert is_unset_swappiness(None) and is_unset_swappiness(-1) and is_unset_swappiness(2 ** 64 - 1)
    assert not is_unset_swappiness(0) and not is_unset_swappiness(60)


def test_controller_dirs_for_co_mounted_hierarchies() -> None:
    lay = cgroups.Layout({"cpu": "/cg/cpu,cpuacct", "cpuacct": "/cg/cpu,cpuacct", "net_cls": "/cg/net",
                          "net_prio": "/cg/net", "memory": "/cg/memory"}, "/cg/unified")
    paths = {"cpu": "/cg/cpu,cpuacct/c", "net_cls": "/cg/net/c", "memory": "/cg/memory/c",
             "": "/cg/unified/c"}
    assert cgroups.controller_dirs(paths, lay) == {
        "cpu": "/cg/cpu,cpuacct/c", "cpuacct": "/cg/cpu,cpuacct/c", "net_cls": "/cg/net/c",
        "net_prio": "/cg/net/c", "memory": "/cg/memory/c", "": "/cg/unified/c"}


def test_kernel_list_and_blkio_formats() -> None:
    assert cgstats.parse_list("0-2,5,7-8\n") == [0, 1, 2, 5, 7, 8]
    assert cgstats.parse_list("") == []
    text = "8:0 Read 1282048\n8:0 Write 0\n8:16 6792\nTotal 1282048\n"
    assert cgstats.parse_blkio(text) == [
        {"major": 8, "op": "Read", "value": 1282048},    # Go omits zero fields: minor 0
        {"major": 8, "op": "Write"},
        {"major": 8, "minor": 16, "value": 6792},
    ]


def test_v2_stats_shape(tmp_path: Path) -> None:
    """A cgroup2 directory's files as runc's fs2 driver reports them."""
    files = {
        "cpu.stat": "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 10\nnr_throttled 4\n"
                    "throttled_usec 2000\n",
        "cpuset.cpus.effective": "0-1\n", "cpuset.mems.effective": "0\n",
        "memory.current": "4096\n", "memory.max": "max\n", "memory.peak": "8192\n",
        "memory.stat": "anon 4096\nfile 12288\n",
        "memory.events": "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n",
        "memory.swap.current": "0\n", "memory.swap.max": "max\n", "memory.swap.peak": "1024\n",
        "memory.swap.events": "high 0\nmax 2\nfail 0\n",
        "pids.current": "2\n", "pids.max": "max\n",
        "io.stat": "254:0 rbytes=4096 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n",
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    s = cgstats.v2_stats(str(tmp_path))
    assert list(s) == ["cpu", "cpuset", "memory", "pids", "blkio", "hugetlb", "intel_rdt",
                       "network_interfaces"]
    assert s["cpu"] == {"usage": {"total": 1500000, "kernel": 500000, "user": 1000000},
                        "throttling": {"periods": 10, "throttledPeriods": 4, "throttledTime": 2000000}}
    assert s["cpuset"]["cpus"] == [0, 1] and s["cpuset"]["mems"] == [0]
    assert s["memory"]["cache"] == 12288
    assert s["memory"]["usage"] == {"limit": 2 ** 64 - 1, "usage": 4096, "max": 8192, "failcnt": 3}
    # memory + swap, as v1 reports it; the peak is swap's own
    assert s["memory"]["swap"] == {"limit": 2 ** 64 - 1, "usage": 4096, "max": 1024, "failcnt": 2}
    assert s["memory"]["raw"] == {"anon": 4096, "file": 12288}
    assert s["pids"] == {"current": 2}
    assert s["blkio"] == {"ioServiceBytesRecursive": [{"major": 254, "op": "Read", "value": 4096},
                                                      {"major": 254, "op": "Write"}],
                          "ioServicedRecursive": [{"major": 254, "op": "Read", "value": 1},
                                                  {"major": 254, "op": "Write"}]}
    assert s["network_interfaces"] is None and s["intel_rdt"] == {}


def test_v2_stats_without_controllers(tmp_path: Path) -> None:
    """A cgroup2 directory without the memory, pids and io controllers: pids
    counted from cgroup.procs of the cgroup and its sub-cgroups (runc counts
    cgroup.procs too), no limit; memory as runc leaves it."""
    (tmp_path / "cpu.stat").write_text("usage_usec 7\nuser_usec 5\nsystem_usec 2\n")
    (tmp_path / "cgroup.procs").write_text("10\n11\n")
    (tmp_path / "inner" / "a").mkdir(parents=True)
    (tmp_path / "inner" / "cgroup.procs").write_text("12\n")
    (tmp_path / "inner" / "a" / "cgroup.procs").write_text("13\n10\n")
    s = cgstats.v2_stats(str(tmp_path))
    assert s["pids"] == {"current": 4}
    assert s["cpu"] == {"usage": {"total": 7000, "kernel": 2000, "user": 5000}, "throttling": {}}
    empty = {"limit": 0, "failcnt": 0}
    assert s["memory"] == {"usage": empty, "swap": empty, "kernel": empty, "kernelTCP": empty}
    assert s["blkio"] == {} and s["cpuset"] == {k: 0 for k in s["cpuset"]}
    # which reader: the paths create recorded, whatever layout `events` sees
    assert cgstats.collect({"": str(tmp_path)})["pids"] == {"current": 4}
    assert not cgstats.v1_paths({"": "/x"}) and cgstats.v1_paths({"pids": "/x", "": "/y"})
    assert not cgstats.v1_paths({"name=systemd": "/x", "": "/y"})     # v2 with a named v1 hierarchy


def test_counter_watch_reads_its_key(tmp_path: Path) -> None:
    f = tmp_path / "memory.events"
    f.write_text("low 0\nhigh 0\nmax 5\noom 1\noom_kill 1\n")
    w = cgstats.CounterWatch(str(f), "oom_kill")
    assert w.count == 1
    f.write_text("low 0\nhigh 0\nmax 9\noom 4\noom_kill 3\n")
    assert w.check() == (2, False)
    assert w.check() == (0, False)
    w.close()
    assert w.fd == -1


def test_tree_pids_in_order_once_each(tmp_path: Path) -> None:
    (tmp_path / "cgroup.procs").write_text("5\n3\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "cgroup.procs").write_text("3\n9\n")
    (tmp_path / "empty").mkdir()        # no cgroup.procs: passed over
    assert cgroups.tree_pids(str(tmp_path)) == [5, 3, 9]
    assert cgroups.tree_pids(str(tmp_path / "missing")) == []
    paths = {"cpu": str(tmp_path / "missing"), "": str(tmp_path / "sub")}
    assert cgroups.pids(paths, created=list(paths.values())) == [3, 9]
    # a directory pyoci did not create is never read for the container's processes
    assert cgroups.pids(paths, created=[str(tmp_path / "missing")]) == []
    assert cgroups.pids({"cpu": str(tmp_path), "": str(tmp_path / "sub")},
                        created=[str(tmp_path / "sub")]) == [3, 9]


def test_owned_keeps_the_directories_pyoci_made() -> None:
    paths = {"cpu": "/sys/fs/cgroup/cpu/a", "freezer": "/sys/fs/cgroup/freezer/a",
             "": "/sys/fs/cgroup/unified/a"}
    created = ["/sys/fs/cgroup/unified/a", "/sys/fs/cgroup/cpu/a/../b"]
    assert cgroups.owned(paths, created) == {"": "/sys/fs/cgroup/unified/a"}
    assert cgroups.owned(paths, []) == {}


def test_check_not_frozen_reads_the_nearest_existing_directory(tmp_path: Path) -> None:
    """The freezer files as the kernel shows them (plain files here)."""
    freezer, unified = tmp_path / "fs" / "freezer", tmp_path / "fs" / "unified"
    (freezer / "a").mkdir(parents=True)
    (unified / "a").mkdir(parents=True)
    lay = cgroups.Layout({"freezer": str(freezer)}, str(unified))
    paths = {"freezer": str(freezer / "a" / "new"), "": str(unified / "a" / "new")}
    cgroups.check_not_frozen(paths, lay)                 # no state files: thawed
    (freezer / "a" / "freezer.state").write_text("THAWED\n")
    (unified / "a" / "cgroup.freeze").write_text("0\n")
    (unified / "a" / "cgroup.events").write_text("populated 1\nfrozen 0\n")
    cgroups.check_not_frozen(paths, lay)
    (freezer / "a" / "freezer.state").write_text("FROZEN\n")
    with pytest.raises(PyociError, match="container's cgroup unexpectedly frozen: .*/a/new is below .*"
                                         "freezer.state reads FROZEN"):
        cgroups.check_not_frozen(paths, lay)
    (freezer / "a" / "freezer.state").write_text("FREEZING\n")
    with pytest.raises(PyociError, match="reads FREEZING"):
        cgroups.check_not_frozen(paths, lay)
    (freezer / "a" / "freezer.state").write_text("THAWED\n")
    (unified / "a" / "cgroup.events").write_text("populated 1\nfrozen 1\n")   # an ancestor froze it
    with pytest.raises(PyociError, match="cgroup.events says frozen 1"):
        cgroups.check_not_frozen(paths, lay)
    (unified / "a" / "cgroup.events").write_text("populated 1\nfrozen 0\n")
    (unified / "a" / "cgroup.freeze").write_text("1\n")
    with pytest.raises(PyociError, match=r"cgroup.freeze reads 1 \(hint: thaw it"):
        cgroups.check_not_frozen({"": str(unified / "a")}, lay)


def _fake_v1(tmp_path: Path, files: dict[str, str]) -> tuple[dict[str, str], cgroups.Layout]:
    """A directory per controller holding the given files (plain files: the
    writer opens them O_WRONLY without O_CREAT, as it does cgroupfs files)."""
    dirs: dict[str, str] = {}
    for rel, text in files.items():
        ctrl, name = rel.split("/")
        d = tmp_path / ctrl
        d.mkdir(exist_ok=True)
        (d / name).write_text(text)
        dirs[ctrl] = str(d)
    (tmp_path / "unified").mkdir(exist_ok=True)
    (tmp_path / "unified" / "cgroup.max.descendants").write_text("")
    dirs[""] = str(tmp_path / "unified")
    lay = cgroups.Layout({c: f"/mnt/{c}" for c in dirs if c}, str(tmp_path / "unified"))
    return dirs, lay


def test_writer_on_files(tmp_path: Path) -> None:
    from pyoci.cgroups.v1 import Writer

    dirs, lay = _fake_v1(tmp_path, {"memory/memory.limit_in_bytes": "",
                                    "memory/memory.soft_limit_in_bytes": "", "blkio/blkio.bfq.weight": "",
                                    "pids/pids.max": ""})
    Writer({"memory": {"limit": 64 * MB, "reservation": 0}, "blockIO": {"weight": 300},
            "pids": {"limit": -1}, "unified": {"cgroup.max.descendants": "5"}},
           dirs, lay, "$.linux.resources", False).apply()
    assert (tmp_path / "memory" / "memory.limit_in_bytes").read_text() == str(64 * MB)
    assert (tmp_path / "memory" / "memory.soft_limit_in_bytes").read_text() == ""   # 0: not set
    assert (tmp_path / "blkio" / "blkio.bfq.weight").read_text() == "300"          # no blkio.weight
    assert (tmp_path / "pids" / "pids.max").read_text() == "max"
    assert (tmp_path / "unified" / "cgroup.max.descendants").read_text() == "5"


@pytest.mark.parametrize("res,words", [
    ({"memory": {"limit": 64 * MB, "swap": 128 * MB}},
     ["$.linux.resources.memory.swap", "memory.memsw.limit_in_bytes does not exist", "swapaccount=1"]),
    ({"blockIO": {"leafWeight": 10}}, ["blockIO.leafWeight", "blkio.leaf_weight does not exist", "CFQ"]),
    ({"hugepageLimits": [{"pageSize": "3MB", "limit": 1}]}, ["hugepageLimits[0]", "3MB"]),
    ({"hugepageLimits": [{"pageSize": "../x", "limit": 1}]}, ["invalid page size"]),
    ({"network": {"classID": 1}}, ["network.classID", "net_cls cgroup v1 controller is not mounted"]),
    ({"unified": {"memory.max": "1"}}, ["unified['memory.max']", "memory.max does not exist"]),
    ({"unified": {"../x": "1"}}, ["not a cgroup file name"]),
])
def test_writer_names_what_is_missing(tmp_path: Path, res: dict[str, object], words: list[str]) -> None:
    from pyoci.cgroups.v1 import Writer
    from pyoci.errors import PyociError

    dirs, lay = _fake_v1(tmp_path, {"memory/memory.limit_in_bytes": "0\n", "blkio/blkio.bfq.weight": "",
                                    "hugetlb/hugetlb.2MB.limit_in_bytes": ""})
    with pytest.raises(PyociError) as e:
        Writer(res, dirs, lay, "$.linux.resources", False).apply()
    for w in words:
        assert w in str(e.value), (w, str(e.value))


def test_unified_needs_a_cgroup2_mount() -> None:
    from pyoci.cgroups.v1 import Writer
    from pyoci.errors import PyociError

    with pytest.raises(PyociError) as e:
        Writer({"unified": {"cgroup.max.depth": "1"}}, {"pids": "/x"}, cgroups.Layout({"pids": "/p"}, None),
               "$.linux.resources", False).apply()
    assert "no cgroup2 hierarchy" in str(e.value)
