"""linux.resources on cgroup v1, checked by what the kernel does: OOM kills,
a fork bomb stopped at pids.max, CPU throttling, cpuset pinning, device
rules, `update` on a running container, every controller file read back,
and the errors for what this host cannot apply.  Nothing may be left under
the cgroup roots afterwards (checked by each test)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.ocitest import Env, wait_for

CG = Path("/sys/fs/cgroup")
pytestmark = pytest.mark.skipif(not (CG / "pids").is_dir() or not (CG / "memory").is_dir(),
                                reason="needs cgroup v1 controllers (this project's CI layout)")
MB = 1 << 20


def cg_dirs(pid: int) -> dict[str, Path]:
    """controller -> the process's v1 cgroup directory (under /sys/fs/cgroup)."""
    out: dict[str, Path] = {}
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _hid, ctrls, rel = line.split(":", 2)
        for c in ctrls.split(","):
            if c and (CG / ctrls).is_dir():
                out[c] = CG / ctrls / rel.lstrip("/")
    return out


def blkio_weight_file() -> str | None:
    """The v1 weight file this kernel offers: blkio.weight (CFQ), blkio.bfq.weight
    (BFQ), or None: without either I/O scheduler there is no weight to set,
    and the tests leave it out rather than depend on the disk's scheduler."""
    for name in ("blkio.weight", "blkio.bfq.weight"):
        if (CG / "blkio" / name).exists():
            return name
    return None


def a_block_device() -> tuple[int, int] | None:
    """A whole block device of this machine (major, minor), for throttle rules:
    whatever /sys/dev/block lists, never a number assumed from one machine."""
    base = Path("/sys/dev/block")
    if not base.is_dir():
        return None
    for entry in sorted(base.iterdir()):
        if (entry / "partition").exists():
            continue
        major, _, minor = entry.name.partition(":")
        if major.isdigit() and minor.isdigit():
            return int(major), int(minor)
    return None


def read(p: Path) -> str:
    return p.read_text().strip()


def keyed(p: Path) -> dict[str, int]:
    return {k: int(v) for k, v in (ln.split() for ln in p.read_text().splitlines())}


@pytest.fixture
def cgname(oci: Env) -> Iterator[str]:
    """An absolute cgroupsPath unique to the test; asserts afterwards that
    no hierarchy still has it (nothing left under the cgroup roots)."""
    name = f"pyoci-lim-{oci.token[:10]}"
    yield f"/{name}"
    left = [str(CG / c / name) for c in os.listdir(CG) if (CG / c / name).exists()]
    assert not left, f"cgroups left behind: {left}"


def running(oci: Env, resources: dict[str, Any], script: str, cgpath: str | None = None,
            **linux: Any) -> tuple[str, int, dict[str, Path]]:
    """Start a detached container; return (id, init pid, its cgroup dirs)."""
    b = oci.bundle()
    b.sh(script)
    b.linux["resources"] = resources
    if cgpath:
        b.linux["cgroupsPath"] = cgpath
    b.linux.update(linux)
    b.save()
    cid = oci.cid()
    oci.pyoci("run", "--detach", "--bundle", str(b.path), cid).ok()
    pid = oci.state(cid)["pid"]
    return cid, pid, cg_dirs(pid)


def one_error(r: Any) -> str:
    assert r.rc != 0, str(r)
    assert len(r.err_lines) == 1, f"expected one stderr line:\n{r}"
    line: str = r.err_lines[0]
    return line


# -- real outcomes -------------------------------------------------------------------


def test_memory_limit_oom_kills_the_hog(oci: Env, cgname: str) -> None:
    b = oci.bundle()
    b.linux["cgroupsPath"] = cgname
    b.linux["resources"] = {"memory": {"limit": 32 * MB}}
    # awk doubles a string until the kernel kills it
    b.sh('awk "BEGIN{s=\\"a\\"; while (1) s = s s}"; echo awk-rc=$?; '
         "cat /sys/fs/cgroup/memory/memory.limit_in_bytes")
    r = oci.run(b)
    assert r.rc == 0, str(r)
    assert "awk-rc=137" in r.stdout, str(r)            # SIGKILL
    assert str(32 * MB) in r.stdout


