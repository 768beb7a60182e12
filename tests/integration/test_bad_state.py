"""Damaged, missing and unwritable state, and commands that must not wait on
another one (issue 12 items 7, 9, 10, 13, 14, 19).

Each case damages a real container's state directory (or fills or remounts
the filesystem under --root) and checks that `state`/`list` still answer at
once, that every error is one clear line, and that `delete --force` removes
everything it can identify: the init, its cgroups, the state directory."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.ocitest import Env, HostUser, cgroup_dirs_named, pid_alive, wait_for
from helpers.users import Rootless

SLEEPER = ["sleep", "1000"]


def _created(oci: Env, *, root: Path | None = None) -> tuple[str, int]:
    b = oci.bundle(SLEEPER)
    cid = oci.cid()
    oci.pyoci("create", "--bundle", str(b.path), cid, root=root).ok()
    st = oci.pyoci("state", cid, root=root).ok().json()
    return cid, int(st["pid"])


def _cgroup_dirs(pid: int) -> list[str]:
    """The cgroup directories of pid (every hierarchy), as paths under /sys/fs/cgroup."""
    out = []
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, ctrls, rel = line.rstrip("\n").split(":", 2)
            if rel in ("", "/"):
                continue
            base = "/sys/fs/cgroup/unified" if ctrls == "" else None
            for c in ctrls.split(",") if ctrls else ():     # "0::" is cgroup2: unified
                if c.startswith("name="):
                    c = c[5:]
                if os.path.isdir(f"/sys/fs/cgroup/{c}"):
                    base = f"/sys/fs/cgroup/{c}"
                    break
            if base and os.path.isdir(base + rel):
                out.append(base + rel)
    return out


def _one_line(r) -> str:  # type: ignore[no-untyped-def]
    assert len(r.err_lines) == 1, f"expected one stderr line:\n{r}"
    line = r.err_lines[0]
    assert line.startswith("pyoci: ") and "internal error" not in line, str(r)
    return str(line)


def _fast(oci: Env, *args: str, root: Path | None = None):  # type: ignore[no-untyped-def]
    r = oci.pyoci(*args, root=root, timeout=10)
    assert r.duration < 1.0, f"took {r.duration:.2f} s:\n{r}"
    return r


# -- damaged state.json --------------------------------------------------------------

DAMAGES = {
    "pid-string": lambda d: d.update(pid=str(d["pid"])),
    "pid-start-string": lambda d: d.update(pid_start=str(d["pid_start"])),
    "cgroups-created-number": lambda d: d.update(cgroups_created=7),
    "not-an-object": lambda d: d.clear(),
}


@pytest.mark.parametrize("damage", [*DAMAGES, "truncated", "directory", "empty"])
def test_damaged_state_json(oci: Env, damage: str) -> None:
    cid, pid = _created(oci)
    good, good_pid = _created(oci)
    cgroups = _cgroup_dirs(pid)
    path = oci.root / cid / "state.json"
    data = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "directory":
        path.unlink()
        path.mkdir()
        (path / "x").write_text("x")
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "not-an-object":
        path.write_text("[1, 2]")
    else:
        d = json.loads(data)
        DAMAGES[damage](d)
        path.write_text(json.dumps(d))

    # state: one line naming the file, never "internal error", never "stopped"
    r = _fast(oci, "state", cid).fails()
    line = _one_line(r)
    assert "damaged state file" in line and str(path) in line, line
    # list: the readable container, and one line for the damaged one; exit 0
    r = _fast(oci, "list", "--format", "json")
    assert r.rc == 0, str(r)
    assert [i["id"] for i in json.loads(r.stdout)] == [good]
    assert _one_line(r) and cid in r.stderr
    r = _fast(oci, "list")
    assert r.rc == 0 and good in r.stdout and cid not in r.stdout, str(r)
    # plain delete refuses (it cannot know the container stopped)
    _one_line(oci.pyoci("delete", cid).fails())
    assert pid_alive(pid)
    # delete --force: the init (found by the record create made at SYNC 2),
    # its cgroups (cgroups.json), the state directory
    r = oci.pyoci("delete", "--force", cid)
    assert r.rc == 0, str(r)
    wait_for(lambda: not pid_alive(pid), 5, "the damaged container's init to die")
    assert not (oci.root / cid).exists()
    left = [c for c in cgroups if os.path.exists(c)]
    assert not left, left
    # the other container is untouched
    assert pid_alive(good_pid)
    oci.pyoci("delete", "--force", good).ok()


def test_damaged_state_and_init_record_names_what_was_not_done(oci: Env) -> None:
    """Nothing identifies the init any more: delete --force still removes
    the cgroups (which kills what is in them) and the directory, and exits 0
    only because the cgroups held every process; the process is gone."""
    cid, pid = _created(oci)
    (oci.root / cid / "state.json").write_text("{")
    (oci.root / cid / "init").write_text("garbage")
    r = oci.pyoci("delete", "--force", cid)
    assert r.rc == 0, str(r)
    wait_for(lambda: not pid_alive(pid), 5, "the init to die with its cgroups")
    assert not (oci.root / cid).exists()


# -- a create killed before state.json (cgroups.json, init) ------------------------------


@pytest.mark.parametrize("cgroups_json", ["valid", "damaged", "directory", "missing"])
def test_killed_create_without_state_json(oci: Env, cgroups_json: str) -> None:
    """What a create killed between SYNC 2 and state.json leaves: the init
    (recorded in `init`), its cgroups (recorded in cgroups.json)."""
    cid, pid = _created(oci)
    cgroups = _cgroup_dirs(pid)
    assert cgroups
    d = oci.root / cid
    (d / "state.json").unlink()
    rec = d / "cgroups.json"
    if cgroups_json == "damaged":
        rec.write_text('{"paths": {"": 5}, "created": "x"}')
    elif cgroups_json == "directory":
        rec.unlink()
        rec.mkdir()
    elif cgroups_json == "missing":
        rec.unlink()
    st = _fast(oci, "state", cid).ok().json()
    assert st["status"] == "stopped" and st["pid"] == 0
    r = oci.pyoci("delete", "--force", cid)
    try:
        assert not pid_alive(pid), "the init of the killed create still runs"
        assert not d.exists()
        if cgroups_json == "valid":
            assert r.rc == 0, str(r)
            assert not [c for c in cgroups if os.path.exists(c)]
        else:
            # nothing says pyoci made them: they are named, never removed
            line = _one_line(r.fails())
            assert "cgroups" in line and cid in line, line
            if cgroups_json != "missing":
                assert "cgroups.json" in line, line
    finally:
        for c in sorted(cgroups, key=len, reverse=True):
            try:
                os.rmdir(c)
            except OSError:
                pass


# -- the creator's pid -----------------------------------------------------------------


def test_reused_creator_pid_is_not_creating(oci: Env) -> None:
    """A `creator` record whose pid now belongs to another process (start
    time differs) is a dead create: stopped, and plain delete removes it."""
    cid = oci.cid()
    d = oci.root / cid
    d.mkdir(parents=True)
    (d / "creator").write_text(f"{os.getpid()} 1")
    assert _fast(oci, "state", cid).ok().json()["status"] == "stopped"
    (d / "creator").write_text(str(os.getpid()))      # no start time: not trusted either
    assert _fast(oci, "state", cid).ok().json()["status"] == "stopped"
    oci.pyoci("delete", cid).ok()
    assert not d.exists()


# -- a create in progress ------------------------------------------------------------------


@pytest.fixture
def slow_create(oci: Env) -> Iterator[tuple[str, subprocess.Popen[bytes], Path]]:
    """A create stuck in a createRuntime hook that sleeps (the hook writes
    its pid)."""
    marker = oci.path("hook.pid")
    b = oci.bundle(SLEEPER)
    b.config.setdefault("hooks", {})["createRuntime"] = [
        oci.hook(f"echo $$ > {marker}; exec sleep 60", timeout=120)]
    b.save()
    cid = oci.cid()
    p = oci.popen("create", "--bundle", str(b.path), cid)
    try:
        wait_for(marker.exists, 10, "the createRuntime hook")
        assert cgroup_dirs_named(cid), "the container's cgroups exist while its hook runs"
        yield cid, p, marker
    finally:
        if p.poll() is None:
            p.kill()
        p.wait()
        try:
            os.kill(int(marker.read_text()), signal.SIGKILL)
        except (ValueError, OSError):
            pass
        oci.pyoci("delete", "--force", cid)


@pytest.mark.parametrize("stopped", [False, True])
def test_create_in_progress_blocks_nothing(oci: Env, slow_create, stopped: bool) -> None:  # type: ignore[no-untyped-def]
    cid, p, marker = slow_create
    other, _ = _created(oci)
    if stopped:
        p.send_signal(signal.SIGSTOP)
    st = _fast(oci, "state", cid).ok().json()
    assert st["status"] == "creating" and st["id"] == cid
    r = _fast(oci, "list", "--format", "json").ok()
    assert {i["id"]: i["status"] for i in json.loads(r.stdout)} == {cid: "creating", other: "created"}
    _fast(oci, "ps", cid)
    assert _fast(oci, "state", other).ok().json()["status"] == "created"
    for args in (("kill", cid, "KILL"), ("start", cid), ("pause", cid), ("delete", cid)):
        r = _fast(oci, *args).fails()
        assert "creating" in _one_line(r), str(r)
    # delete --force kills the creator (and what it started) and cleans up
    t0 = time.monotonic()
    r = oci.pyoci("delete", "--force", cid, timeout=30).ok()
    assert time.monotonic() - t0 < 5, str(r)
    p.wait(timeout=5)
    assert p.returncode == -signal.SIGKILL
    # and what it had started (the hook), which would outlive it
    hook = int(marker.read_text())
    wait_for(lambda: not pid_alive(hook), 5, "the createRuntime hook to die")
    assert not (oci.root / cid).exists()
    assert not cgroup_dirs_named(cid)
    oci.pyoci("state", cid).fails()
    oci.pyoci("delete", "--force", other).ok()


def test_create_stuck_after_state_json(oci: Env) -> None:
    """A create stuck after it wrote state.json, still holding the lock (here:
    its pid file's temporary name is a FIFO nobody reads): state answers,
    delete --force kills the creator and then the container."""
    piddir = oci.mkdir("piddir")
    os.mkfifo(piddir / ".pid.tmp")
    b = oci.bundle(SLEEPER).save()
    cid = oci.cid()
    p = oci.popen("create", "--bundle", str(b.path), "--pid-file", str(piddir / "pid"), cid)
    try:
        wait_for(lambda: (oci.root / cid / "state.json").exists(), 10, "state.json")
        st = _fast(oci, "state", cid).ok().json()
        assert st["status"] == "created" and pid_alive(st["pid"])
        r = oci.pyoci("delete", "--force", cid, timeout=30)
        assert r.rc == 0 and r.duration < 5, str(r)
        p.wait(timeout=5)
        assert p.returncode == -signal.SIGKILL
        assert not pid_alive(st["pid"])
        assert not (oci.root / cid).exists() and not cgroup_dirs_named(cid)
    finally:
        if p.poll() is None:
            p.kill()
        p.wait()


# -- a full or read-only --root ------------------------------------------------------------


@pytest.fixture
def small_root(oci: Env) -> Iterator[Path]:
    root = oci.mkdir("smallroot", 0o700)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs", str(root)], check=True)
    oci.roots.append(root)
    try:
        yield root
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(root)], capture_output=True)
        for n in os.listdir(root):
            if not n.startswith("filler"):
                oci.pyoci("delete", "--force", n, root=root)
        subprocess.run(["umount", "-l", str(root)], check=True)


def _fill(root: Path, leave_pages: int) -> None:
    filler = root / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        while os.write(fd, b"\0" * 4096) == 4096:
            pass
    except OSError:
        pass
    finally:
        os.close(fd)
    size = filler.stat().st_size
    os.truncate(filler, max(0, size - leave_pages * 4096))


@pytest.mark.parametrize("leave_pages", [0, 1, 2, 3, 4, 5, 8])
def test_full_root(oci: Env, small_root: Path, leave_pages: int) -> None:
    """Whichever state file the space runs out at, create fails with one
    line naming it, and leaves nothing (no phantom container)."""
    _fill(small_root, leave_pages)
    b = oci.bundle(SLEEPER)
    cid = oci.cid()
    r = oci.pyoci("create", "--bundle", str(b.path), cid, root=small_root)
    if r.rc == 0:
        # enough room for this one: it must be whole
        assert oci.pyoci("state", cid, root=small_root).ok().json()["status"] == "created"
        oci.pyoci("delete", "--force", cid, root=small_root).ok()
    else:
        line = _one_line(r)
        assert "No space left on device" in line and str(small_root) in line, line
        assert "full" in line
    assert sorted(os.listdir(small_root)) == ["filler"]
    assert oci.pyoci("list", "-q", root=small_root).ok().stdout == ""
    (small_root / "filler").unlink()


def test_read_only_root(oci: Env, small_root: Path) -> None:
    cid, pid = _created(oci, root=small_root)
    cgroups = _cgroup_dirs(pid)
    subprocess.run(["mount", "-o", "remount,ro", str(small_root)], check=True)
    assert _fast(oci, "state", cid, root=small_root).ok().json()["status"] == "created"
    assert _fast(oci, "list", "-q", root=small_root).ok().stdout == cid + "\n"
    # start cannot mark the container started: it refuses before the init goes
    line = _one_line(oci.pyoci("start", cid, root=small_root).fails())
    assert "start.sock" in line and "read-only" in line, line
    assert oci.pyoci("state", cid, root=small_root).ok().json()["status"] == "created"
    # a create has nowhere to go
    b = oci.bundle(SLEEPER)
    line = _one_line(oci.pyoci("create", "--bundle", str(b.path), oci.cid(), root=small_root).fails())
    assert str(small_root) in line and "Read-only file system" in line, line
    # delete --force kills and cleans what it can, and names what it could not
    line = _one_line(oci.pyoci("delete", "--force", cid, root=small_root).fails())
    assert str(small_root / cid) in line and "Read-only file system" in line, line
    assert not pid_alive(pid)
    assert not [c for c in cgroups if os.path.exists(c)]
    subprocess.run(["mount", "-o", "remount,rw", str(small_root)], check=True)
    oci.pyoci("delete", cid, root=small_root).ok()
    assert os.listdir(small_root) == []


# -- a failed start --------------------------------------------------------------------


def test_failed_start_leaves_a_stopped_container(oci: Env) -> None:
    """The init cannot exec its program: when start's error is printed the
    container is already stopped, so an immediate plain delete works."""
    for _ in range(5):
        b = oci.bundle(["/badinterp"])
        script = b.rootfs / "badinterp"                # its interpreter does not exist
        script.write_text("#!/nonexistent/interpreter\n")
        script.chmod(0o755)
        cid = oci.cid()
        r = oci.pyoci("create", "--bundle", str(b.path), cid)
        if r.rc != 0:
            pytest.skip(f"create refuses the program already: {r.err_lines}")
        st = oci.state(cid)
        oci.pyoci("start", cid).fails()
        assert not pid_alive(int(st["pid"]))
        oci.pyoci("delete", cid).ok()


# -- rootless ------------------------------------------------------------------------------


def test_rootless_stuck_create_and_damaged_state(oci: Env, test_user: HostUser) -> None:  # noqa: F811
    rl = Rootless(oci, test_user)
    out = rl.outdir()
    marker = out / "hook.pid"
    b = rl.bundle(SLEEPER)
    b.config.setdefault("hooks", {})["createRuntime"] = [
        oci.hook(f"echo $$ > {marker}; exec sleep 60", timeout=120)]
    rl.save(b)
    cid, other = oci.cid(), oci.cid()
    cmd, env = oci.command(["create", "--bundle", str(b.path), cid], root=rl.root, user=rl.user,
                           env={"XDG_RUNTIME_DIR": str(rl.xdg)})
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, env={"PATH": env["PATH"]})
    try:
        wait_for(marker.exists, 10, "the createRuntime hook")
        r = rl.pyoci("state", cid, timeout=10)
        assert r.rc == 0 and r.duration < 1.0 and r.json()["status"] == "creating", str(r)
        r = rl.pyoci("kill", cid, "KILL", timeout=10)
        assert r.rc == 1 and r.duration < 1.0 and "creating" in r.stderr, str(r)
        rl.pyoci("delete", "--force", cid, timeout=30).ok()
        p.wait(timeout=5)
        wait_for(lambda: not pid_alive(int(marker.read_text())), 5, "the hook to die")
        assert not (rl.root / cid).exists()
    finally:
        if p.poll() is None:
            p.kill()
        p.wait()
    # a damaged state.json of a running rootless container
    b2 = rl.bundle(SLEEPER)
    rl.save(b2)
    rl.pyoci("create", "--bundle", str(b2.path), other).ok()
    pid = rl.pyoci("state", other).ok().json()["pid"]
    path = rl.root / other / "state.json"
    d = json.loads(path.read_text())
    d["pid"] = "x"
    path.write_text(json.dumps(d))
    r = rl.pyoci("list").ok()
    assert other in r.stderr and "damaged" in r.stderr, str(r)
    rl.pyoci("delete", "--force", other).ok()
    wait_for(lambda: not pid_alive(pid), 5, "the init to die")
    assert not (rl.root / other).exists()
