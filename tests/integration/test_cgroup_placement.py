"""How the container's init gets into its cgroups, watched with strace.

A migration through cgroup.procs takes the kernel's cgroup attach lock on its
writer side, which waits for an RCU grace period after an idle moment (7-19 ms
here, more than the rest of `run`).  So, when the container has no user
namespace, its init joins by itself: stage1 clones it straight into the cgroup
v2 directory (CLONE_INTO_CGROUP) and it writes "0" (itself, one thread) to each
v1 hierarchy's `tasks` file; nothing writes its pid to a cgroup.procs file.
With a user namespace it could not write the host's files, so pyoci moves it."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers.ocitest import PYOCI, Bundle, Env

CG = Path("/sys/fs/cgroup")
pytestmark = [
    pytest.mark.skipif(not (CG / "pids").is_dir() or not (CG / "unified").is_dir(),
                       reason="needs this project's hybrid cgroup layout (v1 controllers + cgroup2)"),
    pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace"),
]


def traced_run(oci: Env, b: Bundle, cid: str) -> tuple[str, str]:
    """`run` under strace -f: (the container's stdout, the trace of pyoci and
    every child)."""
    b.save()
    trace = oci.path(f"{cid}.strace")
    cmd = ["strace", "-f", "-qq", "-y", "-s", "256", "-o", str(trace), "-e", "trace=clone3,write",
           PYOCI, "--root", str(oci.root), "run", "--bundle", str(b.path), cid]
    out, err = oci.path(f"{cid}.stdout"), oci.path(f"{cid}.stderr")
    with open(out, "wb") as fo, open(err, "wb") as fe:
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=fo, stderr=fe, timeout=60,
                           env=oci.base_env())
    assert p.returncode == 0, err.read_text()
    return out.read_text(), trace.read_text()


def cgroups_in(text: str) -> dict[str, str]:
    """/proc/PID/cgroup as controller -> path ("" for cgroup v2)."""
    out = {}
    for line in text.splitlines():
        _, ctrls, path = line.split(":", 2)
        for c in (ctrls.split(",") if ctrls else [""]):
            out[c.removeprefix("name=")] = path
    return out


def written(trace: str) -> list[tuple[str, str]]:
    """(file, data) of every write in the trace (strace -y names each fd's file)."""
    return re.findall(r'write\(\d+<([^>]+)>, "([^"]*)"', trace)


def test_init_joins_its_cgroups_itself(oci: Env) -> None:
    b = oci.bundle()
    b.sh("cat /proc/self/cgroup")
    cid = oci.cid()
    out, trace = traced_run(oci, b, cid)
    cg = cgroups_in(out)
    # in its own cgroup in every hierarchy, the cgroup2 one included
    for ctrl in ("pids", "memory", "cpu", "devices", "freezer", "systemd", ""):
        assert cg[ctrl].endswith(f"/{cid}"), (ctrl, cg)
    # born in the cgroup2 one: clone3 with CLONE_INTO_CGROUP
    clones = [ln for ln in trace.splitlines() if "clone3(" in ln and "CLONE_INTO_CGROUP" in ln]
    assert len(clones) == 1 and not clones[0].endswith("= -1"), trace
    # every v1 hierarchy joined by writing "0" to its tasks file ...
    tasks = [f for f, data in written(trace) if f.endswith(f"/{cid}/tasks") and data == "0"]
    for ctrl in ("pids", "memory", "cpu", "devices", "freezer", "blkio", "systemd"):
        assert any(t.startswith(f"/sys/fs/cgroup/{ctrl}/") for t in tasks), (ctrl, tasks)
    # ... and no pid written to any cgroup.procs
    procs = [w for w in written(trace) if w[0].endswith("/cgroup.procs")]
    assert not procs, procs


def test_exec_joins_the_containers_cgroups_itself(oci: Env) -> None:
    """The same for `exec`: stage1 opens the cgroup files before it enters the
    container's namespaces, the new process joins through them."""
    b = oci.bundle(["sleep", "60"])
    cid = oci.cid()
    oci.run(b, cid, "--detach").ok()
    try:
        trace = oci.path("exec.strace")
        out = oci.path("exec.stdout")
        cmd = ["strace", "-f", "-qq", "-y", "-s", "256", "-o", str(trace), "-e", "trace=clone3,write",
               PYOCI, "--root", str(oci.root), "exec", cid, "cat", "/proc/self/cgroup"]
        with open(out, "wb") as fo:
            p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=fo, stderr=subprocess.PIPE,
                               timeout=60, env=oci.base_env())
        assert p.returncode == 0, p.stderr
        cg = cgroups_in(out.read_text())
        for ctrl in ("pids", "memory", "cpu", "devices", "freezer", ""):
            assert cg[ctrl].endswith(f"/{cid}"), (ctrl, cg)
        text = trace.read_text()
        tasks = [f for f, data in written(text) if f.endswith(f"/{cid}/tasks") and data == "0"]
        assert any(t.startswith("/sys/fs/cgroup/pids/") for t in tasks), tasks
        clones = [ln for ln in text.splitlines() if "clone3(" in ln and "CLONE_INTO_CGROUP" in ln]
        assert len(clones) == 1 and not clones[0].endswith("= -1"), text
        assert not [w for w in written(text) if w[0].endswith("/cgroup.procs")], text
    finally:
        oci.pyoci("delete", "--force", cid).ok()


def test_with_a_user_namespace_pyoci_moves_the_init(oci: Env) -> None:
    b = oci.bundle()
    b.sh("cat /proc/self/cgroup")
    Bundle(b.path, b.config).chown_all(100000, 100000)
    b.set_namespace("user")
    b.linux["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    b.linux["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    cid = oci.cid()
    out, trace = traced_run(oci, b, cid)
    cg = cgroups_in(out)
    for ctrl in ("pids", "memory", "devices", ""):
        assert cg[ctrl].endswith(f"/{cid}"), (ctrl, cg)
    assert "CLONE_INTO_CGROUP" not in trace
    moved = [f for f, data in written(trace) if f.endswith(f"/{cid}/cgroup.procs") and data.isdigit()]
    assert any(f.startswith("/sys/fs/cgroup/pids/") for f in moved), moved
    assert any(f.startswith("/sys/fs/cgroup/unified/") for f in moved), moved
    assert not [f for f, _ in written(trace) if f.endswith("/tasks")]