def test_oom_kill_counted_and_disable_oom_killer(oci: Env, cgname: str) -> None:
    cid, pid, dirs = running(oci, {"memory": {"limit": 16 * MB, "disableOOMKiller": True}},
                             "sleep 1000", cgname)
    try:
        oc = keyed(dirs["memory"] / "memory.oom_control")
        assert oc["oom_kill_disable"] == 1 and oc["oom_kill"] == 0
    finally:
        oci.pyoci("delete", "--force", cid).ok()


def test_fork_bomb_stops_at_the_pids_limit(oci: Env, cgname: str) -> None:
    # A bounded fork bomb (200 forks at most, so a broken limit cannot take
    # the machine down): every shell forks sleepers until fork fails.
    script = ("i=0; while [ $i -lt 200 ]; do (sleep 1000 &) 2>/dev/null || true; i=$((i+1)); done; "
              "echo done > /dev/null; exec sleep 1000")
    cid, pid, dirs = running(oci, {"pids": {"limit": 12}}, script, cgname)
    try:
        pids_dir = dirs["pids"]
        wait_for(lambda: keyed(pids_dir / "pids.events").get("max", 0) > 0, what="a refused fork")
        time.sleep(0.3)
        procs = read(pids_dir / "cgroup.procs").split()
        print(f"fork bomb under pids.max 12: {len(procs)} processes, pids.current "
              f"{read(pids_dir / 'pids.current')}, refused forks {keyed(pids_dir / 'pids.events')['max']}")
        assert int(read(pids_dir / "pids.current")) <= 12
        assert 1 < len(procs) <= 12, procs
        assert read(pids_dir / "pids.max") == "12"
    finally:
        oci.pyoci("delete", "--force", cid).ok()


def _cpu_share(acct: Path, seconds: float) -> float:
    u0, t0 = int(read(acct / "cpuacct.usage")), time.monotonic()
    time.sleep(seconds)
    u1, t1 = int(read(acct / "cpuacct.usage")), time.monotonic()
    return (u1 - u0) / 1e9 / (t1 - t0)


def test_cpu_quota_throttles_a_busy_loop(oci: Env, cgname: str) -> None:
    cid, pid, dirs = running(oci, {"cpu": {"quota": 20000, "period": 100000}},
                             "while :; do :; done", cgname)
    try:
        share = _cpu_share(dirs["cpuacct"], 2.0)
        stat = keyed(dirs["cpu"] / "cpu.stat")
        print(f"busy loop under a 20% quota: {share:.3f} CPU, cpu.stat {stat}")
        assert 0.10 <= share <= 0.30, share
        assert stat["nr_throttled"] > 0
        # update lifts the quota: the same loop now gets (about) a whole CPU
        oci.pyoci("update", "--cpu-quota", "-1", cid).ok()
        assert read(dirs["cpu"] / "cpu.cfs_quota_us") == "-1"
        share = _cpu_share(dirs["cpuacct"], 1.0)
        print(f"after update --cpu-quota -1: {share:.3f} CPU")
        assert share > 0.45, share
    finally:
        oci.pyoci("delete", "--force", cid).ok()


@pytest.mark.parametrize("cpus", ["0", "1"])
def test_cpuset_pins(oci: Env, cgname: str, cpus: str) -> None:
    if int(cpus) >= (os.cpu_count() or 1):
        pytest.skip("not enough CPUs")
    b = oci.bundle()
    b.linux["cgroupsPath"] = cgname
    b.linux["resources"] = {"cpu": {"cpus": cpus, "mems": "0"}}
    b.sh("grep -E 'Cpus_allowed_list|Mems_allowed_list' /proc/self/status")
    r = oci.run(b)
    assert r.rc == 0, str(r)
    fields = dict(line.split(":\t") for line in r.stdout.splitlines())
    assert fields["Cpus_allowed_list"] == cpus
    assert fields["Mems_allowed_list"] == "0"


