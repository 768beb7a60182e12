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
  rootless delegation.  On a real v2 host the wrapper unmounts nothing;
* hybrid without a v1 devices controller (only devices unmounted): the
  device rules go to the cgroup2 directory as an eBPF program.

Limits through controllers need a cgroup2 root that offers them; the test
that writes one through cgroup_v2 skips where none is offered (the unit
tests check every file and value)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from ocitest import BASE_PATH, Env, HostUser, Result
from test_rootless import Rootless, test_user  # noqa: F401 (test_user: a fixture)

from pyoci.linux import bpfdev, cgroup_v2, cgroups

LAYOUT = cgroups.layout()
UNIFIED = Path(LAYOUT.unified) if LAYOUT.unified else None
pytestmark = pytest.mark.skipif(UNIFIED is None, reason="needs a cgroup2 mount")

# Run a command in a private mount namespace without the v1 hierarchies (or
# only without those named in $CG_UNMOUNT); $CG_LEAF: move there first.
WRAPPER = r"""
set -e
for m in $(grep ' - cgroup ' /proc/self/mountinfo | cut -d' ' -f5); do
    case " ${CG_UNMOUNT:-all} " in *" all "*|*" ${m##*/} "*) umount "$m" ;; esac
done
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
        cgroups.freeze(str(d / "cgroup.freeze"), True)      # the dispatch used by pause
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
    return cgroups.own_cgroups().get("", "/")


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
    # no cgroupsPath: pyoci/<id> beside our own cgroup (runc's rule on v2)
    cid = oci.cid()
    b.drop_namespace("cgroup")
    del b.linux["cgroupsPath"]
    b.save()
    r = wrapped(oci, "run", "--bundle", str(b.path), cid)
    assert r.rc == 0, str(r)
    base = os.path.dirname(own_v2().rstrip("/")) or "/"
    assert v2_line(r.stdout) == f"0::{os.path.join(base, 'pyoci', cid)}"
    assert not (unified() / base.lstrip("/") / "pyoci" / cid).exists()


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
    assert v2_line(r.stdout) == f"0::/{delegation.name}/pyoci/{cid}"
    assert not (delegation / "pyoci").exists()
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
    assert not (delegation / "pyoci").exists()


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
    assert v2_line(r.stdout) == f"0::/{delegation.name}/pyoci/{cid}"
    assert not (delegation / "pyoci").exists()


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
