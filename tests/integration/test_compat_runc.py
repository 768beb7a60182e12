"""Everyday behaviours where pyoci matches runc 1.1.5 (issue 15, items 12
and 15): exec flags, mounts, cwd, hooks, terminals.  runc is the control
where it is installed."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.ocitest import Bundle, Env, caps_mask, status_fields

RUNC = shutil.which("runc")


def _started(oci: Env, b: Bundle) -> str:
    cid = oci.cid()
    oci.run(b, cid, "--detach").ok()
    oci.started.append(cid)
    return cid


@pytest.fixture
def oci(oci: Env) -> Iterator[Env]:
    """The shared fixture, deleting what _started started even when the test fails."""
    oci.started = []  # type: ignore[attr-defined]
    yield oci
    for cid in oci.started:  # type: ignore[attr-defined]
        oci.pyoci("delete", "--force", cid)


def _runc(*args: str, root: Path) -> subprocess.CompletedProcess[str]:
    """runc's stdio goes to files, never pipes (a detached container would keep them open)."""
    assert RUNC
    out, err = root.parent / ".runc.out", root.parent / ".runc.err"
    with open(out, "w") as fo, open(err, "w") as fe:
        p = subprocess.run([RUNC, "--root", str(root), *args], stdout=fo, stderr=fe,
                           stdin=subprocess.DEVNULL, timeout=60)
    return subprocess.CompletedProcess(p.args, p.returncode, out.read_text(), err.read_text())


# -- exec flags (item 15) -----------------------------------------------------

BAD_EXEC_FLAGS = {
    "cap-unknown": (["--cap", "BOGUS"], "exec --cap 'BOGUS': unknown capability CAP_BOGUS"),
    "cwd-relative": (["--cwd", "rel"], "exec --cwd 'rel': the working directory must be an absolute path"),
    "user-name": (["--user", "abc"], "exec --user 'abc'"),
    "gid-name": (["-g", "abc"], "exec --additional-gids 'abc'"),
    "env-no-equals": (["--env", "NOEQ"], "exec --env"),
    "preserve-fds-negative": (["--preserve-fds", "-1"], "exec --preserve-fds -1: expected a count"),
    "preserve-fds-huge": (["--preserve-fds", "99999999999"], "exec --preserve-fds 99999999999"),
    "pid-file-missing-dir": (["--pid-file", "/nonexistent-dir/p"],
                             "exec --pid-file /nonexistent-dir/p: directory /nonexistent-dir: "
                             "No such file or directory"),
    "process-missing": (["--process", "/nonexistent.json"], "/nonexistent.json: No such file or directory"),
    "console-socket-missing": (["--tty", "--console-socket", "/nonexistent.sock"],
                               "console socket /nonexistent.sock: No such file or directory"),
    "console-socket-without-tty": (["--console-socket", "/nonexistent.sock"],
                                   "exec --console-socket /nonexistent.sock: there is no terminal"),
}


@pytest.mark.parametrize("case", sorted(BAD_EXEC_FLAGS))
def test_bad_exec_flag_is_an_error_naming_the_flag(oci: Env, case: str) -> None:
    flags, words = BAD_EXEC_FLAGS[case]
    b = oci.bundle(["sleep", "1000"])
    cid = _started(oci, b)
    marker = b.rootfs / "ran"
    command = [] if "--process" in flags else ["touch", "/ran"]
    r = oci.pyoci("exec", *flags, cid, *command)
    # (exec's own failures exit 255, as runc's; a wrong command line 2)
    assert r.rc == (2 if case == "console-socket-without-tty" else 255), r
    assert len(r.err_lines) == 1 and words in r.stderr, r
    for wrong in ("internal error", "config.json", "$.process"):
        assert wrong not in r.stderr, r
    assert not marker.exists(), "the process ran despite the bad flag"
    # The container is untouched.
    assert oci.state(cid)["status"] == "running"
    oci.pyoci("delete", "--force", cid).ok()


