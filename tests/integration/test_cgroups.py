"""cgroups (v1 and the unified mount of this machine's hybrid layout): placement,
limits, device rules, freezer, update and cleanup, checked on the real kernel."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from ocitest import Env, wait_for

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
    for ctrl in ("pids", "cpuset", "memory"):
        assert not cgdir(ctrl, name).exists(), ctrl


def _own_pids_cgroup() -> str:
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _hid, ctrls, path = line.split(":", 2)
        if "pids" in ctrls.split(","):
            return path
    return "/"


def test_default_cgroup_and_its_parent_are_removed(oci: Env) -> None:
    base = _own_pids_cgroup().rstrip("/")
    parent = cgdir("pids", f"{base}/pyoci")
    existed = parent.exists()
    b = oci.bundle()
    cid = oci.cid()
    b.sh("cat /proc/self/cgroup")
    r = oci.run(b, cid)
    assert r.rc == 0, str(r)
    assert f"pids:{base}/pyoci/{cid}" in r.stdout
    assert not cgdir("pids", f"{base}/pyoci/{cid}").exists()
    if not existed:
        assert not parent.exists()


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
