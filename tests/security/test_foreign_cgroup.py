"""A container placed in a cgroup someone else made (issue 12, item 3).

``linux.cgroupsPath`` may name a cgroup that already exists and holds
processes that are not the container's (a service, another tenant's job).
A runtime that takes "in the container's cgroup" to mean "the container's"
kills them at ``delete --force`` or ``kill --all`` (a v1 hierarchy's pid
list, or ``cgroup.kill`` of the cgroup2 directory), and removes a cgroup it
did not make.  pyoci signals only the container's processes (its pid
namespace, or, without one, its init and what descends from it) and never
kills through, freezes or removes a cgroup it did not create.

Each test first shows the attack working against the naive path (kill
every pid the pre-existing cgroup lists, or write its ``cgroup.kill``): the
bystander dies.  Then a second bystander shares the cgroup with a pyoci
container, which is force-deleted (or killed with --all): the bystander
and the cgroup survive, and the container's own processes are gone.

Root only: an unprivileged user cannot place processes in the host's
cgroups.  The hierarchies used are this machine's v1 ``freezer`` and
``cpu`` ones and the cgroup2 directory (``/sys/fs/cgroup/unified`` on a
hybrid host, ``/sys/fs/cgroup`` on a v2 one); a test skips when its
hierarchy is not mounted.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.ocitest import BASE_PATH, Bundle, Env, wait_for

from pyoci.cgroups import manager as cgroups


def _hierarchy_dir(name: str) -> str | None:
    """The mount point of a v1 controller's hierarchy, or "" for cgroup2."""
    lay = cgroups.layout()
    if name == "":
        return lay.unified
    return lay.v1.get(name)


