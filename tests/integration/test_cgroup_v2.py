"""cgroup v2 on the real kernel.

This project's machines are hybrid: v1 controllers under /sys/fs/cgroup/<ctrl>
and a cgroup2 mount at /sys/fs/cgroup/unified whose root offers no
controllers, but whose directories support cgroup.procs, cgroup.freeze,
cgroup.events and device (eBPF) programs, which the kernel enforces.

* module level: the v2 freezer and the eBPF device filter on cgroups made
  here under the cgroup2 mount;
* through pyoci, "v2 only": pyoci runs in a private mount namespace where
  the v1 hierarchies are unmounted (unshare -m, then umount), so it finds a
  unified layout and takes the v2 code path for real: placement, the cgroup
  namespace, device rules, pause/resume, exec, update, errors, cleanup,
  rootless delegation, ps and kill --all (cgroup.kill) through nested
  sub-cgroups and their removal at delete, `events` stats read from the
  cgroup2 files.  On a real v2 host the wrapper unmounts nothing;
* hybrid without a v1 devices controller (only devices unmounted): the
  device rules go to the cgroup2 directory as an eBPF program.

Limits through controllers need a cgroup2 root that offers them; the test
that writes one through cgroup_v2 skips where none is offered (the unit
tests check every file and value)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.ocitest import BASE_PATH, Bundle, Env, HostUser, Result, pid_alive, wait_for
from helpers.users import Rootless

from pyoci.cgroups import bpfdev
from pyoci.cgroups import manager as cgroups
from pyoci.cgroups import v2 as cgroup_v2

LAYOUT = cgroups.layout()
UNIFIED = Path(LAYOUT.unified) if LAYOUT.unified else None
pytestmark = pytest.mark.skipif(UNIFIED is None, reason="needs a cgroup2 mount")

# Run a command in a private mount namespace without the v1 hierarchies (or
# only without those named in $CG_UNMOUNT; "everything": the cgroup2 mount
# too); $CG_LEAF: move there first.
WRAPPER = r"""
set -e
for m in $(grep ' - cgroup ' /proc/self/mountinfo | cut -d' ' -f5); do
    case " ${CG_UNMOUNT:-all} " in *" all "*|*" everything "*|*" ${m##*/} "*) umount "$m" ;; esac
done
if [ "$CG_UNMOUNT" = everything ]; then
    for m in $(grep ' - cgroup2 ' /proc/self/mountinfo | cut -d' ' -f5); do umount "$m"; done
fi
if [ -n "$CG_LEAF" ]; then echo $$ > "$CG_LEAF/cgroup.procs"; fi
exec "$@"
"""


def unified() -> Path:
    assert UNIFIED is not None
    return UNIFIED


def wrapped(oci: Env, *args: str, unmount: str = "all", leaf: str | None = None,
            user: HostUser | None = None, root: Path | None = None,
            env: dict[str, str] | None = None, timeout: float = 60) -> Result:
    """``pyoci ARGS`` in the private mount namespace (stdio to files, as Env.pyoci)."""
    cmd, full_env = oci.command(args, root=root, user=user, env=env)
    outer = dict(full_env) if user is None else {"PATH": BASE_PATH}
    outer["CG_UNMOUNT"] = unmount
    if leaf:
        outer["CG_LEAF"] = leaf
    cmd = ["unshare", "-m", "--propagation", "private", "sh", "-c", WRAPPER, "sh", *cmd]
    out, err = oci.path(f".wout.{time.monotonic_ns()}"), oci.path(f".werr.{time.monotonic_ns()}")
    with open(out, "wb") as fo, open(err, "wb") as fe:
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=fo, stderr=fe, env=outer,
                           timeout=timeout, close_fds=True)
    return Result(cmd, p.returncode, out.read_text(errors="replace"), err.read_text(errors="replace"))


def v2_line(text: str) -> str:
    return next(ln for ln in text.splitlines() if ln.startswith("0::"))


def mkcg(name: str) -> Path:
    d = unified() / name
    d.mkdir()
    return d


def rmcg(d: Path) -> None:
    for sub in sorted((p for p in d.rglob("*") if p.is_dir()), key=lambda p: len(str(p)), reverse=True):
        sub.rmdir()
    if d.exists():
        d.rmdir()


# -- the v2 freezer and the device filter, directly -------------------------------------------


def test_v2_freezer_freezes_and_thaws(tmp_path: Path) -> None:
    d = mkcg(f"pyoci-it-freeze-{os.getpid()}")
    p = subprocess.Popen(["sleep", "60"])
    try:
        (d / "cgroup.procs").write_text(str(p.pid))
        cgroups.for_layout(LAYOUT).freeze(str(d / "cgroup.freeze"), True)      # the dispatch used by pause
        assert "frozen 1" in (d / "cgroup.events").read_text().splitlines()
        assert (d / "cgroup.freeze").read_text().strip() == "1"
        cgroup_v2.freeze(str(d / "cgroup.freeze"), False)
        assert "frozen 0" in (d / "cgroup.events").read_text().splitlines()
    finally:
        p.kill()
        p.wait()
        for _ in range(100):
            try:
                rmcg(d)
                break
            except OSError:
                time.sleep(0.01)
    assert not d.exists()


OPENER = r"""
import os, sys
sys.stdin.readline()
for path in sys.argv[1:]:
    try:
        os.close(os.open(path, os.O_RDONLY))
        print(path, "ok")
    except OSError as e:
        print(path, e.errno)