def test_device_rule_allows_one_device(oci: Env, cgname: str) -> None:
    # loop0 (b 7:0) exists on the host; a node of it inside the container is
    # readable only with the allow rule (an unbound loop device reads as empty).
    if not Path("/dev/loop0").exists():
        pytest.skip("no /dev/loop0")
    script = "{ head -c 1 /dev/loopx >/dev/null && echo read-ok || echo read-denied; } 2>&1"
    outs = []
    for allow in (False, True):
        b = oci.bundle()
        b.linux["cgroupsPath"] = cgname
        b.linux["devices"] = [{"path": "/dev/loopx", "type": "b", "major": 7, "minor": 0, "fileMode": 0o600}]
        rules: list[dict[str, Any]] = [{"allow": False, "access": "rwm"}]
        if allow:
            rules.append({"allow": True, "type": "b", "major": 7, "minor": 0, "access": "r"})
        b.linux["resources"] = {"devices": rules}
        b.sh(script)
        r = oci.run(b)
        assert r.rc == 0, str(r)
        outs.append(r.stdout)
    assert "read-denied" in outs[0] and "Operation not permitted" in outs[0], outs
    assert "read-ok" in outs[1], outs


# -- update -------------------------------------------------------------------------------


def test_update_flags_change_a_running_container(oci: Env, cgname: str) -> None:
    cid, pid, dirs = running(oci, {"memory": {"limit": 128 * MB}, "cpu": {"shares": 1024},
                                   "pids": {"limit": 100}}, "sleep 1000", cgname)
    # Each flag whose file this kernel may lack is given only where it has
    # it: the weight (CFQ or BFQ scheduler), swap accounting (memsw), the
    # CFS burst (5.14+) and SCHED_IDLE groups (5.15+).
    weight_file = blkio_weight_file()
    memsw = (CG / "memory" / "memory.memsw.limit_in_bytes").exists()
    burst = (CG / "cpu" / "cpu.cfs_burst_us").exists()
    idle = (CG / "cpu" / "cpu.idle").exists()
    try:
        extra = (["--blkio-weight", "200"] if weight_file else []) + \
            (["--memory-swap", "96m"] if memsw else []) + (["--cpu-burst", "5000"] if burst else [])
        oci.pyoci("update", "--memory", "64m", "--memory-reservation", "32M",
                  "--cpu-share", "512", "--cpu-period", "50000", "--cpu-quota", "25000",
                  "--pids-limit", "42", *extra, cid).ok()
        assert read(dirs["memory"] / "memory.limit_in_bytes") == str(64 * MB)
        if memsw:
            assert read(dirs["memory"] / "memory.memsw.limit_in_bytes") == str(96 * MB)
        assert read(dirs["memory"] / "memory.soft_limit_in_bytes") == str(32 * MB)
        assert read(dirs["cpu"] / "cpu.shares") == "512"
        assert read(dirs["cpu"] / "cpu.cfs_period_us") == "50000"
        assert read(dirs["cpu"] / "cpu.cfs_quota_us") == "25000"
        if burst:
            assert read(dirs["cpu"] / "cpu.cfs_burst_us") == "5000"
        assert read(dirs["pids"] / "pids.max") == "42"
        if weight_file:
            assert read(dirs["blkio"] / weight_file) == "200"
        # runc's spellings and aliases
        oci.pyoci("update", "--cpu-shares", "300", "--cpuset-cpus", "0", "--cpuset-mems", "0",
                  "--kernel-memory", "10m", cid).ok()
        assert read(dirs["cpu"] / "cpu.shares") == "300"
        assert read(dirs["cpuset"] / "cpuset.cpus") == "0"
        assert "Cpus_allowed_list:\t0" in Path(f"/proc/{pid}/status").read_text()
        if idle:
            oci.pyoci("update", "--cpu-idle", "1", cid).ok()
            assert read(dirs["cpu"] / "cpu.idle") == "1"
        if memsw:
            # growing memory and swap together: memsw is written first
            oci.pyoci("update", "--memory", "256m", "--memory-swap", "512m", cid).ok()
            assert read(dirs["memory"] / "memory.limit_in_bytes") == str(256 * MB)
            assert read(dirs["memory"] / "memory.memsw.limit_in_bytes") == str(512 * MB)
        # -1: unlimited memory (and memsw with it)
        oci.pyoci("update", "--memory", "-1", cid).ok()
        assert int(read(dirs["memory"] / "memory.limit_in_bytes")) > 1 << 60
        if memsw:
            assert int(read(dirs["memory"] / "memory.memsw.limit_in_bytes")) > 1 << 60
        # a resources document on stdin
        doc = {"pids": {"limit": 9}, "memory": {"limit": 100 * MB}}
        oci.pyoci("update", "--resources", "-", cid, stdin=json.dumps(doc)).ok()
        assert read(dirs["pids"] / "pids.max") == "9"
        assert read(dirs["memory"] / "memory.limit_in_bytes") == str(100 * MB)
        # pids: 0 leaves the limit as it is (runc), below 0 lifts it
        oci.pyoci("update", "--pids-limit", "0", cid).ok()
        assert read(dirs["pids"] / "pids.max") == "9"
        oci.pyoci("update", "--pids-limit", "-1", cid).ok()
        assert read(dirs["pids"] / "pids.max") == "max"
    finally:
        oci.pyoci("delete", "--force", cid).ok()