class Foreign:
    """A cgroup made by "someone else" and a bystander process in it."""

    def __init__(self, hierarchy: str) -> None:
        """hierarchy: a v1 controller, "" for cgroup2, "*" for every hierarchy
        (then pyoci creates no directory of the container's at all)."""
        if hierarchy == "*":
            lay = cgroups.layout()
            mounts = sorted(set(lay.v1.values()) | ({lay.unified} if lay.unified else set()))
        else:
            mount = _hierarchy_dir(hierarchy)
            if not mount:
                pytest.skip(f"no {hierarchy or 'cgroup2'} hierarchy is mounted here")
            mounts = [mount]
        self.rel = f"/pyoci-foreign-{uuid.uuid4().hex[:10]}"
        self.dirs = [Path(m + self.rel) for m in mounts]
        self.dir = self.dirs[0]
        for d in self.dirs:
            d.mkdir()
            if (d / "cpuset.cpus").exists():     # a new v1 cpuset starts empty
                for f in ("cpuset.cpus", "cpuset.mems"):
                    (d / f).write_text((d.parent / f).read_text())
        self.procs: list[subprocess.Popen[bytes]] = []

    def bystander(self) -> subprocess.Popen[bytes]:
        p = subprocess.Popen(["sleep", "600"], stdin=subprocess.DEVNULL, env={"PATH": BASE_PATH})
        self.procs.append(p)
        for d in self.dirs:
            (d / "cgroup.procs").write_text(str(p.pid))
            assert str(p.pid) in (d / "cgroup.procs").read_text().split()
        return p

    def close(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait(timeout=10)
        for top in self.dirs:
            for d in sorted(top.rglob("*"), reverse=True) + [top]:
                if d.is_dir():
                    try:
                        d.rmdir()
                    except OSError:
                        pass


@pytest.fixture
def foreign(request: pytest.FixtureRequest) -> Iterator[Foreign]:
    f = Foreign(request.param)
    try:
        yield f
    finally:
        f.close()


HIERARCHIES = pytest.mark.parametrize("foreign", ["freezer", "cpu", "", "*"], indirect=True,
                                      ids=["v1-freezer", "v1-cpu", "cgroup2", "everywhere"])


def naive_kill_all(d: Path) -> None:
    """What a runtime without the defence does at delete --force: cgroup.kill
    where the kernel has it, else SIGKILL to every pid the cgroup lists."""
    kill_file = d / "cgroup.kill"
    if kill_file.exists():
        kill_file.write_text("1")
        return
    for pid in (d / "cgroup.procs").read_text().split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except ProcessLookupError:
            pass


def alive(p: subprocess.Popen[bytes], settle: float = 0.3) -> bool:
    time.sleep(settle)
    return p.poll() is None


def in_cgroup(oci: Env, f: Foreign, args: list[str], *, pid_ns: bool) -> Bundle:
    b = oci.bundle(args)
    b.linux["cgroupsPath"] = f.rel
    if not pid_ns:
        b.drop_namespace("pid")
    return b.save()


def show_naive_kill(hierarchy: str) -> None:
    """The naive path: the bystander of a pre-existing cgroup dies.  (In a
    cgroup of its own: since Linux 6.x a cgroup2 directory that was ever
    cgroup.kill'ed kills a process cloned into it with CLONE_INTO_CGROUP,
    which would fail the container's create, not what is tested here.)"""
    f = Foreign(hierarchy if hierarchy != "*" else "freezer")
    try:
        p = f.bystander()
        naive_kill_all(f.dir)
        p.wait(timeout=5)
        assert p.returncode == -signal.SIGKILL
    finally:
        f.close()


def _pids_of(oci: Env, cid: str) -> list[int]:
    r = oci.pyoci("ps", "--format", "json", cid).ok()
    return [int(x) for x in r.json()]


@HIERARCHIES
@pytest.mark.parametrize("pid_ns", [True, False], ids=["own-pidns", "host-pidns"])
def test_delete_force_spares_the_bystander(oci: Env, foreign: Foreign, pid_ns: bool,
                                          request: pytest.FixtureRequest) -> None:
    show_naive_kill(request.node.callspec.params["foreign"])

    bystander = foreign.bystander()
    # the container's init forks a child of its own, which must die with it
    b = in_cgroup(oci, foreign, ["sh", "-c", "sleep 600 & exec sleep 601"], pid_ns=pid_ns)
    cid = oci.cid()
    oci.pyoci("run", "-d", "--bundle", str(b.path), cid).ok()
    init = oci.state(cid)["pid"]
    mine = wait_for(lambda: [p for p in _pids_of(oci, cid) if p != init] and _pids_of(oci, cid),
                    what="the container's child")
    assert bystander.pid not in mine, f"`ps` lists the bystander {bystander.pid} as the container's: {mine}"
    oci.pyoci("delete", "--force", cid).ok()
    assert alive(bystander), "delete --force killed a process that is not the container's"
    assert foreign.dir.is_dir(), "delete --force removed a cgroup pyoci did not create"
    wait_for(lambda: not any(os.path.exists(f"/proc/{p}") and _running(p) for p in mine),
             what="the container's processes to die")
    assert str(bystander.pid) in (foreign.dir / "cgroup.procs").read_text().split()


@HIERARCHIES
@pytest.mark.parametrize("pid_ns", [True, False], ids=["own-pidns", "host-pidns"])
def test_kill_all_spares_the_bystander(oci: Env, foreign: Foreign, pid_ns: bool,
                                      request: pytest.FixtureRequest) -> None:
    show_naive_kill(request.node.callspec.params["foreign"])
    bystander = foreign.bystander()
    b = in_cgroup(oci, foreign, ["sh", "-c", "trap 'exit 0' TERM; sleep 600 & wait"], pid_ns=pid_ns)
    cid = oci.cid()
    oci.pyoci("run", "-d", "--bundle", str(b.path), cid).ok()
    for sig in ("TERM", "KILL"):
        oci.pyoci("kill", "--all", cid, sig).ok()
        oci.wait_status(cid, "stopped")
        assert alive(bystander), f"kill --all {sig} killed a process that is not the container's"
        if sig == "TERM":
            oci.pyoci("delete", cid).ok()
            cid = oci.cid()
            oci.pyoci("run", "-d", "--bundle", str(b.path), cid).ok()
    oci.pyoci("delete", "--force", cid).ok()
    assert alive(bystander) and foreign.dir.is_dir()


@pytest.mark.parametrize("foreign", ["freezer"], indirect=True)
def test_pause_does_not_freeze_a_pre_existing_cgroup(oci: Env, foreign: Foreign) -> None:
    """Freezing a cgroup pyoci did not make would stop the bystander too:
    `pause` freezes only a freezer pyoci made (here the cgroup2 directory,
    which it created), or says there is none."""
    bystander = foreign.bystander()
    b = in_cgroup(oci, foreign, ["sleep", "600"], pid_ns=True)
    cid = oci.cid()
    oci.pyoci("run", "-d", "--bundle", str(b.path), cid).ok()
    r = oci.pyoci("pause", cid)
    try:
        assert r.rc == 0 or "no freezer cgroup" in r.stderr, str(r)
        assert (foreign.dir / "freezer.state").read_text().strip() == "THAWED"
    finally:
        if r.rc == 0:
            oci.pyoci("resume", cid).ok()
        oci.pyoci("delete", "--force", cid).ok()
    assert alive(bystander)


@pytest.mark.parametrize("foreign", ["freezer", "", "*"], indirect=True,
                         ids=["v1-freezer", "cgroup2", "everywhere"])
def test_exec_processes_go_too_without_a_pid_namespace(oci: Env, foreign: Foreign) -> None:
    """An exec'd process descends from `pyoci exec`, not from the init: in
    the container's mount namespace, it is the container's all the same."""
    bystander = foreign.bystander()
    b = in_cgroup(oci, foreign, ["sleep", "600"], pid_ns=False)
    cid = oci.cid()
    oci.pyoci("run", "-d", "--bundle", str(b.path), cid).ok()
    oci.pyoci("exec", "-d", cid, "sleep", "602").ok()
    mine = wait_for(lambda: len(_pids_of(oci, cid)) >= 2 and _pids_of(oci, cid), what="the exec'd process")
    assert bystander.pid not in mine
    oci.pyoci("delete", "--force", cid).ok()
    wait_for(lambda: not any(_running(p) for p in mine), what="the container's processes to die")
    assert alive(bystander) and foreign.dir.is_dir()


def test_a_cgroup_pyoci_created_below_a_pre_existing_one_is_cleaned(oci: Env) -> None:
    """cgroupsPath /<someone's>/<new>: pyoci made the leaf, so what is in it
    is the container's and goes; the parent and its bystander stay."""
    f = Foreign("freezer" if _hierarchy_dir("freezer") else "")
    try:
        bystander = f.bystander()
        b = oci.bundle(["sh", "-c", "sleep 600 & exec sleep 601"])
        b.linux["cgroupsPath"] = f.rel + "/ctr"
        b.drop_namespace("pid")
        b.save()
        cid = oci.cid()
        oci.pyoci("run", "-d", "--bundle", str(b.path), cid).ok()
        mine = wait_for(lambda: len(_pids_of(oci, cid)) >= 2 and _pids_of(oci, cid), what="two processes")
        oci.pyoci("delete", "--force", cid).ok()
        assert not (f.dir / "ctr").exists(), "the container's own cgroup was left"
        assert alive(bystander) and f.dir.is_dir()
        wait_for(lambda: not any(_running(p) for p in mine), what="the container's processes to die")
    finally:
        f.close()


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False
