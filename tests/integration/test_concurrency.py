"""Concurrent commands on the real binary, as root and rootless: races on
one container id, and load (many containers at once).

Each race is run several times.  What must hold every time: exactly one of
two conflicting commands wins; the loser exits non-zero with one clear
`pyoci: ...` line (never "internal error"); the container ends in a state
the other commands agree on; and after a `delete --force` nothing is left:
no state dir, mount, process or cgroup (the ``oci`` fixture checks the first
three; :func:`cgroup_leaks` the last).

The load cases keep `make test` short (100 lifecycles 20 at once, 50
containers alive at once); `make load` (tools/load.py) runs the same
scenarios bigger, timed against runc.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from helpers.ocitest import Bundle, Env, HostUser, Result, cgroup_dirs_named, pid_alive, wait_for
from helpers.users import Rootless

ROUNDS = 4


def cgroup_leaks(oci: Env) -> list[str]:
    """cgroup directories named after one of the test's containers (ids
    hold the token), in every hierarchy, at any depth."""
    return cgroup_dirs_named(f"-{oci.token[:8]}-", exact=False, depth=None)


def no_cgroup_leaks(oci: Env) -> None:
    left = cgroup_leaks(oci)
    if left:
        wait_for(lambda: not cgroup_leaks(oci), timeout=3, what=f"cgroups {left} to go")


def clear_error(r: Result, *phrases: str) -> None:
    """One `pyoci:` line (warnings aside), no internal error, and one of the phrases."""
    assert r.rc != 0, str(r)
    assert "internal error" not in r.stderr and "Traceback" not in r.stderr, str(r)
    lines = [ln for ln in r.err_lines if not ln.startswith("pyoci: warning")]
    assert len(lines) >= 1 and lines[0].startswith("pyoci: "), str(r)
    if phrases:
        assert any(p in r.stderr for p in phrases), str(r)


def no_internal_error(r: Result) -> None:
    assert "internal error" not in r.stderr and "Traceback" not in r.stderr, str(r)


class Runner:
    """Runs pyoci as root or as the rootless test user, on one state root."""

    def __init__(self, oci: Env, rl: Rootless | None) -> None:
        self.oci = oci
        self.rl = rl

    def bundle(self, args: list[str], name: str | None = None) -> Bundle:
        if self.rl is None:
            return self.oci.bundle(args, name=name)
        return self.rl.bundle(args, name=name)

    def save(self, b: Bundle) -> Bundle:
        if self.rl is None:
            return b.save()
        self.rl.save(b)
        return b

    def outdir(self) -> Path:
        if self.rl is None:
            return self.oci.mkdir("out", 0o777)
        return self.rl.outdir()

    def pyoci(self, *args: str, timeout: float = 60) -> Result:
        if self.rl is None:
            return self.oci.pyoci(*args, timeout=timeout)
        r: Result = self.rl.pyoci(*args, timeout=timeout)
        return r

    def together(self, *calls: tuple[str, ...], delays: tuple[float, ...] = ()) -> list[Result]:
        """Run the calls at the same moment (each on its own thread; a call
        may be delayed by the matching entry of ``delays``)."""
        def one(i: int) -> Result:
            if i < len(delays) and delays[i]:
                time.sleep(delays[i])
            return self.pyoci(*calls[i])

        with ThreadPoolExecutor(max_workers=len(calls)) as pool:
            return list(pool.map(one, range(len(calls))))

    def status(self, cid: str) -> str:
        r = self.pyoci("state", cid)
        if r.rc != 0:
            clear_error(r, "does not exist")
            return "gone"
        return str(r.json()["status"])


@pytest.fixture(params=["root", "rootless"])
def run(request: pytest.FixtureRequest, oci: Env) -> Runner:
    if request.param == "root":
        return Runner(oci, None)
    user: HostUser = request.getfixturevalue("test_user")
    return Runner(oci, Rootless(oci, user))


def after(run: Runner, cid: str) -> None:
    """delete --force leaves nothing, and the id is free again."""
    r = run.pyoci("delete", "--force", cid)
    assert r.rc == 0, str(r)
    assert run.status(cid) == "gone"
    no_cgroup_leaks(run.oci)


# -- races on one id -----------------------------------------------------------------


def test_two_creates_of_one_id(run: Runner) -> None:
    b = run.save(run.bundle(["sleep", "1000"]))
    for _ in range(ROUNDS):
        cid = run.oci.cid()
        rs = run.together(("create", "--bundle", str(b.path), cid), ("create", "--bundle", str(b.path), cid))
        won = [r for r in rs if r.rc == 0]
        lost = [r for r in rs if r.rc != 0]
        assert len(won) == 1 and len(lost) == 1, "\n".join(map(str, rs))
        clear_error(lost[0], "already exists")
        # the winner's container is whole: created, its init alive, startable
        st = run.pyoci("state", cid).ok().json()
        assert st["status"] == "created" and pid_alive(st["pid"])
        run.pyoci("start", cid).ok()
        assert run.status(cid) == "running"
        after(run, cid)


def test_two_starts_at_once(run: Runner) -> None:
    out = run.outdir()
    b = run.bundle(["true"])
    b.bind(out, "/out")
    b.sh("echo started >> /out/log; exec sleep 1000")
    run.save(b)
    for i in range(ROUNDS):
        cid = run.oci.cid()
        run.pyoci("create", "--bundle", str(b.path), cid).ok()
        rs = run.together(("start", cid), ("start", cid))
        won = [r for r in rs if r.rc == 0]
        lost = [r for r in rs if r.rc != 0]
        assert len(won) == 1 and len(lost) == 1, "\n".join(map(str, rs))
        clear_error(lost[0], "cannot start container")
        want = i + 1
        wait_for(lambda: (out / "log").exists() and len((out / "log").read_text().split()) == want,  # noqa: B023
                 what="the program to start")
        assert run.status(cid) == "running"
        after(run, cid)
        # the program ran once per container, never twice
        assert (out / "log").read_text().split() == ["started"] * (i + 1)


@pytest.mark.parametrize("delay", [0.0, 0.02])
def test_delete_force_during_start(run: Runner, delay: float) -> None:
    b = run.save(run.bundle(["sleep", "1000"]))
    for _ in range(ROUNDS):
        cid = run.oci.cid()
        st = run.pyoci("create", "--bundle", str(b.path), cid).ok()
        pid = run.pyoci("state", cid).ok().json()["pid"]
        start, delete = run.together(("start", cid), ("delete", "--force", cid), delays=(0.0, delay))
        assert delete.rc == 0, str(delete)
        if start.rc != 0:
            clear_error(start)
        no_internal_error(st)
        assert run.status(cid) == "gone"
        wait_for(lambda: not pid_alive(pid), timeout=5, what=f"init {pid} to die")  # noqa: B023
        no_cgroup_leaks(run.oci)


@pytest.mark.parametrize("delay", [0.0, 0.05])
def test_delete_force_during_exec(run: Runner, delay: float) -> None:
    b = run.save(run.bundle(["sleep", "1000"]))
    for _ in range(ROUNDS):
        cid = run.oci.cid()
        run.pyoci("run", "--detach", "--bundle", str(b.path), cid).ok()
        t0 = time.monotonic()
        ex, delete = run.together(("exec", cid, "sleep", "1000"), ("delete", "--force", cid),
                                  delays=(0.0, delay))
        assert delete.rc == 0, str(delete)
        no_internal_error(ex)
        assert ex.rc != 0, str(ex)      # killed, or refused: never a sleep that outlived its container
        assert time.monotonic() - t0 < 20
        assert run.status(cid) == "gone"
        no_cgroup_leaks(run.oci)


@pytest.mark.parametrize("delay", [0.0, 0.04])
def test_kill_during_create(run: Runner, delay: float) -> None:
    b = run.save(run.bundle(["sleep", "1000"]))
    for _ in range(ROUNDS):
        cid = run.oci.cid()
        create, kill = run.together(("create", "--bundle", str(b.path), cid), ("kill", cid, "KILL"),
                                    delays=(0.0, delay))
        no_internal_error(create)
        if kill.rc != 0:
            # before create made the directory, or while it is creating
            clear_error(kill, "does not exist", "cannot kill container")
        status = run.status(cid)
        if create.rc != 0:
            clear_error(create)
            assert status == "gone", status
            continue
        # killed (stopped) or not reached (created): both agree with the results
        assert status == ("stopped" if kill.rc == 0 else "created"), (status, str(kill))
        after(run, cid)


# -- load ---------------------------------------------------------------------------------


def in_parallel(n: int, width: int, fn: Callable[[int], Any]) -> list[Any]:
    with ThreadPoolExecutor(max_workers=width) as pool:
        return list(pool.map(fn, range(n)))


def test_100_lifecycles_20_at_once(run: Runner) -> None:
    b = run.save(run.bundle(["true"]))
    ids = [run.oci.cid() for _ in range(100)]

    def lifecycle(i: int) -> str:
        cid = ids[i]
        for args in (("create", "--bundle", str(b.path), cid), ("start", cid)):
            r = run.pyoci(*args)
            if r.rc != 0:
                return str(r)
        deadline = time.monotonic() + 30
        while (s := run.status(cid)) != "stopped":
            if time.monotonic() > deadline:
                return f"{cid} still {s}"
            time.sleep(0.02)
        r = run.pyoci("delete", cid)
        return "" if r.rc == 0 else str(r)

    failures = [f for f in in_parallel(len(ids), 20, lifecycle) if f]
    assert not failures, f"{len(failures)} of {len(ids)} failed; first:\n{failures[0]}"
    assert run.pyoci("list", "-q").ok().stdout.split() == []
    no_cgroup_leaks(run.oci)


def test_50_alive_then_torn_down(run: Runner) -> None:
    b = run.save(run.bundle(["sleep", "1000"]))
    ids = [run.oci.cid() for _ in range(50)]

    def up(i: int) -> Result:
        return run.pyoci("run", "--detach", "--bundle", str(b.path), ids[i])

    def down(i: int) -> Result:
        return run.pyoci("delete", "--force", ids[i])

    try:
        ups = in_parallel(len(ids), 20, up)
        failed = [r for r in ups if r.rc != 0]
        assert not failed, f"{len(failed)} of {len(ids)} failed; first:\n{failed[0]}"
        listed = run.pyoci("list", "--format", "json").ok().json() or []
        assert sorted(c["id"] for c in listed) == sorted(ids)
        assert all(c["status"] == "running" for c in listed), listed
        pids = [c["pid"] for c in listed]
    finally:
        downs = in_parallel(len(ids), 20, down)
    failed = [r for r in downs if r.rc != 0]
    assert not failed, f"{len(failed)} of {len(ids)} deletes failed; first:\n{failed[0]}"
    assert not [p for p in pids if pid_alive(p)]
    assert run.pyoci("list", "-q").ok().stdout.split() == []
    no_cgroup_leaks(run.oci)


def test_cgroup_leak_check_sees_a_leftover(oci: Env) -> None:
    """The check above is not vacuous: a container's cgroup is found while it
    exists (root: pyoci makes one per container)."""
    b = oci.bundle(["sleep", "1000"])
    cid = oci.cid()
    oci.pyoci("run", "--detach", "--bundle", str(b.path), cid).ok()
    try:
        assert cgroup_leaks(oci), "no cgroup named after the container"
    finally:
        oci.pyoci("delete", "--force", cid).ok()
    assert not cgroup_leaks(oci)
