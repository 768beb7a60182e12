"""Root Podman (cgroupfs, vfs storage) with pyoci and runc: see conftest.py."""

from __future__ import annotations

import os
import re
import shutil

import pytest
from helpers.e2e import Podman, explain
from helpers.e2e_flows import CommonFlows, host_dir, start_signal_container


@pytest.fixture
def pod(root_podman: Podman) -> Podman:
    return root_podman


def cgroup_dir(pid: str, controller: str) -> str:
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            if controller in ctrls.split(","):
                return f"/sys/fs/cgroup/{ctrls}{path}"
    raise AssertionError(f"no {controller} cgroup for pid {pid}")


def read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


class TestRoot(CommonFlows):
    def test_pause_unpause(self, pod: Podman) -> None:
        n = start_signal_container(pod)
        try:
            cid = pod.inspect(n, "{{.Id}}")
            pid = pod.inspect(n, "{{.State.Pid}}")
            freezer = cgroup_dir(pid, "freezer")
            assert freezer.endswith(f"libpod-{cid}"), freezer
            pod.ok("pause", n)
            assert pod.inspect(n, "{{.State.Status}}") == "paused"
            assert read(f"{freezer}/freezer.state") == "FROZEN"
            pod.ok("unpause", n)
            assert pod.inspect(n, "{{.State.Status}}") == "running"
            assert read(f"{freezer}/freezer.state") == "THAWED"
            assert pod.ok("exec", n, "echo", "alive") == "alive\n"
        finally:
            pod.ok("rm", "-f", "-t", "0", n)

    def test_rm_f_paused(self, pod: Podman) -> None:
        n = start_signal_container(pod)
        pod.ok("pause", n)
        pod.ok("rm", "-f", "-t", "0", n)
        assert pod.container_ids() == []

    def test_memory_pids_limits(self, pod: Podman) -> None:
        out = pod.ok("run", "--network=none", "--rm", "--memory", "64m", "--pids-limit", "50", pod.image,
                     "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/pids/pids.max")
        assert out.split() == [str(64 << 20), "50"], out
        n = start_signal_container(pod, "--memory", "64m", "--pids-limit", "50")
        try:
            cid = pod.inspect(n, "{{.Id}}")
            pid = pod.inspect(n, "{{.State.Pid}}")
            mem = cgroup_dir(pid, "memory")
            pids = cgroup_dir(pid, "pids")
            assert mem.endswith(f"/libpod_parent/libpod-{cid}"), mem
            assert read(f"{mem}/memory.limit_in_bytes") == str(64 << 20)
            assert read(f"{pids}/pids.max") == "50"
            # podman's default device rule: deny all but the standard nodes
            devs = cgroup_dir(pid, "devices")
            assert "a *:* rwm" not in read(f"{devs}/devices.list")
        finally:
            pod.ok("rm", "-f", "-t", "0", n)

    def test_pids_limit_enforced(self, pod: Podman) -> None:
        # 12, not less: runc's init is a Go program whose threads count against
        # the limit until it execs (at 5 it aborts now and then: "pthread_create
        # failed").  The shell and 20 sleeps need 21.
        r = pod.run("--rm", "--pids-limit", "12", pod.image, "sh", "-c",
                    "for i in $(seq 20); do sleep 1 & done; echo started; wait")
        assert r.returncode == 2 and r.stdout == "", explain(r)
        assert "can't fork" in r.stderr, explain(r)

    def test_cpus_throttles(self, pod: Podman) -> None:
        # --cpus 0.5: quota 50000 per 100000 us period; a one-second busy loop
        # then gets about half a second of CPU (the container's own cpuacct).
        out = pod.ok("run", "--network=none", "--rm", "--cpus", "0.5", pod.image, "sh", "-c",
                     "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us; "
                     "timeout 1 sh -c 'while :; do :; done'; cat /sys/fs/cgroup/cpuacct/cpuacct.usage")
        quota, period, usage = out.split()
        assert (quota, period) == ("50000", "100000"), out
        assert 0.3e9 < int(usage) < 0.75e9, out

    def test_cpuset(self, pod: Podman) -> None:
        out = pod.ok("run", "--network=none", "--rm", "--cpuset-cpus", "1", pod.image, "grep",
                     "Cpus_allowed_list", "/proc/self/status")
        assert out.split() == ["Cpus_allowed_list:", "1"], out

    def test_oom_killed(self, pod: Podman) -> None:
        # The kernel kills the hog inside the 32 MB memory cgroup.  (Podman
        # 4.3's conmon does not set .State.OOMKilled here, with runc either.)
        out = pod.ok("run", "--network=none", "--rm", "--memory", "32m", pod.image, "sh", "-c",
                     "awk 'BEGIN{s=\"a\"; while (1) s = s s}'; echo rc=$?; "
                     "grep oom_kill /sys/fs/cgroup/memory/memory.oom_control; "
                     "cat /sys/fs/cgroup/memory/memory.limit_in_bytes")
        assert out.split() == ["rc=137", "oom_kill_disable", "0", "oom_kill", "1", str(32 << 20)], out

    def test_update_cpus_and_cpuset(self, pod: Podman) -> None:
        # podman update -> `<runtime> update --resources=FILE <id>` with only the changed fields
        n = start_signal_container(pod, "--cpus", "0.5")
        try:
            pid = pod.inspect(n, "{{.State.Pid}}")
            cpu = cgroup_dir(pid, "cpu")
            assert read(f"{cpu}/cpu.cfs_quota_us") == "50000"
            pod.ok("update", "--cpus", "1.5", n)
            assert read(f"{cpu}/cpu.cfs_quota_us") == "150000"
            assert read(f"{cpu}/cpu.cfs_period_us") == "100000"
            pod.ok("update", "--cpuset-cpus", "1", n)
            assert read(f"{cgroup_dir(pid, 'cpuset')}/cpuset.cpus") == "1"
            assert "Cpus_allowed_list:\t1" in read(f"/proc/{pid}/status")
        finally:
            pod.ok("rm", "-f", "-t", "0", n)

    def test_uidmap(self, pod: Podman) -> None:
        d = host_dir(pod, 0o777)
        try:
            out = pod.ok("run", "--network=none", "--rm", "--uidmap", "0:300000:65536", "--gidmap",
                         "0:300000:65536", "-v", f"{d}:/mnt", pod.image, "sh", "-c",
                         "id -u; cat /proc/self/uid_map; touch /mnt/f")
            ls = out.split("\n")
            assert ls[0] == "0", out
            assert re.match(r"\s*0\s+300000\s+65536", ls[1]), out
            st = os.stat(os.path.join(d, "f"))
            assert (st.st_uid, st.st_gid) == (300000, 300000)
        finally:
            shutil.rmtree(d)

    def test_update(self, pod: Podman) -> None:
        # podman update -> `<runtime> update --resources=FILE <id>`
        n = start_signal_container(pod, "--memory", "64m", "--cpu-shares", "1024")
        try:
            pid = pod.inspect(n, "{{.State.Pid}}")
            mem = cgroup_dir(pid, "memory")
            cpu = cgroup_dir(pid, "cpu")
            r = pod("update", "--memory", "128m", "--memory-swap", "256m", "--cpu-shares", "512", n)
            assert r.returncode == 0, explain(r)
            assert read(f"{mem}/memory.limit_in_bytes") == str(128 << 20)
            if os.path.exists(f"{mem}/memory.memsw.limit_in_bytes"):
                assert read(f"{mem}/memory.memsw.limit_in_bytes") == str(256 << 20)
            assert read(f"{cpu}/cpu.shares") == "512"
        finally:
            pod.ok("rm", "-f", "-t", "0", n)
