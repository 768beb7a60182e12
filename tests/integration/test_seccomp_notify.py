"""SCMP_ACT_NOTIFY: the listener fd reaches the agent at listenerPath with the
container's process state; a syscall the filter notifies waits for the agent
(here: the agent closes the fd, so the syscall fails with ENOSYS)."""

from __future__ import annotations

import array
import json
import socket
import threading
from typing import Any

from helpers.ocitest import Env


def test_notify_listener_gets_fd_and_state(oci: Env) -> None:
    path = str(oci.path("agent.sock"))
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    got: dict[str, Any] = {}

    def agent() -> None:
        conn, _ = srv.accept()
        msg, anc, _flags, _addr = conn.recvmsg(65536, socket.CMSG_LEN(4))
        fds = array.array("i")
        for level, kind, data in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(data[:4])
        got["msg"] = json.loads(msg)
        got["fds"] = list(fds)
        for fd in fds:
            import os

            got["fd_link"] = os.readlink(f"/proc/self/fd/{fd}")
            os.close(fd)        # no agent: notified syscalls now fail with ENOSYS
        conn.close()

    t = threading.Thread(target=agent)
    t.start()
    b = oci.bundle()
    b.config["root"]["readonly"] = False
    b.linux["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": path,
                          "listenerMetadata": "pyoci-test",
                          "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]}
    b.sh("mkdir /tmp/n 2>&1; echo mkdir=$?")
    r = oci.run(b)
    t.join(10)
    srv.close()
    assert r.rc == 0, str(r)
    assert "mkdir=1" in r.stdout
    msg = got["msg"]
    assert msg["fds"] == ["seccompFd"] and msg["metadata"] == "pyoci-test"
    assert msg["pid"] > 0 and msg["state"]["pid"] == msg["pid"]
    assert msg["state"]["id"] and msg["state"]["bundle"] == str(b.path)
    assert len(got["fds"]) == 1 and "seccomp" in got["fd_link"]


def test_notify_without_listener_path_is_rejected(oci: Env) -> None:
    b = oci.bundle()
    b.linux["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW",
                          "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}
    r = oci.run(b)
    assert r.rc != 0 and len(r.err_lines) == 1, str(r)
    assert "$.linux.seccomp.listenerPath" in r.err_lines[0]
