"""The container lifecycle through the CLI: create, start, state, kill, delete,
run, list, and what each verb refuses.  Real processes, real namespaces."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from helpers.ocitest import Env, check_leaks, clean_up_after_leak, pid_alive, wait_for

SLEEPER = ["sleep", "1000"]


def _created(oci: Env, args: list[str] | None = None) -> tuple[str, int]:
    b = oci.bundle(args or SLEEPER)
    cid = oci.cid()
    oci.pyoci("create", "--bundle", str(b.path), cid).ok()
    st = oci.state(cid)
    return cid, int(st["pid"])


def _one_error_line(r) -> str:  # type: ignore[no-untyped-def]
    lines = r.err_lines
    assert len(lines) == 1, f"expected exactly one stderr line:\n{r}"
    return lines[0]


def test_full_lifecycle(oci: Env) -> None:
    out = oci.mkdir("out")
    b = oci.bundle()
    b.bind(out, "/out")
    b.sh("echo started > /out/marker; exec sleep 1000")
    b.save()
    cid = oci.cid()
    pid_file = oci.path("init.pid")

    r = oci.pyoci("create", "--bundle", str(b.path), "--pid-file", str(pid_file), cid).ok()
    assert r.stderr == ""
    st = oci.state(cid)
    assert st["status"] == "created"
    assert st["id"] == cid
    assert st["bundle"] == str(b.path)
    assert st["ociVersion"]
    pid = st["pid"]
    assert isinstance(pid, int) and pid > 0
    raw = pid_file.read_bytes()
    assert raw == str(pid).encode(), f"pid file holds {raw!r}, state says {pid}"
    assert pid_alive(pid)
    with open(f"/proc/{pid}/comm") as f:
        assert f.read().strip() == "pyoci:[2:INIT]"
    # Not started yet: the user's program has not run.
    time.sleep(0.1)
    assert not (out / "marker").exists()

    oci.pyoci("start", cid).ok()
    st = oci.state(cid)
    assert st["status"] == "running"
    assert st["pid"] == pid
    wait_for(lambda: (out / "marker").exists(), what="the container's program to run")
    assert (out / "marker").read_text() == "started\n"
    with open(f"/proc/{pid}/comm") as f:
        assert f.read().strip() == "sleep"

    oci.pyoci("kill", cid, "KILL").ok()
    wait_for(lambda: not pid_alive(pid), what="init to die")
    st = oci.wait_status(cid, "stopped")
    assert st["id"] == cid

    oci.pyoci("delete", cid).ok()
    r = oci.pyoci("state", cid).fails()
    assert cid in _one_error_line(r)
    assert "does not exist" in r.stderr
    assert not (oci.root / cid).exists()


def test_state_pid_is_the_init_in_its_own_pid_namespace(oci: Env) -> None:
    cid, pid = _created(oci)
    oci.pyoci("start", cid).ok()
    # pid 1 of a new pid namespace
    with open(f"/proc/{pid}/status") as f:
        nspid = [ln for ln in f.read().splitlines() if ln.startswith("NSpid:")][0].split()[1:]
    assert nspid[-1] == "1"
    assert os.readlink(f"/proc/{pid}/ns/pid") != os.readlink("/proc/self/ns/pid")
    oci.pyoci("delete", "--force", cid).ok()


@pytest.mark.parametrize("started", [False, True], ids=["created", "running"])
def test_delete_without_force_refuses_a_live_container(oci: Env, started: bool) -> None:
    cid, pid = _created(oci)
    if started:
        oci.pyoci("start", cid).ok()
    status = "running" if started else "created"
    before = sorted(os.listdir(oci.root / cid))
    r = oci.pyoci("delete", cid).fails()
    line = _one_error_line(r)
    assert cid in line and status in line
    # nothing changed
    assert oci.state(cid)["status"] == status
    assert pid_alive(pid)
    assert sorted(os.listdir(oci.root / cid)) == before
    oci.pyoci("delete", "--force", cid).ok()
    assert not pid_alive(pid)
    oci.pyoci("state", cid).fails()


@pytest.mark.parametrize("started", [False, True], ids=["created", "running"])
def test_delete_force_kills_and_removes(oci: Env, started: bool) -> None:
    cid, pid = _created(oci)
    if started:
        oci.pyoci("start", cid).ok()
    r = oci.pyoci("delete", "--force", cid).ok()
    assert r.stderr == ""
    # delete returns only when the init is gone
    assert not pid_alive(pid)
    assert not (oci.root / cid).exists()
    assert "does not exist" in oci.pyoci("state", cid).fails().stderr


def test_delete_force_of_unknown_id_succeeds(oci: Env) -> None:
    r = oci.pyoci("delete", "--force", oci.cid("nosuch"))
    assert r.rc == 0, str(r)
    assert r.stderr == ""


def test_delete_of_unknown_id_fails(oci: Env) -> None:
    cid = oci.cid("nosuch")
    r = oci.pyoci("delete", cid).fails()
    assert cid in _one_error_line(r)


def test_second_create_of_same_id_fails_and_leaves_first(oci: Env) -> None:
    cid, pid = _created(oci)
    state_before = (oci.root / cid / "state.json").read_bytes()
    b2 = oci.bundle(["true"], name="other")
    r = oci.pyoci("create", "--bundle", str(b2.path), cid).fails()
    line = _one_error_line(r)
    assert cid in line and "exists" in line
    st = oci.state(cid)
    assert st["status"] == "created" and st["pid"] == pid
    assert (oci.root / cid / "state.json").read_bytes() == state_before
    assert pid_alive(pid)
    oci.pyoci("delete", "--force", cid).ok()


def test_start_twice_fails(oci: Env) -> None:
    cid, pid = _created(oci)
    oci.pyoci("start", cid).ok()
    r = oci.pyoci("start", cid).fails()
    line = _one_error_line(r)
    assert cid in line and "running" in line
    assert oci.state(cid)["status"] == "running"
    assert pid_alive(pid)
    oci.pyoci("delete", "--force", cid).ok()


def test_start_of_unknown_id_fails(oci: Env) -> None:
    r = oci.pyoci("start", oci.cid("nosuch")).fails()
    assert "does not exist" in _one_error_line(r)


def test_kill_of_stopped_container_fails(oci: Env) -> None:
    cid, pid = _created(oci)
    oci.pyoci("start", cid).ok()
    oci.pyoci("kill", cid, "9").ok()
    oci.wait_status(cid, "stopped")
    r = oci.pyoci("kill", cid, "KILL").fails()
    line = _one_error_line(r)
    assert cid in line and "stopped" in line
    # kill --all of a stopped container is what shims send after the exit: quiet success
    oci.pyoci("kill", "--all", cid, "KILL").ok()
    oci.pyoci("delete", cid).ok()


def test_kill_default_signal_is_term(oci: Env) -> None:
    out = oci.mkdir("out")
    b = oci.bundle()
    b.bind(out, "/out")
    b.sh("trap 'echo TERM > /out/got; exit 3' TERM; echo ready > /out/ready; "
         "while true; do sleep 0.05; done")
    b.save()
    cid = oci.cid()
    oci.pyoci("create", "--bundle", str(b.path), cid).ok()
    oci.pyoci("start", cid).ok()
    wait_for(lambda: (out / "ready").exists(), what="the trap to be installed")
    oci.pyoci("kill", cid).ok()
    wait_for(lambda: (out / "got").exists(), what="SIGTERM to reach the container")
    assert (out / "got").read_text() == "TERM\n"
    oci.wait_status(cid, "stopped")
    oci.pyoci("delete", cid).ok()


def test_kill_a_created_container(oci: Env) -> None:
    cid, pid = _created(oci)
    oci.pyoci("kill", cid, "SIGKILL").ok()
    wait_for(lambda: not pid_alive(pid), what="init to die")
    assert oci.state(cid)["status"] == "stopped"
    oci.pyoci("delete", cid).ok()


def test_kill_with_unknown_signal_fails(oci: Env) -> None:
    cid, pid = _created(oci)
    r = oci.pyoci("kill", cid, "SIGNOPE").fails()
    assert "SIGNOPE" in _one_error_line(r)
    assert oci.state(cid)["status"] == "created"
    oci.pyoci("delete", "--force", cid).ok()


def test_run_exit_status(oci: Env) -> None:
    b = oci.bundle()
    b.sh("echo out; echo err >&2; exit 42")
    r = oci.run(b)
    assert r.rc == 42, str(r)
    assert r.stdout == "out\n"
    assert r.stderr == "err\n"


def test_run_success_and_auto_delete(oci: Env) -> None:
    b = oci.bundle(["true"])
    cid = oci.cid()
    r = oci.run(b, cid)
    assert r.rc == 0 and r.stdout == "" and r.stderr == "", str(r)
    assert not (oci.root / cid).exists()


def test_run_killed_by_own_signal(oci: Env) -> None:
    # Without a pid namespace the shell is not an init, so it can die of its own signal.
    b = oci.bundle()
    b.drop_namespace("pid")
    b.sh("kill -USR1 $$; sleep 5")
    r = oci.run(b)
    assert r.rc == 128 + signal.SIGUSR1, str(r)


def test_run_killed_from_outside(oci: Env) -> None:
    b = oci.bundle(SLEEPER)
    b.save()
    cid = oci.cid()
    p = oci.popen("run", "--bundle", str(b.path), cid)
    try:
        st = oci.wait_status(cid, "running")
        oci.pyoci("kill", cid, "KILL").ok()
        rc = p.wait(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert rc == 128 + 9
    assert not pid_alive(st["pid"])
    assert not (oci.root / cid).exists()


def test_run_forwards_signals(oci: Env) -> None:
    out = oci.mkdir("out")
    b = oci.bundle()
    b.bind(out, "/out")
    b.sh("trap 'exit 7' HUP; echo ready > /out/ready; while true; do sleep 0.05; done")
    b.save()
    cid = oci.cid()
    p = oci.popen("run", "--bundle", str(b.path), cid)
    try:
        wait_for(lambda: (out / "ready").exists(), what="the container to start")
        p.send_signal(signal.SIGHUP)
        rc = p.wait(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert rc == 7


def test_run_detach_and_keep(oci: Env) -> None:
    b = oci.bundle(SLEEPER)
    cid = oci.cid()
    r = oci.run(b, cid, "--detach")
    assert r.rc == 0, str(r)
    st = oci.state(cid)
    assert st["status"] == "running"
    oci.pyoci("delete", "--force", cid).ok()

    b2 = oci.bundle(["sh", "-c", "exit 3"])
    cid2 = oci.cid()
    r = oci.run(b2, cid2, "--keep")
    assert r.rc == 3, str(r)
    assert oci.state(cid2)["status"] == "stopped"
    oci.pyoci("delete", cid2).ok()


def test_list(oci: Env) -> None:
    # A --root given that does not exist is an error (test_runc_compat.py);
    # an empty one lists nothing.
    oci.root.mkdir(mode=0o700)
    r = oci.pyoci("list", "-q").ok()
    assert r.stdout == ""
    r = oci.pyoci("list", "--format", "json").ok()
    assert json.loads(r.stdout) in ([], None)

    a, pid_a = _created(oci)
    bcid, pid_b = _created(oci)
    oci.pyoci("start", bcid).ok()

    r = oci.pyoci("list", "-q").ok()
    assert sorted(r.stdout.split()) == sorted([a, bcid])
    r = oci.pyoci("list", "--format", "json").ok()
    items = {i["id"]: i for i in json.loads(r.stdout)}
    assert set(items) == {a, bcid}
    assert items[a]["status"] == "created" and items[a]["pid"] == pid_a
    assert items[bcid]["status"] == "running" and items[bcid]["pid"] == pid_b
    assert items[a]["bundle"].startswith(str(oci.tmp))
    r = oci.pyoci("list").ok()
    lines = r.stdout.splitlines()
    assert lines[0].split()[:3] == ["ID", "PID", "STATUS"]
    assert any(ln.split()[:3] == [a, str(pid_a), "created"] for ln in lines[1:])

    for cid in (a, bcid):
        oci.pyoci("delete", "--force", cid).ok()
    assert oci.pyoci("list", "-q").ok().stdout == ""


def test_concurrent_commands_during_delete(oci: Env) -> None:
    cid, pid = _created(oci)
    oci.pyoci("start", cid).ok()

    def call(args: tuple[str, ...]):  # type: ignore[no-untyped-def]
        return oci.pyoci(*args, timeout=60)

    jobs = [("state", cid)] * 6 + [("kill", cid, "TERM")] * 3 + [("delete", "--force", cid)] \
        + [("state", cid)] * 4 + [("kill", cid, "KILL")] * 2 + [("delete", "--force", cid)]
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        results = list(pool.map(call, jobs))
    for job, r in zip(jobs, results, strict=True):
        assert "Traceback" not in r.stderr, str(r)
        assert len(r.err_lines) <= 1, str(r)
        if job[0] == "delete":
            assert r.rc == 0, str(r)
        elif job[0] == "state":
            if r.rc == 0:
                st = json.loads(r.stdout)
                assert st["id"] == cid and st["status"] in ("running", "stopped")
            else:
                assert "does not exist" in r.stderr, str(r)
        else:  # kill
            if r.rc != 0:
                assert r.err_lines[0].startswith("pyoci: "), str(r)
                assert "does not exist" in r.stderr or "stopped" in r.stderr, str(r)
    assert not pid_alive(pid)
    assert not (oci.root / cid).exists()
    oci.pyoci("state", cid).fails()


def test_concurrent_create_of_one_id(oci: Env) -> None:
    b = oci.bundle(SLEEPER)
    cid = oci.cid()

    def create(_: int):  # type: ignore[no-untyped-def]
        return oci.pyoci("create", "--bundle", str(b.path), cid, timeout=60)

    with ThreadPoolExecutor(max_workers=5) as pool:
        results = list(pool.map(create, range(5)))
    ok = [r for r in results if r.rc == 0]
    assert len(ok) == 1, "\n".join(map(str, results))
    for r in results:
        if r.rc != 0:
            assert len(r.err_lines) == 1 and "exists" in r.stderr, str(r)
    st = oci.state(cid)
    assert st["status"] == "created" and pid_alive(st["pid"])
    oci.pyoci("delete", "--force", cid).ok()


def test_invalid_container_id_is_refused(oci: Env) -> None:
    b = oci.bundle()
    for bad in ("../escape", "a/b", ".hidden", ""):
        r = oci.pyoci("create", "--bundle", str(b.path), bad).fails()
        assert len(r.err_lines) == 1, str(r)
    assert not (oci.tmp / "escape").exists()


def test_leak_detector_sees_a_leftover_container(oci: Env) -> None:
    """The after-test leak check must be able to fail: a container left
    behind (created, then started) and a mount under the test dir are found."""
    cid, pid = _created(oci)
    problems = check_leaks(oci, wait=0)
    assert any(f"pid {pid} " in p for p in problems), problems
    assert any(cid in p and "state dir" in p for p in problems), problems
    oci.pyoci("start", cid).ok()
    wait_for(lambda: open(f"/proc/{pid}/comm").read().strip() == "sleep", what="exec")
    # after execve the environment and command line are the container's: the root gives it away
    assert any(f"pid {pid} " in p and "rootfs" in p for p in check_leaks(oci, wait=0))
    mnt = oci.mkdir("mnt")
    subprocess.run(["mount", "-t", "tmpfs", "none", str(mnt)], check=True)
    assert any(p.startswith("mount:") for p in check_leaks(oci, wait=0))
    clean_up_after_leak(oci)
    assert check_leaks(oci) == []
    assert not pid_alive(pid)