def test_exec_cap_keeps_the_ambient_set(oci: Env) -> None:
    b = oci.bundle(["sleep", "1000"])
    caps = b.process["capabilities"]
    for kind in ("bounding", "effective", "permitted", "inheritable", "ambient"):
        caps.setdefault(kind, [])
        if "CAP_NET_BIND_SERVICE" not in caps[kind]:
            caps[kind].append("CAP_NET_BIND_SERVICE")
    cid = _started(oci, b)
    r = oci.pyoci("exec", "--cap", "sys_admin", cid, "cat", "/proc/self/status").ok()
    got = {k: int(v, 16) for k, v in status_fields(r.stdout).items() if k.startswith("Cap")}
    assert got["CapAmb"] == caps_mask(["CAP_NET_BIND_SERVICE"])
    assert got["CapInh"] == caps_mask(["CAP_NET_BIND_SERVICE"])
    for field in ("CapBnd", "CapEff", "CapPrm"):
        assert got[field] == caps_mask(caps["bounding"] + ["CAP_SYS_ADMIN"]), field
    oci.pyoci("delete", "--force", cid).ok()
    if RUNC:
        rid = oci.cid("runc")
        root = oci.tmp / "runc-state"
        b.save()
        assert _runc("run", "-d", "-b", str(b.path), rid, root=root).returncode == 0
        try:
            out = _runc("exec", "--cap", "CAP_SYS_ADMIN", rid, "cat", "/proc/self/status", root=root).stdout
            theirs = {k: int(v, 16) for k, v in status_fields(out).items() if k.startswith("Cap")}
            assert theirs == got
        finally:
            _runc("delete", "--force", rid, root=root)


def test_debug_prints_lines_for_exec(oci: Env) -> None:
    """--debug lines (their format is the logging's: runc's level=debug)
    for exec, as for every command."""
    b = oci.bundle(["sleep", "1000"])
    cid = _started(oci, b)
    r = oci.pyoci("--debug", "exec", cid, "true").ok()
    lines = [line for line in r.err_lines if "level=debug" in line]
    assert any(f"exec in {cid}: process pid" in line for line in lines), r
    r = oci.pyoci("--debug", "state", cid).ok()
    assert any("level=debug" in line and "state" in line for line in r.err_lines), r
    oci.pyoci("delete", "--force", cid).ok()


# -- hooks --------------------------------------------------------------------