"""


def open_in(d: Path, *paths: str) -> list[str]:
    """Open each path from a process placed in cgroup d; its errno or "ok"."""
    p = subprocess.Popen([sys.executable, "-c", OPENER, *paths], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    (d / "cgroup.procs").write_text(str(p.pid))
    out, _ = p.communicate("go\n", timeout=30)
    return [ln.split()[1] for ln in out.splitlines()]


def test_ebpf_device_filter_is_enforced() -> None:
    d = mkcg(f"pyoci-it-bpf-{os.getpid()}")
    try:
        # deny all, allow c 1:3 rwm: /dev/null opens, /dev/zero (c 1:5) gets EPERM
        rules = [bpfdev.Rule(False), bpfdev.Rule(True, bpfdev.DEV_CHAR, 1, 3)]
        bpfdev.attach(str(d), bpfdev.build(rules))
        first = bpfdev.attached(str(d))
        assert len(first) == 1
        assert open_in(d, "/dev/null", "/dev/zero") == ["ok", "1"]
        # the rules as a config gives them (v1 syntax, defaults appended): zero is a default
        bpfdev.apply(str(d), [{"allow": False, "access": "rwm"}])
        second = bpfdev.attached(str(d))
        assert len(second) == 1 and second != first         # replaced, not added
        assert open_in(d, "/dev/null", "/dev/zero", "/dev/kmsg") == ["ok", "ok", "1"]
        bpfdev.detach_all(str(d))
        assert bpfdev.attached(str(d)) == []
        assert open_in(d, "/dev/kmsg") == ["ok"]
    finally:
        rmcg(d)
    assert not d.exists()


def test_v2_writer_on_a_real_controller() -> None:
    """Where the cgroup2 root offers a controller pyoci maps (hugetlb here when
    no v1 hugetlb hierarchy exists, pids on a v2 host), enable it and write."""
    offered = (unified() / "cgroup.controllers").read_text().split()
    if "pids" in offered:
        resources, file, value = {"pids": {"limit": 7}}, "pids.max", "7"
    elif "hugetlb" in offered and Path("/sys/kernel/mm/hugepages/hugepages-2048kB").exists():
        resources, file, value = {"hugepageLimits": [{"pageSize": "2MB", "limit": 2097152}]}, \
            "hugetlb.2MB.max", "2097152"
    else:
        pytest.skip(f"{unified()} offers no controller pyoci maps: {offered}")
    ctrl = file.split(".")[0]
    root_ctl = unified() / "cgroup.subtree_control"
    was_on = ctrl in root_ctl.read_text().split()
    top = mkcg(f"pyoci-it-ctl-{os.getpid()}")
    leaf = top / "c"
    leaf.mkdir()
    try:
        cgroup_v2.apply(resources, str(leaf), str(unified()))
        assert (leaf / file).read_text().strip() == value
        assert ctrl in (top / "cgroup.subtree_control").read_text().split()
    finally:
        rmcg(top)
        if not was_on:
            root_ctl.write_text(f"-{ctrl}")


# -- pyoci on a v2-only view of this machine --------------------------------------------------


def own_v2() -> str:
    return cgroups.for_layout(LAYOUT).own().get("", "/")


def test_v2_placement_cgroupns_and_cleanup(oci: Env) -> None:
    rel = f"/pyoci-it-v2-{oci.token[:8]}/place"
    b = oci.bundle()
    b.linux["cgroupsPath"] = rel
    b.sh("cat /proc/self/cgroup")
    b.save()
    r = wrapped(oci, "run", "--bundle", str(b.path), oci.cid())
    assert r.rc == 0, str(r)
    assert v2_line(r.stdout) == f"0::{rel}"
    # with a cgroup namespace: rooted at the container's cgroup
    b.set_namespace("cgroup")
    b.save()
    r = wrapped(oci, "run", "--bundle", str(b.path), oci.cid())
    assert r.rc == 0, str(r)
    assert v2_line(r.stdout) == "0::/"
    assert not (unified() / rel.lstrip("/")).exists()
    assert not (unified() / rel.lstrip("/")).parent.exists()
    # no cgroupsPath: <id> beside our own cgroup (runc's rule on v2)
    cid = oci.cid()
    b.drop_namespace("cgroup")
    del b.linux["cgroupsPath"]
    b.save()
    r = wrapped(oci, "run", "--bundle", str(b.path), cid)
    assert r.rc == 0, str(r)
    base = os.path.dirname(own_v2().rstrip("/")) or "/"
    assert v2_line(r.stdout) == f"0::{os.path.join(base, cid)}"
    assert not (unified() / base.lstrip("/") / cid).exists()


def test_v2_pause_resume_exec_update_delete(oci: Env) -> None:
    rel = f"pyoci-it-v2-{oci.token[:8]}"
    d = unified() / rel
    b = oci.bundle(["sleep", "60"])
    b.linux["cgroupsPath"] = "/" + rel
    b.save()
    cid = oci.cid()
    wrapped(oci, "run", "--detach", "--bundle", str(b.path), cid).ok()
    try:
        pid = oci.state(cid)["pid"]
        assert (d / "cgroup.procs").read_text().split() == [str(pid)]
        wrapped(oci, "pause", cid).ok()
        assert oci.state(cid)["status"] == "paused"
        assert "frozen 1" in (d / "cgroup.events").read_text().splitlines()
        assert wrapped(oci, "ps", "--format", "json", cid).ok().json() == [pid]
        wrapped(oci, "resume", cid).ok()
        assert oci.state(cid)["status"] == "running"
        assert "frozen 0" in (d / "cgroup.events").read_text().splitlines()
        r = wrapped(oci, "exec", cid, "cat", "/proc/self/cgroup").ok()
        assert v2_line(r.stdout) == f"0::/{rel}"
        # no controller on this cgroup2 root: the error names the field and the file
        r = wrapped(oci, "update", "--pids-limit", "5", cid)
        if "pids" not in (unified() / "cgroup.controllers").read_text().split():
            assert r.rc == 1 and len(r.err_lines) == 1, str(r)
            assert f"$.linux.resources.pids.limit: {d}/pids.max does not exist" in r.stderr, str(r)
            assert "has no pids controller" in r.stderr, str(r)
        else:
            assert r.rc == 0, str(r)
        res = oci.path("resources.json")
        res.write_text('{"cpu": {"realtimeRuntime": 1000}}')
        r = wrapped(oci, "update", "--resources", str(res), cid)
        assert r.rc == 1 and r.err_lines[0].startswith(
            "pyoci: update $.linux.resources.cpu.realtimeRuntime: cgroup v2 has no realtime"), str(r)
    finally:
        wrapped(oci, "delete", "--force", cid).ok()
    assert not d.exists()


def test_v2_device_rules(oci: Env) -> None:
    b = oci.bundle()
    b.linux["cgroupsPath"] = f"/pyoci-it-v2dev-{oci.token[:8]}"
    b.linux["devices"] = [{"path": "/dev/kmsg2", "type": "c", "major": 1, "minor": 11, "fileMode": 0o666}]
    b.linux["resources"] = {"devices": [{"allow": False, "access": "rwm"}]}
    b.sh("head -c 1 /dev/kmsg2 >/dev/null 2>&1; echo denied=$?; head -c 1 /dev/urandom | wc -c; "
         "echo x > /dev/null && echo null-ok")
    r = wrapped(oci, "run", "--bundle", str(b.save().path), oci.cid())
    assert r.rc == 0, str(r)
    assert r.stdout.split() == ["denied=1", "1", "null-ok"], str(r)
    assert not (unified() / b.linux["cgroupsPath"].lstrip("/")).exists()


def test_v2_limit_without_its_controller_fails_and_leaves_nothing(oci: Env) -> None:
    if "pids" in (unified() / "cgroup.controllers").read_text().split():
        pytest.skip("this cgroup2 root offers pids")
    name = f"pyoci-it-v2bad-{oci.token[:8]}"
    b = oci.bundle()
    b.linux["cgroupsPath"] = f"/{name}/c"
    b.linux["resources"] = {"pids": {"limit": 5}}
    r = wrapped(oci, "run", "--bundle", str(b.save().path), oci.cid())
    assert r.rc == 1 and len(r.err_lines) == 1, str(r)
    assert r.err_lines[0].startswith(f"pyoci: $.linux.resources.pids.limit: {unified()}/{name}/c/pids.max "
                                     "does not exist: this host's cgroup v2 has no pids controller"), str(r)
    assert not (unified() / name).exists()


@pytest.mark.parametrize("resources,field", [
    ({"cpu": {"realtimeRuntime": 1000}}, "$.linux.resources.cpu.realtimeRuntime"),
    ({"network": {"classID": 7}}, "$.linux.resources.network.classID"),
    ({"unified": {"../cgroup.procs": "1"}}, "$.linux.resources.unified['../cgroup.procs']"),
    ({"devices": [{"allow": True, "type": "c", "access": "rx"}]}, "$.linux.resources.devices[0].access"),
])
def test_v2_refuses_what_it_cannot_express(oci: Env, resources: dict[str, object], field: str) -> None:
    name = f"pyoci-it-v2ref-{oci.token[:8]}"
    b = oci.bundle()
    b.linux["cgroupsPath"] = f"/{name}"
    b.linux["resources"] = resources
    r = wrapped(oci, "run", "--bundle", str(b.save().path), oci.cid())
    assert r.rc == 1 and len(r.err_lines) == 1, str(r)
    assert field in r.err_lines[0], str(r)
    assert not (unified() / name).exists()


# -- hybrid without a v1 devices controller ---------------------------------------------------


def test_hybrid_without_v1_devices_filters_with_ebpf(oci: Env) -> None:
    if not LAYOUT.v1.get("devices"):
        pytest.skip("needs the hybrid layout")
    rel = f"pyoci-it-hyb-{oci.token[:8]}"
    b = oci.bundle(["sleep", "60"])
    b.linux["cgroupsPath"] = "/" + rel
    b.linux["devices"] = [{"path": "/dev/kmsg2", "type": "c", "major": 1, "minor": 11, "fileMode": 0o666}]
    b.linux["resources"] = {"devices": [{"allow": False, "access": "rwm"}]}
    b.save()
    cid = oci.cid()
    wrapped(oci, "run", "--detach", "--bundle", str(b.path), cid, unmount="devices").ok()
    try:
        assert len(bpfdev.attached(str(unified() / rel))) == 1
        # the v1 devices cgroup of the container is the root's, which allows everything
        r = oci.pyoci("exec", cid, "sh", "-c", "head -c 1 /dev/kmsg2 >/dev/null 2>&1; echo denied=$?; "
                      "head -c 1 /dev/urandom | wc -c").ok()
        assert r.stdout.split() == ["denied=1", "1"], str(r)
        assert "5:devices:/\n" in Path(f"/proc/{oci.state(cid)['pid']}/cgroup").read_text()
    finally:
        oci.pyoci("delete", "--force", cid).ok()
    assert not (unified() / rel).exists()


# -- rootless: a delegated v2 subtree ---------------------------------------------------------


@pytest.fixture
def rl(oci: Env, test_user: HostUser) -> Rootless:  # noqa: F811 (the fixture imported above)
    return Rootless(oci, test_user)


@pytest.fixture
def delegation(rl: Rootless) -> Iterator[Path]:
    """A subtree owned by the test user, with a leaf to start pyoci from."""
    top = unified() / f"pyoci-it-deleg-{rl.oci.token[:8]}"
    (top / "leaf").mkdir(parents=True)
    for p in [top, *top.rglob("*")]:
        os.chown(p, rl.user.uid, rl.user.gid)
    yield top
    for _ in range(100):
        try:
            rmcg(top)
            break
        except OSError:
            time.sleep(0.02)
    assert not top.exists()


def test_rootless_uses_a_delegated_v2_subtree(rl: Rootless, delegation: Path) -> None:
    leaf = str(delegation / "leaf")
    env = {"XDG_RUNTIME_DIR": str(rl.xdg)}
    b = rl.bundle(["sh", "-c", "cat /proc/self/cgroup"])
    rl.save(b)
    cid = rl.oci.cid()
    r = wrapped(rl.oci, "run", "--bundle", str(b.path), cid, user=rl.user, root=rl.root, env=env, leaf=leaf)
    assert r.rc == 0, str(r)
    # beside the caller's own cgroup (leaf), inside the delegated subtree
    assert v2_line(r.stdout) == f"0::/{delegation.name}/{cid}"
    assert not (delegation / cid).exists()
    # a limit its controllers cannot take is an error about the file, not "no cgroup"
    b.linux["resources"] = {"pids": {"limit": 5}}
    rl.save(b)
    r = wrapped(rl.oci, "run", "--bundle", str(b.path), rl.oci.cid(), user=rl.user, root=rl.root, env=env,
                leaf=leaf)
    if "pids" not in (unified() / "cgroup.controllers").read_text().split():
        assert r.rc == 1 and "$.linux.resources.pids.limit" in r.stderr and "pids.max" in r.stderr, str(r)
    # pause and resume as the user
    b.set_args("sleep", "60")
    del b.linux["resources"]
    rl.save(b)
    cid = rl.oci.cid()
    wrapped(rl.oci, "run", "--detach", "--bundle", str(b.path), cid, user=rl.user, root=rl.root, env=env,
            leaf=leaf).ok()
    try:
        wrapped(rl.oci, "pause", cid, user=rl.user, root=rl.root, env=env).ok()
        assert rl.pyoci("state", cid).ok().json()["status"] == "paused"
        wrapped(rl.oci, "resume", cid, user=rl.user, root=rl.root, env=env).ok()
        assert rl.pyoci("state", cid).ok().json()["status"] == "running"
    finally:
        rl.pyoci("delete", "--force", cid).ok()
    assert not (delegation / cid).exists()


def test_rootless_in_its_own_writable_cgroup(rl: Rootless, delegation: Path) -> None:
    """Only the caller's own cgroup is writable (its parent is not): the
    container's cgroup goes below it."""
    env = {"XDG_RUNTIME_DIR": str(rl.xdg)}
    b = rl.bundle(["sh", "-c", "cat /proc/self/cgroup"])
    rl.save(b)
    cid = rl.oci.cid()
    r = wrapped(rl.oci, "run", "--bundle", str(b.path), cid, user=rl.user, root=rl.root, env=env,
                leaf=str(delegation))
    assert r.rc == 0, str(r)
    assert v2_line(r.stdout) == f"0::/{delegation.name}/{cid}"
    assert not (delegation / cid).exists()