def test_update_takes_effect(oci: Env, cgname: str) -> None:
    # 16 MB hog under a 128 MB limit lives; after update to 8 MB a new one is killed.
    cid, pid, dirs = running(oci, {"memory": {"limit": 128 * MB}}, "sleep 1000", cgname)
    hog = ["awk", 'BEGIN{s="a"; for (i = 0; i < 24; i++) s = s s; print length(s)}']
    try:
        r = oci.pyoci("exec", cid, *hog)
        assert r.rc == 0 and r.stdout.strip() == str(16 * MB), str(r)
        oci.pyoci("update", "--memory", "8m", cid).ok()
        r = oci.pyoci("exec", cid, *hog)
        assert r.rc == 137, str(r)
        assert keyed(dirs["memory"] / "memory.oom_control")["oom_kill"] >= 1
    finally:
        oci.pyoci("delete", "--force", cid).ok()


def test_update_below_usage_is_refused(oci: Env, cgname: str) -> None:
    # The init holds 16 MB (anonymous, no swap here): the kernel cannot reclaim it.
    script = 'awk "BEGIN{s=\\"a\\"; for (i = 0; i < 24; i++) s = s s; system(\\"sleep 1000\\")}"'
    cid, pid, dirs = running(oci, {"memory": {"limit": 64 * MB}}, script, cgname)
    try:
        mem = dirs["memory"]
        wait_for(lambda: int(read(mem / "memory.usage_in_bytes")) > 16 * MB, what="the hog's memory")
        # checkBeforeUpdate: refused by pyoci before any write
        doc = {"memory": {"limit": 8 * MB, "checkBeforeUpdate": True}}
        line = one_error(oci.pyoci("update", "-r", "-", cid, stdin=json.dumps(doc)))
        assert "memory.limit" in line and "current memory usage" in line, line
        assert read(mem / "memory.limit_in_bytes") == str(64 * MB)
        # without it the kernel refuses (EBUSY) after trying to reclaim
        line = one_error(oci.pyoci("update", "--memory", "8m", cid))
        assert "memory.limit_in_bytes" in line and "Device or resource busy" in line, line
        assert "current usage" in line, line
        assert read(mem / "memory.limit_in_bytes") == str(64 * MB)
    finally:
        oci.pyoci("delete", "--force", cid).ok()


def test_update_errors(oci: Env, cgname: str) -> None:
    cid, pid, dirs = running(oci, {"pids": {"limit": 10}}, "sleep 1000", cgname)
    try:
        for args, text in [(["--memory", "12x"], "invalid value for --memory"),
                           (["--cpu-share", "-5"], "invalid value for --cpu-share"),
                           (["--cpuset-cpus", "99"], "resources.cpu.cpus"),
                           (["--l3-cache-schema", "L3:0=f"], "Intel RDT"),
                           (["-r", "-", "--memory", "1m"], "cannot be combined")]:
            line = one_error(oci.pyoci("update", *args, cid, stdin="{}"))
            assert text in line, (args, line)
        assert read(dirs["pids"] / "pids.max") == "10"
    finally:
        oci.pyoci("delete", "--force", cid).ok()
    line = one_error(oci.pyoci("update", "--memory", "1m", cid))
    assert "does not exist" in line


# -- every file read back ----------------------------------------------------------------------