def _start_container_hook_env(run: object, b: Bundle) -> dict[str, str]:
    (b.rootfs / "hook-env").unlink(missing_ok=True)
    run(b)  # type: ignore[operator]
    lines = (b.rootfs / "hook-env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


def test_start_container_hook_without_env_sees_the_process_env(oci: Env) -> None:
    b = oci.bundle(["true"])
    b.config["root"]["readonly"] = False
    b.process["env"] = ["PATH=/bin", "FOO=bar baz", "TERM=xterm"]
    b.config["hooks"] = {"startContainer": [
        {"path": "/bin/sh", "args": ["sh", "-c", "env > /hook-env"]},
        {"path": "/bin/sh", "args": ["sh", "-c", "env >> /hook-env-empty"], "env": []},
    ]}
    ours = _start_container_hook_env(lambda bb: oci.run(bb).ok(), b)
    assert ours.get("FOO") == "bar baz" and ours.get("TERM") == "xterm", ours
    # An explicit empty env stays empty (sh itself adds PWD/SHLVL only).
    empty = (b.rootfs / "hook-env-empty").read_text()
    assert "FOO=" not in empty
    if RUNC:
        root = oci.tmp / "runc-state"
        theirs = _start_container_hook_env(
            lambda bb: _runc("run", "-b", str(bb.path), oci.cid("runc"), root=root), b)
        assert theirs.get("FOO") == "bar baz" and theirs.get("TERM") == "xterm", theirs


# -- process.cwd --------------------------------------------------------------

def test_missing_cwd_is_created_inside_the_rootfs(oci: Env) -> None:
    b = oci.bundle(["sh", "-c", "pwd; stat -c '%u:%g %a' ."])
    b.config["root"]["readonly"] = True
    b.process["cwd"] = "/new/work/dir"
    r = oci.run(b).ok()
    assert r.stdout.splitlines() == ["/new/work/dir", "0:0 755"], r
    assert (b.rootfs / "new" / "work" / "dir").is_dir()
    if RUNC:
        import shutil as sh

        sh.rmtree(b.rootfs / "new")
        p = _runc("run", "-b", str(b.path), oci.cid("runc"), root=oci.tmp / "runc-state")
        assert p.stdout.splitlines() == ["/new/work/dir", "0:0 755"], p


def test_missing_cwd_through_a_symlink_stays_in_the_rootfs(oci: Env) -> None:
    outside = oci.mkdir("outside")
    b = oci.bundle(["pwd"])
    (b.rootfs / "escape").symlink_to(str(outside))
    b.process["cwd"] = "/escape/made"
    r = oci.run(b).ok()
    # The link was followed inside the rootfs: pwd shows the resolved path there.
    assert r.stdout.strip() == f"{outside}/made"
    assert not (outside / "made").exists(), "the cwd was made outside the rootfs"
    assert (b.rootfs / str(outside).lstrip("/") / "made").is_dir()


def test_missing_cwd_in_a_user_namespace_belongs_to_its_root(oci: Env) -> None:
    b = oci.bundle(["sh", "-c", "stat -c '%u:%g' ."])
    b.set_namespace("user")
    b.linux["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    b.linux["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    b.chown_all(100000, 100000)
    b.process["cwd"] = "/made"
    r = oci.run(b).ok()
    assert r.stdout.strip() == "0:0"
    st = (b.rootfs / "made").stat()
    assert (st.st_uid, st.st_gid) == (100000, 100000)


# -- terminals ----------------------------------------------------------------

def _through_a_terminal(cmd: list[str], env: dict[str, str] | None = None, *,
                        stdout_pipe: bool = False) -> bytes:
    """Run cmd with a pty as its controlling terminal and stdin (as from a
    user's shell); its stdout is that pty too, or a pipe (`... | od -c`).
    Returns every byte written to stdout."""
    import fcntl
    import pty
    import termios

    master, slave = pty.openpty()

    def ctty() -> None:
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    try:
        p = subprocess.Popen(cmd, stdin=slave, stdout=subprocess.PIPE if stdout_pipe else slave,
                             stderr=slave, preexec_fn=ctty, env=env, close_fds=True)
    finally:
        os.close(slave)
    piped = p.stdout.read() if p.stdout else b""
    out = b""
    try:
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:   # EIO: every slave fd is closed
                break
            if not chunk:
                break
            out += chunk
    finally:
        os.close(master)
        p.wait(timeout=60)
        if p.stdout:
            p.stdout.close()
    return piped if stdout_pipe else out


@pytest.mark.parametrize("stdout", ["pipe", "terminal"])
def test_terminal_output_bytes_match_runc(oci: Env, stdout: str) -> None:
    """The container's pty has no ONLCR (runc clears it); the caller's
    terminal keeps its own output processing: `run | od -c` shows "hi\n",
    the screen gets "hi\r\n" from the caller's terminal as for any program."""
    b = oci.bundle(["printf", "hi\\nthere\\n"])
    b.process["terminal"] = True
    b.save()
    pipe = stdout == "pipe"
    cmd, env = oci.command(["run", "-b", str(b.path), oci.cid()])
    ours = _through_a_terminal(cmd, env, stdout_pipe=pipe)
    assert ours == (b"hi\nthere\n" if pipe else b"hi\r\nthere\r\n"), ours
    if RUNC:
        theirs = _through_a_terminal([RUNC, "--root", str(oci.tmp / "runc-state"), "run", "-b",
                                      str(b.path), oci.cid("runc")], stdout_pipe=pipe)
        assert theirs == ours


def test_exec_terminal_output_has_no_carriage_returns(oci: Env) -> None:
    b = oci.bundle(["sleep", "1000"])
    cid = _started(oci, b)
    cmd, env = oci.command(["exec", "-t", cid, "printf", "a\\nb\\n"])
    assert _through_a_terminal(cmd, env, stdout_pipe=True) == b"a\nb\n"
    r = oci.pyoci("exec", "-t", cid, "printf", "a\\nb\\n").ok()
    assert r.stdout == "a\nb\n"


# -- mounts -------------------------------------------------------------------

def _made_below(rootfs: Path) -> list[str]:
    return sorted(str(p.relative_to(rootfs)) for p in rootfs.rglob("*")
                  if p.is_dir() and not p.is_symlink() and p.parts[len(rootfs.parts)] == "nowhere")


def test_mount_through_dangling_symlinks_is_made_where_runc_makes_it(oci: Env) -> None:
    outside = oci.mkdir("outside")
    b = oci.bundle(["sh", "-c", "ls -d /nowhere/dir/x /nowhere/rel/y /nowhere/trail"])
    (b.rootfs / "data").symlink_to("/nowhere/dir")            # absolute, a dangling component
    (b.rootfs / "rel").symlink_to("../../../nowhere/rel")      # relative, clamped at the root
    (b.rootfs / "trail").symlink_to("/nowhere/trail")         # a trailing dangling link
    (b.rootfs / "host").symlink_to(f"{outside}/made")         # would be the host's, followed naively
    for dest in ("/data/x", "/rel/y", "/trail", "/host"):
        b.add_mount(dest, "tmpfs", "tmpfs")
    r = oci.run(b).ok()
    assert r.stdout.split() == ["/nowhere/dir/x", "/nowhere/rel/y", "/nowhere/trail"], r
    ours = _made_below(b.rootfs)
    assert ours == ["nowhere", "nowhere/dir", "nowhere/dir/x", "nowhere/rel", "nowhere/rel/y",
                    "nowhere/trail"]
    assert not (outside / "made").exists()
    assert (b.rootfs / str(outside).lstrip("/") / "made").is_dir()
    if RUNC:
        import shutil as sh

        sh.rmtree(b.rootfs / "nowhere")
        p = _runc("run", "-b", str(b.path), oci.cid("runc"), root=oci.tmp / "runc-state")
        assert p.returncode == 0, p
        assert _made_below(b.rootfs) == ours


def _userns(b: Bundle, host_id: int = 100000) -> None:
    b.set_namespace("user")
    b.linux["uidMappings"] = [{"containerID": 0, "hostID": host_id, "size": 65536}]
    b.linux["gidMappings"] = [{"containerID": 0, "hostID": host_id, "size": 65536}]
    b.chown_all(host_id, host_id)


def test_userns_bind_source_only_host_root_reaches_still_mounts(oci: Env) -> None:
    """runc opens bind sources before entering the user namespace; so does
    pyoci (a clone of the source made by stage1)."""
    secret = oci.mkdir("secret", 0o700)
    (secret / "inner").mkdir()
    (secret / "inner" / "f").write_text("s\n")
    (secret / "file").write_text("a file\n")
    os.chmod(secret, 0)
    b = oci.bundle(["sh", "-c", "cat /b/f /c"])
    _userns(b)
    b.bind(secret / "inner", "/b")
    b.bind(secret / "file", "/c")
    try:
        r = oci.run(b)
        if RUNC:
            p = _runc("run", "-b", str(b.path), oci.cid("runc"), root=oci.tmp / "runc-state")
            assert p.returncode == 0 and p.stdout == "s\na file\n", p
    finally:
        os.chmod(secret, 0o700)
    assert r.rc == 0 and r.stdout == "s\na file\n", r


@pytest.mark.parametrize("userns", [False, True], ids=["root", "userns"])
def test_bind_sources_in_config_order(oci: Env, userns: bool) -> None:
    """A bind source inside the rootfs sees what earlier mounts put there
    (here a tmpfs and a bind below it), also with a user namespace (where
    runc, opening every source before the mounts, binds the empty image
    directory instead)."""
    host_dir = oci.mkdir("hostdir")
    (host_dir / "f").write_text("from the host\n")
    b = oci.bundle(["cat", "/b/x/f"])
    if userns:
        _userns(b)
    (b.rootfs / "a").mkdir()
    (b.rootfs / "b").mkdir()
    os.chown(b.rootfs / "a", 100000, 100000)
    os.chown(b.rootfs / "b", 100000, 100000)
    b.add_mount("/a", "tmpfs", "tmpfs")
    b.bind(host_dir, "/a/x")
    b.bind(b.rootfs / "a", "/b")
    r = oci.run(b).ok()
    assert r.stdout == "from the host\n"


def test_userns_preopened_bind_does_not_share_with_the_host(oci: Env) -> None:
    """The clone made before the namespace keeps the host mount's peer group
    unless told otherwise: it must get the rootfs's slave propagation, so
    that a mount the container makes below it never reaches the host."""
    shared = oci.mkdir("shared")
    subprocess.run(["mount", "--bind", str(shared), str(shared)], check=True)
    try:
        subprocess.run(["mount", "--make-shared", str(shared)], check=True)
        b = oci.bundle(["sh", "-c", "mount -t tmpfs tmpfs /s && grep ' /s ' /proc/self/mountinfo"])
        _userns(b)
        b.bind(shared, "/s")
        b.process["capabilities"]["bounding"].append("CAP_SYS_ADMIN")
        b.process["capabilities"]["effective"].append("CAP_SYS_ADMIN")
        b.process["capabilities"]["permitted"].append("CAP_SYS_ADMIN")
        r = oci.run(b).ok()
        assert "shared:" not in r.stdout.splitlines()[0], r
        host_view = Path("/proc/self/mountinfo").read_text()
        assert not [line for line in host_view.splitlines()
                    if f" {shared} " in line and " tmpfs " in line], "the container's mount reached the host"
    finally:
        subprocess.run(["umount", "-l", str(shared)], check=False)