def test_rootless_without_delegation_gets_no_cgroup(rl: Rootless) -> None:
    env = {"XDG_RUNTIME_DIR": str(rl.xdg)}
    b = rl.bundle(["sh", "-c", "cat /proc/self/cgroup"])
    rl.save(b)
    r = wrapped(rl.oci, "run", "--bundle", str(b.path), rl.oci.cid(), user=rl.user, root=rl.root, env=env)
    assert r.rc == 0, str(r)
    assert v2_line(r.stdout) == f"0::{own_v2()}"
    b.linux["resources"] = {"pids": {"limit": 5}}
    rl.save(b)
    r = wrapped(rl.oci, "run", "--bundle", str(b.path), rl.oci.cid(), user=rl.user, root=rl.root, env=env)
    assert r.rc == 1, str(r)
    assert "this user cannot write the host's cgroups" in r.stderr, str(r)


# -- sub-cgroups, kill --all, stats and events on the v2 view ---------------------------------


def _rw_cgroup_mount(b: Bundle) -> None:
    """The container's cgroup mount (its cgroup2 directory on a v2 host) read-write."""
    for m in b.config["mounts"]:
        if m["type"] == "cgroup":
            m["options"] = [o for o in m["options"] if o != "ro"] + ["rw"]


def _pid_file(out: Path, name: str) -> int:
    return int(wait_for(lambda: (out / name).exists() and (out / name).read_text().strip(),
                        what=f"the {name}'s pid"))


