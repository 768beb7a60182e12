"""Rootless Podman (user pyoci-e2e, vfs storage, no cgroups on v1) with pyoci and runc.

The runtime runs inside podman's user and mount namespace (the pause
process's), euid 0 there; see conftest.py and /work/shared/PODMAN-CONTRACT.md §3.
"""

from __future__ import annotations

import os
import re
import shutil

import pytest
from helpers.e2e import Podman, explain
from helpers.e2e_flows import CommonFlows, host_dir, lines


@pytest.fixture
def pod(rootless_podman: Podman) -> Podman:
    return rootless_podman


def subid_start(path: str, user: str) -> int:
    with open(path) as f:
        for line in f:
            name, start, _ = line.strip().split(":")
            if name == user:
                return int(start)
    raise AssertionError(f"{user} has no range in {path}")


class TestRootless(CommonFlows):
    def test_whoami_on_host(self, pod: Podman) -> None:
        # container root is the test user on the host: a file it creates in a
        # volume belongs to that user
        d = host_dir(pod)
        try:
            out = pod.ok("run", "--network=none", "--rm", "-v", f"{d}:/mnt", pod.image, "sh", "-c",
                         "id -u; cat /proc/self/uid_map; touch /mnt/f")
            assert lines(out)[0] == "0", out
            st = os.stat(os.path.join(d, "f"))
            assert (st.st_uid, st.st_gid) == (pod.env.uid, pod.env.gid)
        finally:
            shutil.rmtree(d)

    def test_keep_id(self, pod: Podman) -> None:
        uid, gid = pod.env.uid, pod.env.gid
        d = host_dir(pod)
        try:
            out = pod.ok("run", "--network=none", "--rm", "--userns=keep-id", "-v", f"{d}:/mnt", pod.image,
                         "sh", "-c", "id -u; id -g; cat /proc/self/uid_map; touch /mnt/f")
            ls = lines(out)
            assert ls[:2] == [str(uid), str(gid)], out
            maps = [tuple(int(x) for x in ln.split()) for ln in ls[2:]]
            assert (uid, 0, 1) in maps, out  # the user itself (podman's userns uid 0)
            st = os.stat(os.path.join(d, "f"))
            assert (st.st_uid, st.st_gid) == (uid, gid)
        finally:
            shutil.rmtree(d)

    def test_uidmap_0_1_100(self, pod: Podman) -> None:
        sub_uid = subid_start("/etc/subuid", pod.env.user or "")
        sub_gid = subid_start("/etc/subgid", pod.env.user or "")
        d = host_dir(pod, 0o777)
        try:
            out = pod.ok("run", "--network=none", "--rm", "--uidmap", "0:1:100", "--gidmap", "0:1:100",
                         "-v", f"{d}:/mnt", pod.image, "sh", "-c",
                         "id -u; cat /proc/self/uid_map; touch /mnt/f")
            ls = lines(out)
            assert ls[0] == "0", out
            assert re.fullmatch(r"\s*0\s+1\s+100", ls[1]), out
            assert len(ls) == 2, out
            # container 0 -> podman-userns 1 -> first subordinate id on the host
            st = os.stat(os.path.join(d, "f"))
            assert (st.st_uid, st.st_gid) == (sub_uid, sub_gid)
        finally:
            shutil.rmtree(d)

    def test_limits_ignored(self, pod: Podman) -> None:
        # cgroup v1 rootless: podman drops --memory/--pids-limit with a warning
        r = pod.run("--rm", "--memory", "64m", "--pids-limit", "50", pod.image, "echo", "ok")
        assert r.returncode == 0 and r.stdout == "ok\n", explain(r)
