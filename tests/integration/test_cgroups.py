"""cgroups (v1 and the unified mount of this machine's hybrid layout): placement,
limits, device rules, freezer, update and cleanup, checked on the real kernel."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from helpers.ocitest import Env, pid_alive, wait_for

CG = Path("/sys/fs/cgroup")
V1 = (CG / "pids").is_dir()
pytestmark = pytest.mark.skipif(not V1, reason="needs cgroup v1 controllers (this project's CI layout)")


def cgdir(ctrl: str, rel: str) -> Path:
    return CG / ctrl / rel.lstrip("/")


def test_default_devices_survive_a_deny_all_rule(oci: Env) -> None:
    # Podman sends a deny-all device rule with every container: the default
    # nodes must still be created and usable, every time (no race with the
    # rules being written while the init makes its nodes).
    for _ in range(5):
        b = oci.bundle()
        b.linux["resources"] = {"devices": [{"allow": False, "access": "rwm"}]}
        b.sh("echo x > /dev/null && head -c 4 /dev/zero | wc -c && ls -l /dev/tty")
        r = oci.run(b)
        assert r.rc == 0, str(r)
        assert "4" in r.stdout


def test_device_rule_blocks_and_allows(oci: Env) -> None:
    b = oci.bundle()
    b.linux["devices"] = [{"path": "/dev/kmsg2", "type": "c", "major": 1, "minor": 11, "fileMode": 0o666}]
    b.linux["resources"] = {"devices": [{"allow": False, "access": "rwm"}]}
    b.sh("head -c 1 /dev/kmsg2 >/dev/null 2>&1; echo denied=$?; head -c 1 /dev/urandom | wc -c")
    r = oci.run(b)
    assert r.rc == 0, str(r)
    assert "denied=1" in r.stdout          # the node exists but the devices cgroup refuses it
    assert r.stdout.strip().endswith("1")  # a default device stays usable


def test_pids_limit_stops_forks(oci: Env) -> None:
    b = oci.bundle()
    b.linux["resources"] = {"pids": {"limit": 6}}
    b.sh("n=0; for i in 1 2 3 4 5 6 7 8 9 10; do sleep 5 & [ $? -eq 0 ] && n=$((n+1)); done; "
         "cat /proc/self/cgroup | grep pids; echo started=$n")
    r = oci.run(b)
    # busy-box sh gives up with "can't fork" once pids.max is reached
    assert "can't fork" in r.stderr or "started=" in r.stdout, str(r)
    if "started=" in r.stdout:
        assert int(r.stdout.rsplit("started=", 1)[1].split()[0]) < 10, str(r)
    else:
        assert r.rc != 0


def test_limits_update_pause_resume_and_cleanup(oci: Env) -> None:
    b = oci.bundle(["sleep", "60"])
    b.linux["cgroupsPath"] = f"/pyoci-test/{b.path.name}"
    b.linux["resources"] = {"memory": {"limit": 64 * 1024 * 1024}, "pids": {"limit": 50},
                            "cpu": {"shares": 256}}
    b.save()
    cid = oci.cid()
    rel = b.linux["cgroupsPath"]
    oci.pyoci("run", "--detach", "--bundle", str(b.path), cid).ok()
    try:
        st = oci.state(cid)
        assert (cgdir("pids", rel) / "pids.max").read_text().strip() == "50"
        assert int((cgdir("memory", rel) / "memory.limit_in_bytes").read_text()) == 64 * 1024 * 1024
        assert (cgdir("cpu", rel) / "cpu.shares").read_text().strip() == "256"
        assert str(st["pid"]) in (cgdir("pids", rel) / "cgroup.procs").read_text().split()
        # update
        oci.pyoci("update", "--pids-limit", "77", "--memory", str(128 * 1024 * 1024), cid).ok()
        assert (cgdir("pids", rel) / "pids.max").read_text().strip() == "77"
        assert int((cgdir("memory", rel) / "memory.limit_in_bytes").read_text()) == 128 * 1024 * 1024
        # exec'd processes join the container's cgroups
        r = oci.pyoci("exec", cid, "cat", "/proc/self/cgroup").ok()
        assert f"pids:{rel}" in r.stdout
        # pause / resume
        oci.pyoci("pause", cid).ok()
        assert oci.state(cid)["status"] == "paused"
        assert (cgdir("freezer", rel) / "freezer.state").read_text().strip() == "FROZEN"
        r = oci.pyoci("ps", "--format", "json", cid).ok()
        assert st["pid"] in r.json()
        oci.pyoci("resume", cid).ok()
        assert oci.state(cid)["status"] == "running"
    finally:
        oci.pyoci("delete", "--force", cid).ok()
    for ctrl in ("pids", "memory", "cpu", "freezer", "devices"):
        assert not cgdir(ctrl, rel).exists(), ctrl
        assert not cgdir(ctrl, "/pyoci-test").exists(), ctrl


def test_force_delete_of_a_paused_container(oci: Env) -> None:
    b = oci.bundle(["sleep", "60"])
    b.save()
    cid = oci.cid()
    oci.pyoci("run", "--detach", "--bundle", str(b.path), cid).ok()
    pid = oci.state(cid)["pid"]
    oci.pyoci("pause", cid).ok()
    oci.pyoci("delete", "--force", cid).ok()
    deadline = time.monotonic() + 5
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{pid}/cmdline").exists() or not Path(f"/proc/{pid}/cmdline").read_bytes()


def test_cgroup_mount_is_read_only_all_the_way_down(oci: Env) -> None:
    b = oci.bundle()
    b.sh("touch /sys/fs/cgroup/pids/x 2>&1; echo rc=$?")
    r = oci.run(b)
    assert r.rc == 0, str(r)
    assert "Read-only file system" in r.stdout


def test_a_bad_limit_leaves_no_cgroup(oci: Env) -> None:
    b = oci.bundle()
    name = f"pyoci-bad-{os.getpid()}-{b.path.name}"
    b.linux["cgroupsPath"] = f"/{name}"
    b.linux["resources"] = {"cpu": {"cpus": "999999"}}
    r = oci.run(b)
    assert r.rc != 0
    assert len(r.err_lines) == 1, str(r)
    assert "$.linux.resources.cpu.cpus" in r.err_lines[0], str(r)
    for ctrl in ("pids", "cpuset", "memory", "unified"):
        assert not cgdir(ctrl, name).exists(), ctrl


def _own_pids_cgroup() -> str:
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _hid, ctrls, path = line.split(":", 2)
        if "pids" in ctrls.split(","):
            return path
    return "/"


def test_default_cgroup_is_the_id_beside_ours_and_is_removed(oci: Env) -> None:
    # runc's default: <id> relative to the runtime's own cgroup
    base = _own_pids_cgroup().rstrip("/")
    b = oci.bundle()
    cid = oci.cid()
    b.sh("cat /proc/self/cgroup")
    r = oci.run(b, cid)
    assert r.rc == 0, str(r)
    assert f"pids:{base}/{cid}\n" in r.stdout
    assert not cgdir("pids", f"{base}/{cid}").exists()
    assert not _left(f"{base}/{cid}")


def _left(cgname: str) -> list[str]:
    """The hierarchies (v1 and cgroup2) that still have cgname."""
    return [c for c in os.listdir(CG) if (CG / c / cgname.lstrip("/")).exists()]


# -- cleanup after crashes ---------------------------------------------------------------------------


def test_delete_after_pyoci_died_during_create(oci: Env) -> None:
    """SIGKILL the `create` process after the cgroups were made (in a
    createRuntime hook): `delete` must still remove them, and kill whatever
    of the container is left in them."""
    cgname = f"/pyoci-crash-{oci.token[:10]}"
    marker = oci.path("hook.pid")
    b = oci.bundle(["sleep", "1000"])
    b.linux["cgroupsPath"] = cgname
    b.linux["resources"] = {"pids": {"limit": 20}}
    b.config["hooks"] = {"createRuntime": [oci.hook(f"echo $$ > {marker}; exec sleep 1000")]}
    b.save()
    cid = oci.cid()
    p = oci.popen("create", "--bundle", str(b.path), cid)
    try:
        wait_for(lambda: marker.exists() and marker.read_text().strip(), what="the createRuntime hook")
        assert (CG / "pids" / cgname.lstrip("/")).is_dir()
        p.send_signal(signal.SIGKILL)
        p.wait(10)
    finally:
        os.kill(int(marker.read_text()), signal.SIGKILL)
    st = oci.state(cid)
    assert st["status"] == "stopped"
    oci.pyoci("delete", cid).ok()
    assert not _left(cgname)


def test_delete_kills_what_outlived_the_init(oci: Env) -> None:
    """No pid namespace: the init's child survives the init; delete kills
    it (it is in the container's cgroup) and removes the cgroups."""
    cgname = f"/pyoci-orphan-{oci.token[:10]}"
    out = oci.mkdir("out")
    b = oci.bundle()
    b.drop_namespace("pid")
    b.bind(out, "/out")
    b.sh("sleep 1000 & echo $! > /out/child; exit 0")
    b.linux["cgroupsPath"] = cgname
    b.linux["resources"] = {"pids": {"limit": 20}}
    b.save()
    cid = oci.cid()
    oci.pyoci("run", "--detach", "--bundle", str(b.path), cid).ok()
    oci.wait_status(cid, "stopped")
    child = int(wait_for(lambda: (out / "child").exists() and (out / "child").read_text().strip(),
                         what="the child's pid"))
    assert Path(f"/proc/{child}").exists()
    oci.pyoci("delete", cid).ok()
    wait_for(lambda: not Path(f"/proc/{child}/cmdline").exists()
             or not Path(f"/proc/{child}/cmdline").read_bytes(), what="the child's death")
    assert not _left(cgname)


def test_delete_leaves_a_foreign_process_alone(oci: Env) -> None:
    """A container with its own pid namespace: a process someone else moved
    into its cgroup is not killed (runc does the same); delete fails naming
    the cgroup and keeps the state, and succeeds once the process is gone."""
    import subprocess

    cgname = f"/pyoci-foreign-{oci.token[:10]}"
    b = oci.bundle(["sleep", "1000"])
    b.linux["cgroupsPath"] = cgname
    b.save()
    cid = oci.cid()
    oci.pyoci("run", "--detach", "--bundle", str(b.path), cid).ok()
    foreign = subprocess.Popen(["sleep", "1000"])
    try:
        (CG / "pids" / cgname.lstrip("/") / "cgroup.procs").write_text(str(foreign.pid))
        r = oci.pyoci("delete", "--force", cid)
        assert r.rc != 0 and len(r.err_lines) == 1, str(r)
        assert f"pids{cgname}" in r.stderr and str(foreign.pid) in r.stderr, str(r)
        assert "not the container's" in r.stderr, str(r)
        assert foreign.poll() is None
        assert oci.state(cid)["status"] == "stopped"
    finally:
        foreign.kill()
        foreign.wait()
    oci.pyoci("delete", cid).ok()
    assert not _left(cgname)


# -- sub-cgroups and kill --all -------------------------------------------------------------------


def _container_dirs(cgname: str) -> list[Path]:
    """The container's directory in every hierarchy (v1 and the cgroup2 mount)."""
    rel = cgname.lstrip("/")
    return [CG / h / rel for h in sorted(os.listdir(CG)) if (CG / h / rel).is_dir()]


def _sub_cgroups(cgname: str, pid: int, sub: str = "sub/a") -> list[Path]:
    """As root, from outside: make ``sub`` below the container's cgroup in
    every hierarchy and move pid into it (a v1 cpuset child starts empty:
    give each level its parent's cpus and mems first)."""
    made = []
    for top in _container_dirs(cgname):
        d = top
        for part in sub.split("/"):
            d = d / part
            d.mkdir(exist_ok=True)
            for f in ("cpuset.cpus", "cpuset.mems"):
                if (d / f).exists() and not (d / f).read_text().strip():
                    (d / f).write_text((d.parent / f).read_text().strip())
        (d / "cgroup.procs").write_text(str(pid))
        made.append(d)
    return made


def _child(out: Path, name: str = "child", cgname: str | None = None) -> int:
    """The pid a container wrote to out/name; with ``cgname`` (a container
    with its own pid namespace), the host's pid of that process, found in
    the container's cgroup by its NSpid."""
    nspid = int(wait_for(lambda: (out / name).exists() and (out / name).read_text().strip(),
                         what=f"the {name}'s pid"))
    if cgname is None:
        return nspid
    for d, _dirs, _files in os.walk(CG / "pids" / cgname.lstrip("/")):
        for pid in (Path(d) / "cgroup.procs").read_text().split():
            status = Path(f"/proc/{pid}/status").read_text()
            ns = next(ln.split() for ln in status.splitlines() if ln.startswith("NSpid:"))
            if int(ns[-1]) == nspid:
                return int(pid)
    raise AssertionError(f"no process with pid {nspid} in the container's pid namespace")


def _gone(pid: int) -> bool:
    return not pid_alive(pid)


def test_kill_all_signals_sub_cgroups_and_repeats_quietly(oci: Env) -> None:
    """kill --all TERM reaches a process in a sub-cgroup (in every hierarchy:
    the pids are read recursively); after the exit it succeeds, silently,
    as often as the shim sends it."""
    cgname = f"/pyoci-killall-{oci.token[:10]}"
    out = oci.mkdir("out")
    b = oci.bundle()
    b.drop_namespace("pid")         # TERM reaches an init that is not pid 1
    b.bind(out, "/out")
    b.sh("sleep 1000 & echo $! > /out/child; exec sleep 1000")
    b.linux["cgroupsPath"] = cgname
    b.save()
    cid = oci.cid()
    oci.pyoci("run", "--detach", "--bundle", str(b.path), cid).ok()
    init = oci.state(cid)["pid"]
    child = _child(out)
    _sub_cgroups(cgname, child)
    assert sorted(oci.pyoci("ps", "--format", "json", cid).ok().json()) == sorted([init, child])
    oci.pyoci("kill", "--all", cid, "TERM").ok()
    wait_for(lambda: _gone(child) and _gone(init), what="both processes to die of SIGTERM")
    oci.wait_status(cid, "stopped")
    for sig in ("KILL", "TERM"):
        r = oci.pyoci("kill", "--all", cid, sig).ok()
        assert r.stdout == r.stderr == "", str(r)
    assert oci.pyoci("ps", "--format", "json", cid).ok().json() == []
    oci.pyoci("delete", cid).ok()
    assert not _left(cgname)


def test_kill_all_of_a_stopped_container_kills_what_outlived_the_init(oci: Env) -> None:
    """No pid namespace: the init's child outlives it, in a sub-cgroup; the
    shim's kill --all KILL after the exit kills it (as runc does), and a
    second one finds nothing and succeeds."""
    cgname = f"/pyoci-killstop-{oci.token[:10]}"
    out = oci.mkdir("out")
    b = oci.bundle()
    b.drop_namespace("pid")
    b.bind(out, "/out")
    b.sh("sleep 1000 & echo $! > /out/child; while [ ! -e /out/go ]; do sleep 0.05; done")
    b.linux["cgroupsPath"] = cgname
    b.save()
    cid = oci.cid()
    oci.pyoci("run", "--detach", "--bundle", str(b.path), cid).ok()
    child = _child(out)
    _sub_cgroups(cgname, child)
    (out / "go").touch()
    oci.wait_status(cid, "stopped")
    assert pid_alive(child)
    assert oci.pyoci("ps", "--format", "json", cid).ok().json() == []    # stopped: ps lists nothing
    oci.pyoci("kill", "--all", cid, "KILL").ok()
    wait_for(lambda: _gone(child), what="the orphan's death")
    r = oci.pyoci("kill", "--all", cid, "KILL").ok()
    assert r.stderr == "", str(r)
    oci.pyoci("delete", cid).ok()
    assert not _left(cgname)


@pytest.mark.parametrize("how", ["pidns-force", "no-pidns-stopped"])
def test_delete_removes_sub_cgroups(oci: Env, how: str) -> None:
    """Sub-cgroups below the container's cgroup -- one the container makes
    itself through a writable cgroup mount, one made from outside in every
    hierarchy, each holding a process of the container -- are emptied and
    removed deepest first, with the container's own; nothing is left.
    With a pid namespace the kernel kills them with the init (delete
    --force); without one, delete kills what outlived the init."""
    cgname = f"/pyoci-subcg-{oci.token[:10]}"
    out = oci.mkdir("out")
    b = oci.bundle()
    b.bind(out, "/out")
    for m in b.config["mounts"]:
        if m["type"] == "cgroup":
            m["options"] = [o for o in m["options"] if o != "ro"] + ["rw"]
    inner = "/sys/fs/cgroup/pids/inner /sys/fs/cgroup/memory/inner"
    wait = "exec sleep 1000" if how == "pidns-force" else "while [ ! -e /out/go ]; do sleep 0.05; done"
    b.sh(f"mkdir {inner} || exit 1; "
         "sh -c 'for d in " + inner + "; do echo $$ > $d/cgroup.procs; done; exec sleep 1000' & "
         "echo $! > /out/inner; sleep 1000 & echo $! > /out/child; " + wait)
    if how != "pidns-force":
        b.drop_namespace("pid")
    b.linux["cgroupsPath"] = cgname
    b.save()
    cid = oci.cid()
    oci.pyoci("run", "--detach", "--bundle", str(b.path), cid).ok()
    in_ns = cgname if how == "pidns-force" else None
    inner_pid, child = _child(out, "inner", in_ns), _child(out, "child", in_ns)
    made = _sub_cgroups(cgname, child, "sub/a/b")
    wait_for(lambda: "inner" in Path(f"/proc/{inner_pid}/cgroup").read_text(), what="the move inside")
    pids_inner = (CG / "pids" / cgname.lstrip("/") / "inner" / "cgroup.procs").read_text().split()
    assert pids_inner == [str(inner_pid)]
    assert len(made) == len(_container_dirs(cgname)) >= 2
    if how == "pidns-force":
        oci.pyoci("delete", "--force", cid).ok()
    else:
        (out / "go").touch()
        oci.wait_status(cid, "stopped")
        assert pid_alive(child) and pid_alive(inner_pid)
        oci.pyoci("delete", cid).ok()
    assert _gone(child) and _gone(inner_pid)
    assert not _left(cgname)


def test_kill_all_kill_goes_through_cgroup_kill(oci: Env) -> None:
    """kill --all KILL writes cgroup.kill of the container's cgroup2
    directory (hybrid layout, Linux 5.14+) when pyoci created it and the
    container has no pid namespace of its own (with one, the namespace is
    the container: its init is killed): a process that is in that
    directory alone -- not in the container's v1 cgroups, whose pids are
    signalled one by one -- dies too."""
    import subprocess

    cgname = f"/pyoci-cgkill-{oci.token[:10]}"
    unified = CG / "unified" / cgname.lstrip("/")
    b = oci.bundle(["sleep", "1000"])
    b.linux["cgroupsPath"] = cgname
    b.drop_namespace("pid")
    b.save()
    cid = oci.cid()
    oci.pyoci("run", "--detach", "--bundle", str(b.path), cid).ok()
    helper = subprocess.Popen(["sleep", "1000"])
    try:
        if not (unified / "cgroup.kill").exists():
            pytest.skip("no cgroup2 directory with cgroup.kill (hybrid layout, Linux 5.14+)")
        (unified / "cgroup.procs").write_text(str(helper.pid))
        assert str(helper.pid) not in (CG / "pids" / cgname.lstrip("/") / "cgroup.procs").read_text().split()
        oci.pyoci("kill", "--all", cid, "KILL").ok()
        assert helper.wait(10) == -signal.SIGKILL
        oci.wait_status(cid, "stopped")
    finally:
        helper.kill()
        helper.wait()
        oci.pyoci("delete", "--force", cid).ok()
    assert not _left(cgname)