def _host_pid(top: Path, nspid: int) -> int:
    """The host's pid of the process with pid nspid in the container's pid
    namespace, found in its cgroup (top) or below."""
    for d, _dirs, _files in os.walk(top):
        for pid in (Path(d) / "cgroup.procs").read_text().split():
            ns = next(ln.split() for ln in Path(f"/proc/{pid}/status").read_text().splitlines()
                      if ln.startswith("NSpid:"))
            if int(ns[-1]) == nspid:
                return int(pid)
    raise AssertionError(f"no pid {nspid} of the container's pid namespace in {top}")


def _tree(top: Path) -> list[str]:
    return sorted(str(p.relative_to(top)) for p in top.rglob("*") if p.is_dir())


# The container makes inner/ in its own cgroup (through its cgroup mount) and
# moves a process there; a second child stays for the test to move.
NESTED = ("mkdir /sys/fs/cgroup/inner || exit 1; "
          "sh -c 'echo $$ > /sys/fs/cgroup/inner/cgroup.procs; exec sleep 1000' & echo $! > /out/inner; "
          "sleep 1000 & echo $! > /out/child; ")


def test_v2_ps_and_kill_all_reach_sub_cgroups(oci: Env) -> None:
    """ps lists, and kill --all signals, the processes in sub-cgroups too
    (one made by the container, one from outside); kill --all KILL of the
    paused container goes through cgroup.kill and thaws it; after the exit
    kill --all succeeds quietly, twice; delete removes the nested
    directories."""
    rel = f"pyoci-it-v2kill-{oci.token[:8]}"
    d = unified() / rel
    out = oci.mkdir("out")
    b = oci.bundle()
    b.drop_namespace("pid")
    b.bind(out, "/out")
    _rw_cgroup_mount(b)
    # the init survives USR1 (a handler; its children get the default action)
    b.sh(NESTED + "trap 'echo usr1 >> /out/usr1' USR1; while true; do sleep 0.05; done")
    b.linux["cgroupsPath"] = "/" + rel
    b.save()
    cid = oci.cid()
    wrapped(oci, "run", "--detach", "--bundle", str(b.path), cid).ok()
    try:
        init = oci.state(cid)["pid"]
        inner, child = _pid_file(out, "inner"), _pid_file(out, "child")
        (d / "sub" / "a" / "b").mkdir(parents=True)
        (d / "sub" / "a" / "b" / "cgroup.procs").write_text(str(child))
        wait_for(lambda: (d / "inner" / "cgroup.procs").read_text().split() == [str(inner)],
                 what="the container's own move into inner/")
        listed = set(wrapped(oci, "ps", "--format", "json", cid).ok().json())
        assert {init, inner, child} <= listed, listed
        wrapped(oci, "kill", "--all", cid, "USR1").ok()
        wait_for(lambda: not pid_alive(inner) and not pid_alive(child), what="USR1 to kill the sleeps")
        wait_for(lambda: (out / "usr1").exists(), what="the init's USR1 handler")
        assert pid_alive(init)
        # paused: cgroup.kill reaches frozen processes, and the cgroup is thawed after
        wrapped(oci, "pause", cid).ok()
        assert oci.state(cid)["status"] == "paused"
        wrapped(oci, "kill", "--all", cid, "KILL").ok()
        oci.wait_status(cid, "stopped")
        assert "frozen 0" in (d / "cgroup.events").read_text().splitlines()
        for _ in range(2):
            r = wrapped(oci, "kill", "--all", cid, "KILL").ok()
            assert r.stdout == r.stderr == "", str(r)
        assert _tree(d) == ["inner", "sub", "sub/a", "sub/a/b"]
        wrapped(oci, "delete", cid).ok()
    finally:
        wrapped(oci, "delete", "--force", cid)
    assert not d.exists()


