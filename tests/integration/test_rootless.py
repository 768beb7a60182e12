"""Rootless: pyoci run by an unprivileged user (runuser), with a user
namespace mapping that user to root in the container.

The session fixture creates the user ``pyoci-test-user`` (useradd -m) if it
is missing and gives it the subordinate range 200000:65536 in /etc/subuid and
/etc/subgid if it has none; both are left in place afterwards.  The user runs
the repository's .venv directly: /work/main and .venv are world-traversable
(0755); if they are not, the fixture skips rather than changing permissions.
"""

from __future__ import annotations

import os
import subprocess

import pytest
from helpers.ocitest import Env, HostUser, pid_alive, wait_for
from helpers.users import Rootless, subids


@pytest.fixture
def rl(oci: Env, test_user: HostUser) -> Rootless:
    return Rootless(oci, test_user)


def test_rootless_run(rl: Rootless) -> None:
    out = rl.outdir()
    b = rl.bundle(["true"])
    b.bind(out, "/out")
    b.sh("id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map; hostname; echo $$; "
         "touch /out/made-inside; mkdir /out/dir-inside")
    rl.save(b)
    r = rl.pyoci("run", "--bundle", str(b.path), rl.oci.cid())
    assert r.rc == 0, str(r)
    lines = r.stdout.splitlines()
    assert lines[0] == "0" and lines[1] == "0"
    assert lines[2].split() == ["0", str(rl.user.uid), "1"]
    assert lines[3].split() == ["0", str(rl.user.gid), "1"]
    assert lines[4] == "pyoci"
    assert lines[5] == "1"
    for name in ("made-inside", "dir-inside"):
        st = os.stat(out / name)
        assert (st.st_uid, st.st_gid) == (rl.user.uid, rl.user.gid), name


def test_rootless_exit_status(rl: Rootless) -> None:
    b = rl.bundle(["sh", "-c", "exit 23"])
    rl.save(b)
    r = rl.pyoci("run", "--bundle", str(b.path), rl.oci.cid())
    assert r.rc == 23, str(r)


def test_rootless_lifecycle(rl: Rootless) -> None:
    b = rl.bundle(["sleep", "1000"])
    rl.save(b)
    cid = rl.oci.cid()
    pid_file = rl.home / "pid"
    rl.pyoci("create", "--bundle", str(b.path), "--pid-file", str(pid_file), cid).ok()
    st = rl.pyoci("state", cid).ok().json()
    assert st["status"] == "created"
    pid = st["pid"]
    assert pid_file.read_text() == str(pid)
    assert pid_alive(pid)
    # the init runs as the user on the host
    assert os.stat(f"/proc/{pid}").st_uid == rl.user.uid
    assert os.stat(rl.root / cid).st_uid == rl.user.uid
    rl.pyoci("start", cid).ok()
    assert rl.pyoci("state", cid).ok().json()["status"] == "running"
    r = rl.pyoci("list", "-q").ok()
    assert r.stdout.split() == [cid]
    rl.pyoci("kill", cid, "KILL").ok()
    wait_for(lambda: not pid_alive(pid), what="the container to die")
    assert rl.pyoci("state", cid).ok().json()["status"] == "stopped"
    rl.pyoci("delete", cid).ok()
    assert rl.pyoci("state", cid).rc != 0


def test_rootless_delete_force_running(rl: Rootless) -> None:
    b = rl.bundle(["sleep", "1000"])
    rl.save(b)
    cid = rl.oci.cid()
    rl.pyoci("create", "--bundle", str(b.path), cid).ok()
    pid = rl.pyoci("state", cid).ok().json()["pid"]
    rl.pyoci("start", cid).ok()
    rl.pyoci("delete", "--force", cid).ok()
    assert not pid_alive(pid)
    assert not (rl.root / cid).exists()