def test_all_v1_fields_read_back(oci: Env, cgname: str) -> None:
    res: dict[str, Any] = {
        "memory": {"limit": 64 * MB, "reservation": 32 * MB, "swap": 128 * MB, "swappiness": 10,
                   "disableOOMKiller": False, "kernel": 0, "kernelTCP": 16 * MB, "useHierarchy": True},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "burst": 10000, "cpus": "0", "mems": "0"},
        "pids": {"limit": 30},
        "unified": {"cgroup.max.descendants": "5"},
    }
    # Fields whose file this kernel may lack are left out where it does.
    memsw = (CG / "memory" / "memory.memsw.limit_in_bytes").exists()
    tcp = (CG / "memory" / "memory.kmem.tcp.limit_in_bytes").exists()
    burst = (CG / "cpu" / "cpu.cfs_burst_us").exists()
    if not memsw:
        del res["memory"]["swap"]
    if not tcp:
        del res["memory"]["kernelTCP"]
    if not burst:
        del res["cpu"]["burst"]
    # Block I/O: a weight only where the kernel has a weight file (CFQ or
    # BFQ), throttles on a block device this machine has.
    weight_file = blkio_weight_file()
    dev = a_block_device()
    blockio: dict[str, Any] = {"weight": 300} if weight_file else {}
    if dev is not None:
        maj, mnr = dev
        blockio.update({"throttleReadBpsDevice": [{"major": maj, "minor": mnr, "rate": MB}],
                        "throttleWriteBpsDevice": [{"major": maj, "minor": mnr, "rate": 2 * MB}],
                        "throttleReadIOPSDevice": [{"major": maj, "minor": mnr, "rate": 100}],
                        "throttleWriteIOPSDevice": [{"major": maj, "minor": mnr, "rate": 200}]})
    if blockio and (CG / "blkio").is_dir():
        res["blockIO"] = blockio
    cid, pid, d = running(oci, res, "sleep 1000", cgname)
    try:
        expect = {
            d["memory"] / "memory.limit_in_bytes": str(64 * MB),
            d["memory"] / "memory.soft_limit_in_bytes": str(32 * MB),
            d["memory"] / "memory.swappiness": "10",
            d["cpu"] / "cpu.shares": "512",
            d["cpu"] / "cpu.cfs_quota_us": "50000",
            d["cpu"] / "cpu.cfs_period_us": "100000",
            d["cpuset"] / "cpuset.cpus": "0",
            d["cpuset"] / "cpuset.mems": "0",
            d["pids"] / "pids.max": "30",
        }
        if memsw:
            expect[d["memory"] / "memory.memsw.limit_in_bytes"] = str(128 * MB)
        if tcp:
            expect[d["memory"] / "memory.kmem.tcp.limit_in_bytes"] = str(16 * MB)
        if burst:
            expect[d["cpu"] / "cpu.cfs_burst_us"] = "10000"
        if "blockIO" in res and weight_file:
            expect[d["blkio"] / weight_file] = "300"
        if "blockIO" in res and dev is not None:
            key = f"{dev[0]}:{dev[1]}"
            expect[d["blkio"] / "blkio.throttle.read_bps_device"] = f"{key} {MB}"
            expect[d["blkio"] / "blkio.throttle.write_bps_device"] = f"{key} {2 * MB}"
            expect[d["blkio"] / "blkio.throttle.read_iops_device"] = f"{key} 100"
            expect[d["blkio"] / "blkio.throttle.write_iops_device"] = f"{key} 200"
        got = {str(p): read(p) for p in expect}
        assert got == {str(p): v for p, v in expect.items()}
        assert keyed(d["memory"] / "memory.oom_control")["oom_kill_disable"] == 0
        unified = Path(f"/sys/fs/cgroup/unified{cgname}/cgroup.max.descendants")
        if Path("/sys/fs/cgroup/unified").is_dir():
            assert read(unified) == "5"
    finally:
        oci.pyoci("delete", "--force", cid).ok()