@pytest.mark.parametrize("how", ["pidns-force", "no-pidns-delete", "no-pidns-killall"])
def test_v2_delete_removes_sub_cgroups(oci: Env, how: str) -> None:
    """Processes of the container in nested cgroups (made inside and
    outside): delete --force with a pid namespace (the kernel kills them
    with the init, delete waits), delete of a stopped container without one
    (delete kills the survivors through cgroup.kill), or the shim's kill
    --all KILL first; every directory goes, deepest first."""
    rel = f"pyoci-it-v2sub-{oci.token[:8]}"
    d = unified() / rel
    out = oci.mkdir("out")
    b = oci.bundle()
    b.bind(out, "/out")
    _rw_cgroup_mount(b)
    pidns = how == "pidns-force"
    b.sh(NESTED + ("exec sleep 1000" if pidns else "while [ ! -e /out/go ]; do sleep 0.05; done"))
    if not pidns:
        b.drop_namespace("pid")
    b.linux["cgroupsPath"] = "/" + rel
    b.save()
    cid = oci.cid()
    wrapped(oci, "run", "--detach", "--bundle", str(b.path), cid).ok()
    try:
        inner, child = _pid_file(out, "inner"), _pid_file(out, "child")
        if pidns:
            wait_for(lambda: (d / "inner" / "cgroup.procs").read_text().strip(), what="the move")
            inner, child = _host_pid(d, inner), _host_pid(d, child)
        (d / "sub" / "a" / "b").mkdir(parents=True)
        (d / "sub" / "a" / "b" / "cgroup.procs").write_text(str(child))
        wait_for(lambda: (d / "inner" / "cgroup.procs").read_text().split() == [str(inner)],
                 what="the container's own move into inner/")
        if pidns:
            wrapped(oci, "delete", "--force", cid).ok()
        else:
            (out / "go").touch()
            oci.wait_status(cid, "stopped")
            assert pid_alive(inner) and pid_alive(child)
            if how == "no-pidns-killall":
                wrapped(oci, "kill", "--all", cid, "KILL").ok()
                wait_for(lambda: not pid_alive(inner) and not pid_alive(child), what="cgroup.kill")
            wrapped(oci, "delete", cid).ok()
        assert not pid_alive(inner) and not pid_alive(child)
    finally:
        wrapped(oci, "delete", "--force", cid)
    assert not d.exists()


