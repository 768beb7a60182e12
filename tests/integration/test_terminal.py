"""process.terminal: the pty master goes to --console-socket in one message
(one iovec naming the pty, exactly one SCM_RIGHTS fd); the slave is the
container's stdio and controlling terminal; consoleSize is applied."""

from __future__ import annotations

import socket

from helpers.ocitest import Env, run_with_console_socket


def test_console_socket_receives_the_master(oci: Env) -> None:
    b = oci.bundle()
    b.process["terminal"] = True
    b.process["consoleSize"] = {"height": 33, "width": 101}
    b.sh("stty size; tty; ls -l /dev/console; [ -t 0 ] && echo stdin-is-tty")
    r = run_with_console_socket(oci, b)
    assert r.cmsgs == [(socket.SOL_SOCKET, socket.SCM_RIGHTS)] and len(r.fds) == 1
    assert r.msg.startswith(b"/dev/pts/")
    assert "33 101" in r.out
    assert "/dev/pts/0" in r.out
    assert "stdin-is-tty" in r.out


def test_terminal_without_console_socket_is_refused(oci: Env) -> None:
    b = oci.bundle()
    b.process["terminal"] = True
    b.save()
    r = oci.pyoci("create", "--bundle", str(b.path), oci.cid())
    assert r.rc != 0 and len(r.err_lines) == 1, str(r)
    assert "$.process.terminal" in r.err_lines[0] and "--console-socket" in r.err_lines[0]
