"""Data of any length crosses the C side whole, or fails loudly.

The C side of pyoci (csrc/) sizes its buffers from the data: the state a
startContainer hook reads on stdin and the one a seccomp agent receives with
the listener fd are complete however long the annotations are; a path longer
than the kernel takes is an error naming the step, never silently shortened
into another path; a deep path costs no stack; an error's text reaches the
user whole.
"""

from __future__ import annotations

import array
import json
import os
import socket
import threading
from pathlib import Path
from typing import Any

import pytest
from helpers.ocitest import Bundle, Env, pid_alive, wait_for


def writable_dir(oci: Env, name: str) -> Path:
    return oci.mkdir(name, 0o777)


def start_hook(b: Bundle, name: str, script: str, **extra: Any) -> dict[str, Any]:
    """A startContainer hook (it runs in the container: the path is in the rootfs)."""
    path = b.rootfs / "bin" / name
    path.write_text("#!/bin/sh\n" + script + "\n")
    os.chmod(path, 0o755)
    return {"path": f"/bin/{name}", "env": ["PATH=/bin"], **extra}


def one_clear_line(r: Any) -> str:
    assert r.rc != 0, str(r)
    assert len(r.err_lines) == 1 and r.err_lines[0].startswith("pyoci: "), str(r)
    assert "internal error" not in r.stderr and "please report" not in r.stderr, str(r)
    line: str = r.err_lines[0]
    return line


@pytest.mark.parametrize("size", [20_000, 200_000])
def test_start_container_hook_reads_the_whole_state(oci: Env, size: int) -> None:
    out = writable_dir(oci, "out")
    b = oci.bundle()
    b.config["annotations"] = {"org.pyoci.big": "x" * size, "org.pyoci.after": "end"}
    b.bind(out, "/out")
    b.config["hooks"] = {"startContainer": [
        start_hook(b, "save-state.sh", "cat > /out/state.json"),
        start_hook(b, "ignore-state.sh", "exit 0"),         # need not read its stdin
    ]}
    b.sh("exec sleep 1000")
    b.save()
    cid = oci.cid()
    oci.pyoci("create", "--bundle", str(b.path), cid).ok()
    try:
        pid = oci.state(cid)["pid"]
        oci.pyoci("start", cid).ok()
        text = (out / "state.json").read_text()
        state = json.loads(text)
        assert state["pid"] == pid and state["status"] == "created" and state["id"] == cid
        assert state["annotations"] == b.config["annotations"]
    finally:
        oci.pyoci("delete", "--force", cid)


def test_start_container_hook_that_never_reads_still_times_out(oci: Env) -> None:
    """A state larger than a pipe holds, and a hook that never reads it: the
    hook's timeout still ends the wait."""
    b = oci.bundle(["sleep", "1000"])
    b.config["annotations"] = {"org.pyoci.big": "y" * 300_000}
    b.config["hooks"] = {"startContainer": [start_hook(b, "stuck.sh", "exec sleep 60", timeout=1)]}
    b.save()
    cid = oci.cid()
    oci.pyoci("create", "--bundle", str(b.path), cid).ok()
    try:
        pid = oci.state(cid)["pid"]
        r = oci.pyoci("start", cid, timeout=30)
        line = one_clear_line(r)
        assert "startContainer" in line and "timed out" in line, str(r)
        assert r.duration < 10, f"the 1 s timeout was not honoured ({r.duration:.1f} s)"
        wait_for(lambda: not pid_alive(pid), what="the init to exit after its startContainer hook failed")
    finally:
        oci.pyoci("delete", "--force", cid)