HUGETLB_FAIL = r"""
import mmap, os, sys
with open(sys.argv[1], "w") as f:
    f.write(str(os.getpid()))
try:
    mmap.mmap(-1, 2 << 20, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | 0x40000)   # MAP_HUGETLB
    print("mapped")
except OSError as e:
    print(e.errno)
"""


def _hugetlb_refused_in(d: Path) -> str:
    """From a process placed in cgroup d, map one 2 MB huge page: with
    hugetlb.2MB.rsvd.max 0 the reservation is refused (ENOMEM, 12) and the
    kernel counts it in hugetlb.2MB.events (max)."""
    return subprocess.run([sys.executable, "-c", HUGETLB_FAIL, str(d / "cgroup.procs")],
                          capture_output=True, text=True, timeout=30).stdout.strip()


@pytest.fixture
def v2_hugetlb() -> Iterator[None]:
    """hugetlb enabled for the cgroup2 root's children (this machine offers
    it there, as no v1 hierarchy has it); restored afterwards."""
    offered = (unified() / "cgroup.controllers").read_text().split()
    if "hugetlb" not in offered or not Path("/sys/kernel/mm/hugepages/hugepages-2048kB").exists():
        pytest.skip(f"{unified()} offers no hugetlb controller ({offered}) or no 2 MB pages")
    ctl = unified() / "cgroup.subtree_control"
    was_on = "hugetlb" in ctl.read_text().split()
    yield
    if not was_on:
        try:
            ctl.write_text("-hugetlb")
        except OSError:
            pass            # another cgroup enabled it below meanwhile: it stays