def test_realtime_fields(oci: Env, cgname: str) -> None:
    if not (CG / "cpu" / "cpu.rt_runtime_us").exists():
        pytest.skip("no RT group scheduling")
    # The parent (the hierarchy's root here) grants 950000 us of realtime time.
    cid, pid, d = running(oci, {"cpu": {"realtimePeriod": 1000000, "realtimeRuntime": 10000}},
                          "sleep 1000", cgname)
    try:
        assert read(d["cpu"] / "cpu.rt_period_us") == "1000000"
        assert read(d["cpu"] / "cpu.rt_runtime_us") == "10000"
    finally:
        oci.pyoci("delete", "--force", cid).ok()


NS_SCRIPT = r"""
set -e
mkdir -p "$CGM/net_cls,net_prio"
mount -t cgroup -o net_cls,net_prio none "$CGM/net_cls,net_prio"
if [ -n "$HUGETLB" ]; then
  mkdir -p "$CGM/hugetlb"
  mount -t cgroup -o hugetlb none "$CGM/hugetlb" || echo hugetlb-busy
fi
"$PYOCI" --root "$ROOT" run --detach --bundle "$BUNDLE" "$CID"
pid=$("$PYOCI" --root "$ROOT" state "$CID" | sed -n 's/.*"pid": \([0-9]*\).*/\1/p')
rel=$(grep net_cls /proc/$pid/cgroup | cut -d: -f3)
echo "classid=$(cat "$CGM/net_cls,net_prio$rel/net_cls.classid")"
echo "ifpriomap=$(grep '^lo ' "$CGM/net_cls,net_prio$rel/net_prio.ifpriomap")"
if [ -d "$CGM/hugetlb$rel" ]; then
  echo "hugetlb=$(cat "$CGM/hugetlb$rel/hugetlb.2MB.limit_in_bytes")"
  [ -f "$CGM/hugetlb$rel/hugetlb.2MB.rsvd.limit_in_bytes" ] && \
    echo "rsvd=$(cat "$CGM/hugetlb$rel/hugetlb.2MB.rsvd.limit_in_bytes")"
fi
"$PYOCI" --root "$ROOT" delete --force "$CID"
echo "left=$(ls -d "$CGM/net_cls,net_prio$rel" "$CGM/hugetlb$rel" 2>/dev/null | wc -l)"
# A v1 hierarchy unmounted while a removed cgroup of it is still being freed
# stays in the kernel (and keeps hugetlb from cgroup2): wait for the root alone.
for i in $(seq 200); do
  awk '$1 == "net_cls" || ($1 == "hugetlb" && $2 != 0) { if ($3 != 1) busy = 1 } END { exit busy }' \
    /proc/cgroups && break
  sleep 0.05
done
umount "$CGM/net_cls,net_prio"
umount "$CGM/hugetlb" 2>/dev/null || true
"""


def _v1_hierarchy(ctrl: str) -> int:
    for line in Path("/proc/cgroups").read_text().splitlines()[1:]:
        name, hierarchy, _n, _enabled = line.split()
        if name == ctrl:
            return int(hierarchy)
    return 0


def _release_hierarchies(ctrls: list[str]) -> list[str]:
    """Make sure the test's v1 hierarchies are gone (remount and unmount one
    that outlived its mount namespace); return those that were left."""
    left = [c for c in ctrls if _v1_hierarchy(c)]
    for c in left:
        opts = "net_cls,net_prio" if c in ("net_cls", "net_prio") else c
        subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                        f"d=$(mktemp -d); mount -t cgroup -o {opts} none $d && umount $d; rmdir $d"],
                       capture_output=True, timeout=30)
    return left