def test_seccomp_listener_receives_the_whole_state(oci: Env) -> None:
    path = str(oci.path("agent.sock"))
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    srv.settimeout(30)
    got: dict[str, Any] = {}

    def agent() -> None:
        conn, _ = srv.accept()
        conn.settimeout(30)
        data, anc, _flags, _addr = conn.recvmsg(4096, socket.CMSG_LEN(4))
        fds = array.array("i")
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(payload[:4])
        chunks = [data]
        while True:         # the rest of the state follows on the stream, until EOF
            more = conn.recv(65536)
            if not more:
                break
            chunks.append(more)
        got["text"] = b"".join(chunks)
        got["fds"] = list(fds)
        for fd in fds:
            os.close(fd)    # no agent: notified syscalls now fail with ENOSYS
        conn.close()

    t = threading.Thread(target=agent)
    t.start()
    b = oci.bundle()
    b.config["root"]["readonly"] = False
    b.config["annotations"] = {"org.pyoci.big": "z" * 200_000}
    b.linux["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": path,
                          "listenerMetadata": "pyoci-test",
                          "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]}
    b.sh("mkdir /tmp/n 2>&1; echo mkdir=$?")
    r = oci.run(b)
    t.join(30)
    srv.close()
    assert r.rc == 0 and "mkdir=1" in r.stdout, str(r)
    assert len(got["fds"]) == 1
    msg = json.loads(got["text"])
    assert msg["pid"] > 0 and msg["state"]["pid"] == msg["pid"]
    assert msg["state"]["annotations"] == b.config["annotations"]


def test_path_search_never_runs_a_shortened_path(oci: Env) -> None:
    """$PATH entry + "/" + program longer than PATH_MAX: cut at 4095 bytes it
    would name /bin/sh (the program "shXYZ" does not exist); the lookup must
    fail for "shXYZ" instead."""
    b = oci.bundle(["shXYZ", "-c", "echo the wrong program ran"])
    b.process["env"] = ["PATH=" + "/" * 4089 + "bin"]
    r = oci.run(b)
    assert "wrong program" not in r.stdout, str(r)
    line = one_clear_line(r)
    assert "shXYZ" in line and "not found" in line, str(r)


def test_deep_mount_destination(oci: Env) -> None:
    """A destination 1,500 directories deep (3,000 bytes: within PATH_MAX)
    is created without a stack frame per level."""
    deep = "/d" * 1500
    b = oci.bundle(["sh", "-c", f"test -d {deep}/x && echo deep-ok"])
    b.add_mount(deep + "/x", "tmpfs", "tmpfs", ["size=64k"])
    try:
        r = oci.run(b)
        assert r.rc == 0 and "deep-ok" in r.stdout, str(r)
    finally:
        # bottom-up: the test's clean-up (os.walk) recurses per level
        for depth in range(1500, 0, -1):
            for leaf in (["x"] if depth == 1500 else []) + [""]:
                try:
                    os.rmdir(str(b.rootfs) + "/d" * depth + ("/" + leaf if leaf else ""))
                except FileNotFoundError:
                    pass


def test_mount_destination_longer_than_path_max(oci: Env) -> None:
    b = oci.bundle(["true"])
    b.add_mount("/a" * 2600, "tmpfs", "tmpfs")
    r = oci.run(b)
    line = one_clear_line(r)
    assert "too long" in line.lower(), str(r)


def test_long_error_text_is_whole(oci: Env) -> None:
    """An error's detail from the C side is not cut at a fixed length."""
    missing = "/" + "/".join(["h" * 200] * 4) + "/no-such-hook"
    b = oci.bundle(["sleep", "1000"])
    b.config["hooks"] = {"startContainer": [{"path": missing}]}
    b.save()
    cid = oci.cid()
    oci.pyoci("create", "--bundle", str(b.path), cid).ok()
    try:
        r = oci.pyoci("start", cid)
        line = one_clear_line(r)
        assert f"({missing}) exited with status 127" in line, str(r)
    finally:
        oci.pyoci("delete", "--force", cid)


def test_cwd_longer_than_getcwd_shows_is_checked_by_walking_up(oci: Env) -> None:
    """process.cwd through a symlink to a deep directory: its real path
    (4,600 bytes) is more than getcwd(2) returns, so the check that it lies
    inside the root walks up instead, and lets it through."""
    b = oci.bundle(["sh", "-c", "echo cwd-ok"])
    deep = "/deep" + ("/" + "c" * 200) * 15
    os.makedirs(str(b.rootfs) + deep)
    os.symlink(deep, b.rootfs / "s")
    fd = os.open(str(b.rootfs) + deep, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(8):
            os.mkdir("e" * 200, dir_fd=fd)
            nxt = os.open("e" * 200, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nxt
    finally:
        os.close(fd)
    b.process["cwd"] = "/s" + ("/" + "e" * 200) * 8
    r = oci.run(b)
    assert r.rc == 0 and "cwd-ok" in r.stdout, str(r)


def test_error_text_over_the_record_limit_says_what_was_left_out(oci: Env) -> None:
    """A detail longer than a report record (64 KiB) keeps its head and tail
    and says how much of the middle was left out."""
    missing = "/" + "/".join(["k" * 250] * 300) + "/no-such-hook"     # 75 KB
    b = oci.bundle(["sleep", "1000"])
    b.config["hooks"] = {"startContainer": [{"path": missing}]}
    b.save()
    cid = oci.cid()
    oci.pyoci("create", "--bundle", str(b.path), cid).ok()
    try:
        r = oci.pyoci("start", cid)
        line = one_clear_line(r)
        assert "bytes of this message left out" in line, str(r)[:2000]
        assert "startContainer hook 0 (/kkk" in line and "/no-such-hook) exited with status 127" in line, \
            str(r)[:2000]
    finally:
        oci.pyoci("delete", "--force", cid)