def _file_values(d: Path, name: str) -> dict[str, int]:
    return {k: int(v) for k, v in (ln.split() for ln in (d / name).read_text().splitlines())}


def test_v2_events_stats_are_the_files(oci: Env, v2_hugetlb: None) -> None:
    """`events --stats` on the v2 view: cpu from cpu.stat (a core file),
    pids from cgroup.procs where the pids controller is not there (as runc),
    hugetlb from hugetlb.<size>.current and .events (the controller enabled
    by pyoci for the config's hugepageLimits), the sections of controllers
    this cgroup2 lacks empty as runc leaves them; the stream reports until
    delete and then ends with status 0."""
    rel = f"pyoci-it-v2stats-{oci.token[:8]}"
    d = unified() / rel
    b = oci.bundle(["sh", "-c", "sleep 1000 & exec sleep 1000"])
    b.linux["cgroupsPath"] = "/" + rel
    b.linux["resources"] = {"hugepageLimits": [{"pageSize": "2MB", "limit": 0}]}
    b.save()
    cid = oci.cid()
    wrapped(oci, "run", "--detach", "--bundle", str(b.path), cid).ok()
    events = None
    try:
        assert (d / "hugetlb.2MB.max").read_text().strip() == "0"
        assert _hugetlb_refused_in(d) == "12"
        assert _file_values(d, "hugetlb.2MB.events") == {"max": 1}
        wait_for(lambda: len((d / "cgroup.procs").read_text().split()) == 2, what="the helper's exit")
        before = _file_values(d, "cpu.stat")
        data = wrapped(oci, "events", "--stats", cid).ok().json()["data"]
        assert _file_values(d, "cpu.stat") == before        # sleeping: nothing moved meanwhile
        assert list(data) == ["cpu", "cpuset", "memory", "pids", "blkio", "hugetlb", "intel_rdt",
                              "network_interfaces"]
        assert data["cpu"]["usage"] == {"total": before["usage_usec"] * 1000,
                                        "kernel": before["system_usec"] * 1000,
                                        "user": before["user_usec"] * 1000}
        assert data["cpu"]["usage"]["total"] > 0                   # the helper ran there
        if "nr_periods" in before:
            assert data["cpu"]["throttling"].get("periods", 0) == before["nr_periods"]
        else:
            assert data["cpu"]["throttling"] == {}
        n = len((d / "cgroup.procs").read_text().split())
        if (d / "pids.current").exists():
            assert data["pids"]["current"] == int((d / "pids.current").read_text())
        else:
            assert data["pids"] == {"current": n} and n == 2
        sizes = {"2MB": {"failcnt": 1}}
        if (d / "hugetlb.1GB.current").exists():
            sizes["1GB"] = {"failcnt": 0}
        assert data["hugetlb"] == sizes
        if not (d / "memory.current").exists():
            empty = {"limit": 0, "failcnt": 0}
            assert data["memory"] == {"usage": empty, "swap": empty, "kernel": empty, "kernelTCP": empty}
        if not (d / "io.stat").exists():
            assert data["blkio"] == {}
        assert data["intel_rdt"] == {} and data["network_interfaces"] is None
        # the stream: stats until delete, then status 0
        out = oci.path("events.out")
        cmd, env = oci.command(["events", "--interval", "100ms", cid])
        with open(out, "wb") as fo:
            events = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c", WRAPPER,
                                       "sh", *cmd], stdout=fo, stderr=subprocess.DEVNULL, env=env)
        wait_for(lambda: len(out.read_text().splitlines()) >= 2, what="two stats events")
        first = json.loads(out.read_text().splitlines()[0])
        assert first["type"] == "stats" and first["data"]["hugetlb"]["2MB"] == {"failcnt": 1}
        wrapped(oci, "delete", "--force", cid).ok()
        assert events.wait(10) == 0
    finally:
        if events is not None and events.poll() is None:
            events.kill()
            events.wait()
        wrapped(oci, "delete", "--force", cid)
    assert not d.exists()