def test_net_cls_net_prio_hugetlb_in_a_private_mount_namespace(oci: Env, cgname: str) -> None:
    """This host mounts no net_cls, net_prio or hugetlb v1 hierarchy: the test
    mounts them (net_cls and net_prio co-mounted, as most v1 hosts do) in a
    mount namespace of its own and runs pyoci there.  hugetlb only when
    /sys/kernel/mm/hugepages has 2 MB pages and cgroup2 does not use it."""
    from helpers.ocitest import PYOCI

    hugetlb = Path("/sys/kernel/mm/hugepages/hugepages-2048kB").is_dir()
    b = oci.bundle(["sleep", "1000"])
    b.linux["cgroupsPath"] = cgname
    b.linux["resources"] = {"network": {"classID": 0x100001, "priorities": [{"name": "lo", "priority": 7}]}}
    if hugetlb:
        b.linux["resources"]["hugepageLimits"] = [{"pageSize": "2MB", "limit": 8 * 2 * MB}]
    b.save()
    cid = oci.cid()
    env = oci.base_env({"CGM": str(oci.mkdir("cgm")), "PYOCI": PYOCI, "ROOT": str(oci.root),
                        "BUNDLE": str(b.path), "CID": cid, "HUGETLB": "1" if hugetlb else ""})
    before = {c: _v1_hierarchy(c) for c in ("net_cls", "hugetlb")}
    if any(before.values()):
        pytest.skip(f"this host has these v1 hierarchies already: {before}")
    try:
        p = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", NS_SCRIPT],
                           capture_output=True, text=True, env=env, timeout=60)
    finally:
        time.sleep(0.1)
        left = _release_hierarchies(["net_cls", "hugetlb"])
    assert not left, f"v1 hierarchies outlived the test's mount namespace: {left}"
    if "hugetlb-busy" in p.stdout:
        pytest.skip("hugetlb is in use on the cgroup2 hierarchy")
    assert p.returncode == 0, p.stdout + p.stderr
    print(p.stdout)
    out = dict(line.split("=", 1) for line in p.stdout.splitlines() if "=" in line)
    assert out["classid"] == str(0x100001)
    assert out["ifpriomap"] == "lo 7"
    if hugetlb:
        assert out["hugetlb"] == str(16 * MB)
        if "rsvd" in out:
            assert out["rsvd"] == str(16 * MB)
    assert out["left"] == "0"


# -- what this host cannot apply ----------------------------------------------------------


def _v2_has(ctrl: str) -> bool:
    try:
        return ctrl in (CG / "unified" / "cgroup.controllers").read_text().split()
    except OSError:
        return False


@pytest.mark.parametrize("res,expect", [
    ({"rdma": {"mlx5_0": {"hcaHandles": 2}}}, ["$.linux.resources.rdma.mlx5_0", "rdma cgroup v1 controller"]),
    ({"network": {"classID": 1}}, ["$.linux.resources.network.classID", "net_cls cgroup v1 controller"]),
    ({"hugepageLimits": [{"pageSize": "2MB", "limit": 2097152}]},
     ["$.linux.resources.hugepageLimits[0]", "hugetlb cgroup v1 controller"]),
    ({"blockIO": {"leafWeight": 100}}, ["$.linux.resources.blockIO.leafWeight", "blkio.leaf_weight",
                                        "does not exist"]),
    ({"unified": {"memory.max": "1000000"}}, ['unified[\'memory.max\']', "memory.max does not exist"]),
    ({"memory": {"swappiness": 101}}, ["$.linux.resources.memory.swappiness", "0-100"]),
    ({"cpu": {"quota": 10}}, ["$.linux.resources.cpu.quota", "cpu.cfs_quota_us", "Invalid argument"]),
    ({"cpu": {"shares": 1}}, ["$.linux.resources.cpu.shares", "minimum allowed cpu shares is 2"]),
    # (an unknown key such as memory.foo is ignored, as the runtime-spec's
    # Extensibility rule requires: tests/integration/test_unknown_properties_run.py)
])
def test_what_the_host_cannot_apply_is_an_error(oci: Env, cgname: str, res: dict[str, Any],
                                                expect: list[str]) -> None:
    ctrl = {"rdma": "rdma", "network": "net_cls", "hugepageLimits": "hugetlb"}.get(next(iter(res)))
    if ctrl and (CG / ctrl).exists():
        pytest.skip(f"this host mounts {ctrl}")
    if "leafWeight" in str(res) and not (CG / "blkio").is_dir():
        pytest.skip("no blkio")
    if "leafWeight" in str(res) and (CG / "blkio" / "blkio.leaf_weight").exists():
        pytest.skip("this kernel has blkio.leaf_weight (CFQ): the field applies here")
    b = oci.bundle()
    b.linux["cgroupsPath"] = cgname
    b.linux["resources"] = res
    line = one_error(oci.run(b))
    for text in expect:
        assert text in line, (text, line)
    if ctrl == "hugetlb" and _v2_has("hugetlb"):
        assert "cgroup2 hierarchy" in line, line
