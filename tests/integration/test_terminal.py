"""process.terminal: the pty master goes to --console-socket in one message
(one iovec naming the pty, exactly one SCM_RIGHTS fd); the slave is the
container's stdio and controlling terminal; consoleSize is applied."""

from __future__ import annotations

import array
import os
import select
import socket
import time

from helpers.ocitest import Env


def _read_all(fd: int, timeout: float = 5.0) -> bytes:
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], 0.2)
        if not r:
            if out:
                break
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    return out


def test_console_socket_receives_the_master(oci: Env) -> None:
    path = str(oci.path("console.sock"))
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    b = oci.bundle()
    b.process["terminal"] = True
    b.process["consoleSize"] = {"height": 33, "width": 101}
    b.sh("stty size; tty; ls -l /dev/console; [ -t 0 ] && echo stdin-is-tty")
    b.save()
    cid = oci.cid()
    oci.pyoci("create", "--bundle", str(b.path), "--console-socket", path, cid).ok()
    conn, _ = srv.accept()
    msg, anc, _flags, _addr = conn.recvmsg(256, socket.CMSG_LEN(4 * 4))
    fds = array.array("i")
    for level, kind, data in anc:
        assert (level, kind) == (socket.SOL_SOCKET, socket.SCM_RIGHTS)
        fds.frombytes(data[: len(data) - len(data) % 4])
    assert len(anc) == 1 and len(fds) == 1
    assert msg.startswith(b"/dev/pts/")
    master = fds[0]
    try:
        oci.pyoci("start", cid).ok()
        out = _read_all(master).decode()
    finally:
        os.close(master)
        conn.close()
        srv.close()
        oci.wait_status(cid, "stopped")
        oci.pyoci("delete", cid).ok()
    assert "33 101" in out
    assert "/dev/pts/0" in out
    assert "stdin-is-tty" in out


def test_terminal_without_console_socket_is_refused(oci: Env) -> None:
    b = oci.bundle()
    b.process["terminal"] = True
    b.save()
    r = oci.pyoci("create", "--bundle", str(b.path), oci.cid())
    assert r.rc != 0 and len(r.err_lines) == 1, str(r)
    assert "$.process.terminal" in r.err_lines[0] and "--console-socket" in r.err_lines[0]
