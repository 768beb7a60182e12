"""Rootless (and user-namespace) behaviours where pyoci matches runc 1.1.5
(issue 15, item 12): a terminal with /dev/ptmx listed in linux.devices, time
namespace offsets with a user namespace, exec into a created container, and
the warning when a rootless container's cgroup cannot be made."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers.ocitest import Bundle, Env, HostUser
from helpers.users import Rootless

RUNC = shutil.which("runc")


@pytest.fixture
def rl(oci: Env, test_user: HostUser) -> Rootless:  # noqa: F811 (the fixture imported above)
    return Rootless(oci, test_user)


def _through_a_terminal(cmd: list[str]) -> bytes:
    """cmd with a pty as controlling terminal and stdin, stdout a pipe."""
    import fcntl
    import pty
    import termios

    master, slave = pty.openpty()

    def ctty() -> None:
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    try:
        p = subprocess.Popen(cmd, stdin=slave, stdout=subprocess.PIPE, stderr=slave, preexec_fn=ctty,
                             close_fds=True)
    finally:
        os.close(slave)
    assert p.stdout
    out = p.stdout.read()
    p.stdout.close()
    try:
        while os.read(master, 4096):
            pass
    except OSError:
        pass
    os.close(master)
    p.wait(timeout=60)
    return out


def _user_cmd(rl: Rootless, *args: str) -> list[str]:
    cmd, env = rl.oci.command(args, root=rl.root, user=rl.user, env={"XDG_RUNTIME_DIR": str(rl.xdg)})
    return cmd


def test_rootless_ptmx_in_devices_still_gets_a_terminal(rl: Rootless) -> None:
    b = rl.bundle(["sh", "-c", "readlink /dev/ptmx; tty"])
    b.process["terminal"] = True
    b.linux["devices"] = [{"path": "/dev/ptmx", "type": "c", "major": 5, "minor": 2, "fileMode": 0o666,
                           "uid": 0, "gid": 0}]
    rl.save(b)
    out = _through_a_terminal(_user_cmd(rl, "run", "-b", str(b.path), rl.oci.cid()))
    assert out.decode().split() == ["pts/ptmx", "/dev/pts/0"], out
    if RUNC:
        theirs = _through_a_terminal(["runuser", "-u", rl.user.name, "--", "env",
                                      f"XDG_RUNTIME_DIR={rl.xdg}", RUNC, "--root", str(rl.home / "runc"),
                                      "run", "-b", str(b.path), rl.oci.cid("runc")])
        assert theirs == out


def test_ptmx_in_devices_as_root_is_the_devpts_link(oci: Env) -> None:
    b = oci.bundle(["readlink", "/dev/ptmx"])
    b.linux["devices"] = [{"path": "/dev/ptmx", "type": "c", "major": 5, "minor": 2, "fileMode": 0o666}]
    assert oci.run(b).ok().stdout.strip() == "pts/ptmx"


def _uptime(text: str) -> float:
    return float(text.split()[0])


def _time_bundle(b: Bundle) -> None:
    b.set_args("cat", "/proc/uptime")
    b.set_namespace("time")
    b.linux["timeOffsets"] = {"boottime": {"secs": 864000, "nanosecs": 0},
                              "monotonic": {"secs": 3600, "nanosecs": 0}}


def test_time_offsets_with_a_user_namespace(oci: Env) -> None:
    b = oci.bundle()
    _time_bundle(b)
    b.set_namespace("user")
    b.linux["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    b.linux["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    b.chown_all(100000, 100000)
    host = _uptime(Path("/proc/uptime").read_text())
    r = oci.run(b).ok()
    assert _uptime(r.stdout) - host > 863000, r


def test_rootless_time_offsets(rl: Rootless) -> None:
    b = rl.bundle(["true"])
    _time_bundle(b)
    rl.save(b)
    host = _uptime(Path("/proc/uptime").read_text())
    r = rl.pyoci("run", "-b", str(b.path), rl.oci.cid())
    assert r.rc == 0, r
    assert _uptime(r.stdout) - host > 863000, r


def _v1_only_or_undelegated(rl: Rootless) -> bool:
    from pyoci.cgroups import manager as cgroups

    cg = cgroups.for_host()
    return not cg.delegated_paths("/pyoci-probe/x", "x", cg.container_paths("/pyoci-probe/x", "x"))


def test_rootless_cgroup_that_cannot_be_made_is_warned_about(rl: Rootless) -> None:
    """`--cgroup-parent` on a cgroup v1 host (cgroupsPath set) and no cgroup
    this user may create: the container runs (as with Podman, which sets no
    cgroupsPath there), with one warning line saying it has no cgroup."""
    b = rl.bundle(["true"])
    b.linux["cgroupsPath"] = f"/pyoci-test-parent/{rl.oci.cid()}"
    rl.save(b)
    if not _v1_only_or_undelegated(rl):
        pytest.skip("this user has a delegated cgroup v2 tree: the cgroup can be made")
    r = rl.pyoci("run", "-b", str(b.path), rl.oci.cid())
    assert r.rc == 0, r
    lines = r.err_lines
    assert len(lines) == 1 and lines[0].startswith("pyoci: warning: cgroupsPath "), r
    assert "$.linux.cgroupsPath" in lines[0] and "without a cgroup of its own" in lines[0]
    # Podman's rootless configs on cgroup v1 set no cgroupsPath: nothing said.
    del b.linux["cgroupsPath"]
    rl.save(b)
    r = rl.pyoci("run", "-b", str(b.path), rl.oci.cid())
    assert r.rc == 0 and r.stderr == "", r


def test_rootless_exec_into_a_created_container(rl: Rootless) -> None:
    """As with runc: the init waits for `start`, non-dumpable; exec still
    joins its namespaces (the init hands them out on its start socket)."""
    b = rl.bundle(["sleep", "1000"])
    rl.save(b)
    cid = rl.oci.cid()
    rl.pyoci("create", "--bundle", str(b.path), cid).ok()
    try:
        # In the container's pid namespace (its init is pid 1 there) and user namespace.
        r = rl.pyoci("exec", cid, "sh", "-c",
                     "id -u; echo $$; cat /proc/1/cmdline; echo; cat /proc/self/uid_map")
        assert r.rc == 0, r
        lines = r.stdout.splitlines()
        assert lines[0] == "0" and lines[1] != "1" and lines[2].startswith("pyoci-init"), r
        assert lines[3].split() == ["0", str(rl.user.uid), "1"], r
        assert rl.pyoci("state", cid).ok().json()["status"] == "created"
        rl.pyoci("start", cid).ok()
        assert rl.pyoci("state", cid).ok().json()["status"] == "running"
        if RUNC:
            rid = rl.oci.cid("runc")
            runc = ["runuser", "-u", rl.user.name, "--", "env", f"XDG_RUNTIME_DIR={rl.xdg}", RUNC,
                    "--root", str(rl.home / "runc")]
            with open(os.devnull, "wb") as null:
                subprocess.run([*runc, "create", "-b", str(b.path), rid], stdin=null, stdout=null,
                               stderr=null, check=True, timeout=60)
            try:
                p = subprocess.run([*runc, "exec", rid, "id", "-u"], capture_output=True, text=True,
                                   stdin=subprocess.DEVNULL, timeout=60)
                assert p.returncode == 0 and p.stdout == "0\n", p
            finally:
                subprocess.run([*runc, "delete", "--force", rid], capture_output=True, timeout=60)
    finally:
        rl.pyoci("delete", "--force", cid)