def test_rootless_wide_mapping_with_newuidmap(rl: Rootless) -> None:
    """More than the user's own id: newuidmap/newgidmap and the /etc/subuid range."""
    out = rl.outdir()
    os.chmod(out, 0o777)
    sub_uid, _ = subids(rl.user, "/etc/subuid")
    sub_gid, _ = subids(rl.user, "/etc/subgid")
    b = rl.bundle(["true"])
    b.linux["uidMappings"] = [{"containerID": 0, "hostID": rl.user.uid, "size": 1},
                              {"containerID": 1, "hostID": sub_uid, "size": 1000}]
    b.linux["gidMappings"] = [{"containerID": 0, "hostID": rl.user.gid, "size": 1},
                              {"containerID": 1, "hostID": sub_gid, "size": 1000}]
    b.process["capabilities"] = {k: ["CAP_CHOWN", "CAP_FOWNER"] for k in ("bounding", "effective",
                                                                        "permitted")}
    b.bind(out, "/out")
    b.sh("cat /proc/self/uid_map; touch /out/f; chown 100:200 /out/f")
    rl.save(b)
    r = rl.pyoci("run", "--bundle", str(b.path), rl.oci.cid())
    assert r.rc == 0, str(r)
    rows = [ln.split() for ln in r.stdout.splitlines()]
    assert rows == [["0", str(rl.user.uid), "1"], ["1", str(sub_uid), "1000"]]
    st = os.stat(out / "f")
    assert (st.st_uid, st.st_gid) == (sub_uid + 99, sub_gid + 199)


@pytest.mark.parametrize("case", ["args0-missing", "unmapped-range", "bind-source-missing", "invalid-json",
                                  "rlimit-above-hard"])
def test_rootless_bad_input_leaves_nothing(rl: Rootless, case: str) -> None:
    b = rl.bundle(["sleep", "1000"])
    expect: list[str]
    if case == "args0-missing":
        b.set_args("/bin/nope")
        expect = ["$.process.args[0]", "/bin/nope"]
    elif case == "unmapped-range":
        # not in /etc/subuid: pyoci (or newuidmap) refuses
        b.linux["uidMappings"] = [{"containerID": 0, "hostID": rl.user.uid, "size": 1},
                                  {"containerID": 1, "hostID": 900000, "size": 10}]
        expect = ["uidMappings", "900000"]
    elif case == "rlimit-above-hard":
        # an unprivileged user cannot raise its hard limit
        hard = subprocess.run(["runuser", "-u", rl.user.name, "--", "sh", "-c", "ulimit -Hn"],
                              capture_output=True, text=True, check=True).stdout.strip()
        b.process["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 64, "hard": int(hard) + 1}]
        expect = ["$.process.rlimits", "Operation not permitted"]
    elif case == "bind-source-missing":
        b.bind("/nonexistent/pyoci-src", "/data")
        expect = ["$.mounts[", "/nonexistent/pyoci-src"]
    else:
        expect = ["config.json", "not valid JSON"]
    rl.save(b)
    if case == "invalid-json":
        (b.path / "config.json").write_text("{")
    cid = rl.oci.cid()
    log = rl.home / "log.json"
    r = rl.pyoci("create", "--bundle", str(b.path), cid, log=log, log_format="json")
    if r.rc == 0:
        rl.pyoci("delete", "--force", cid)
    assert r.rc != 0, str(r)
    assert len(r.err_lines) == 1, str(r)
    for s in expect:
        assert s in r.stderr, (s, r.stderr)
    assert len(log.read_text().splitlines()) == 1
    assert not (rl.root / cid).exists()
    assert rl.pyoci("state", cid).rc != 0


def test_rootless_cannot_touch_roots_containers(rl: Rootless) -> None:
    """A container created by root is not the user's to kill or delete."""
    oci = rl.oci
    b = oci.bundle(["sleep", "1000"], name="rootbundle")
    b.save()
    cid = oci.cid()
    oci.pyoci("create", "--bundle", str(b.path), cid).ok()
    pid = oci.state(cid)["pid"]
    os.chmod(oci.root, 0o755)
    as_user = {"root": oci.root, "user": rl.user, "env": {"XDG_RUNTIME_DIR": str(rl.xdg)}}
    try:
        for args in (("kill", cid, "KILL"), ("delete", "--force", cid), ("start", cid)):
            r = oci.pyoci(*args, **as_user)  # type: ignore[arg-type]
            assert r.rc != 0, str(r)
            assert len(r.err_lines) == 1 and r.err_lines[0].startswith("pyoci: "), str(r)
            assert pid_alive(pid) and (oci.root / cid).exists()
            assert oci.state(cid)["status"] == "created"
    finally:
        oci.pyoci("delete", "--force", cid).ok()