def test_v2_counter_watch_wakes_on_a_kernel_event(v2_hugetlb: None) -> None:
    """The notification `events` waits on for OOM kills on cgroup v2
    (memory.events, oom_kill): poll(2) wakes when a counter in a cgroup2
    events file moves, and check() says by how much.  This cgroup2 has no
    memory controller, so the same code watches hugetlb.2MB.events (max),
    which the kernel notifies the same way (cgroup_file_notify)."""
    import select

    from pyoci.cgroups.stats import CounterWatch, OomWatch

    top = mkcg(f"pyoci-it-watch-{os.getpid()}")
    try:
        d = top / "c"
        d.mkdir()
        cgroup_v2.apply({"hugepageLimits": [{"pageSize": "2MB", "limit": 0}]}, str(d), str(unified()))
        watch = CounterWatch(str(d / "hugetlb.2MB.events"), "max")
        poller = select.poll()
        poller.register(watch.fd, watch.events_mask)
        assert poller.poll(0) == []                     # armed: nothing new yet
        assert _hugetlb_refused_in(d) == "12"
        assert poller.poll(5000) != []
        assert watch.check() == (1, False)
        assert poller.poll(0) == []                     # re-armed by check()
        assert _hugetlb_refused_in(d) == "12" and _hugetlb_refused_in(d) == "12"
        assert poller.poll(5000) != []
        assert watch.check() == (2, False)
        # without a memory controller there is no OOM to watch: no fd, no error
        oom = OomWatch({"": str(d)})
        assert oom.fd == -1 and oom.v2
        oom.close()
        wait_for(lambda: not (d / "cgroup.procs").read_text().strip(), what="the helpers' exit")
        d.rmdir()
        assert watch.check() == (0, True)               # the cgroup is gone
        watch.close()
    finally:
        rmcg(top)
    assert not top.exists()


def test_no_cgroup_filesystem_at_all(oci: Env) -> None:
    """Neither v1 nor cgroup2 mounted: a container without limits runs (in
    the caller's cgroups); a limit fails naming the field and the cause."""
    b = oci.bundle(["sh", "-c", "echo ran"])
    r = wrapped(oci, "run", "--bundle", str(b.save().path), oci.cid(), unmount="everything")
    assert r.rc == 0 and r.stdout == "ran\n", str(r)
    b.linux["resources"] = {"pids": {"limit": 5}, "devices": [{"allow": False, "access": "rwm"}]}
    r = wrapped(oci, "run", "--bundle", str(b.save().path), oci.cid(), unmount="everything")
    assert r.rc == 1 and len(r.err_lines) == 1, str(r)
    assert r.err_lines[0].startswith("pyoci: $.linux.resources.pids.limit: no cgroup filesystem is mounted "
                                     "on this host"), str(r)
