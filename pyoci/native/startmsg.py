"""SYNC 5 without the C extension: `pyoci start`'s whole conversation with
the waiting init (connect to its start socket, send START, read the answer).

`start` does nothing else with the helper, and loading it (``_cffi_backend``,
the helper's shared object, pyoci.native.spawn's tables) costs about 1 ms of
CPU per call; the standard library's ``_socket`` does the same for a fifth of
that.  The few protocol numbers this needs are written out here, as
pyoci/linux/consts.py does for kernel constants, and
tests/native/test_constants.py checks them against csrc/helper.h.  Only the
rare paths (a WARNING or ERROR record to describe) call the caller's ``describe``
(pyoci.native.childerr.child_error, which loads the helper).
"""

from __future__ import annotations

import os
import sys

from pyoci.errors import ChildError, PyociError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

# csrc/helper.h (checked by tests/native/test_constants.py)
MSG_ERROR = 7
MSG_START = 8
MSG_WARNING = 10
MSG_MAX = 65536
MSG_SIZE = 20           # struct pyoci_msg: five ints



class Message:
    """One record of the sync protocol: struct pyoci_msg and its detail text."""

    __slots__ = ("type", "stage", "index", "err", "pid", "text")

    def __init__(self, type: int, stage: int, index: int, err: int, pid: int, text: str) -> None:
        self.type = type
        self.stage = stage
        self.index = index
        self.err = err
        self.pid = pid
        self.text = text


SYNC_TIMEOUT = 30.0     # seconds for one sync point (PYOCI_SYNC_TIMEOUT overrides)
HOOK_ALLOWANCE = 300.0  # added per startContainer hook without a timeout of its own


def sync_timeout() -> float:
    value = os.environ.get("PYOCI_SYNC_TIMEOUT")
    if value:
        try:
            t = float(value)
        except ValueError:
            t = 0.0
        if 0 < t <= 86400:
            return t
    return SYNC_TIMEOUT


def start(dirfd: int, name: str, before_start: Callable[[], None],
          start_hooks: list[dict[str, Any]] | None = None,
          describe: Callable[[Message], ChildError] | None = None) -> None:
    """SYNC 5: tell the init waiting on ``dirfd``/``name`` to go; raise if it
    cannot exec.

    ``before_start`` runs once connected (the socket path can go then, which
    is what marks the container as no longer "created").  The wait for the
    execve allows for the startContainer hooks the init runs first."""
    from pyoci.report import phase

    timeout = sync_timeout()
    for h in start_hooks or []:
        t = h.get("timeout") if isinstance(h, dict) else None
        timeout += t if isinstance(t, int) and t > 0 else HOOK_ALLOWANCE
    # `run` (create and start in one process) has the helper loaded already:
    # it connects and waits, so `_socket` (a shared object) need not load too.
    helper = sys.modules.get("pyoci.native._helper")
    sock = _HelperSocket(helper.lib, dirfd, name) if helper is not None else _connect(dirfd, name)
    try:
        before_start()
        sock.settimeout(timeout)
        sock.send(MSG_START.to_bytes(4, sys.byteorder) + bytes(MSG_SIZE - 4))
        waiting = "sync 5 (START: its startContainer hooks and execve)"
        msg = _recv(sock, timeout, waiting)
        while msg is not None and msg.type == MSG_WARNING:
            from pyoci.report import warning

            warning(_describe(msg, describe).msg)
            msg = _recv(sock, timeout, waiting)
        phase("start")
        if msg is not None and msg.type == MSG_ERROR:
            raise _describe(msg, describe)
    finally:
        sock.close()


def _connect(dirfd: int, name: str) -> Any:
    import _socket

    try:
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_SEQPACKET | _socket.SOCK_CLOEXEC)
    except OSError as e:
        raise PyociError("connect to the container's init", op="connect", errno=e.errno or 0) from None
    try:
        sock.connect(f"/proc/self/fd/{dirfd}/{name}")
    except OSError as e:
        sock.close()
        raise PyociError("connect to the container's init", op="connect", errno=e.errno or 0) from None
    return sock


class _HelperSocket:
    """The few socket methods start() uses, on an fd from the C helper."""

    __slots__ = ("lib", "fd", "timeout")

    def __init__(self, lib: Any, dirfd: int, name: str) -> None:
        fd = lib.pyoci_connect(dirfd, name.encode())
        if fd < 0:
            raise PyociError("connect to the container's init", op="connect", errno=-fd)
        self.lib = lib
        self.fd = fd
        self.timeout = SYNC_TIMEOUT

    def settimeout(self, timeout: float) -> None:
        self.timeout = timeout

    def send(self, data: bytes) -> int:
        return os.write(self.fd, data)

    def recv(self, size: int) -> bytes:
        import errno
        import time

        deadline = time.monotonic() + self.timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(errno.ETIMEDOUT, "timed out")
            r = self.lib.pyoci_wait_readable(self.fd, min(max(1, int(left * 1000) + 1), 2**31 - 1))
            if r > 0:
                return os.read(self.fd, size)
            if r < 0 and r != -errno.EINTR:
                raise OSError(-r, os.strerror(-r))

    def close(self) -> None:
        os.close(self.fd)


def _describe(msg: Message, describe: Callable[[Message], ChildError] | None) -> ChildError:
    """The error a WARNING or ERROR record stands for: ``describe`` (the
    caller's: pyoci.native.childerr.child_error, which loads the helper for
    the step names) or, without one, the record's own text."""
    if describe is not None:
        return describe(msg)
    return ChildError(f"step {msg.index}: {msg.text}" if msg.text else f"step {msg.index}",
                      errno=msg.err or None)


def _recv(sock: Any, timeout: float, waiting_for: str) -> Message | None:
    """One record from the init (None at EOF), as pyoci.native.spawn.recv."""
    while True:
        try:
            data = sock.recv(MSG_MAX)
        except ConnectionResetError:
            continue    # the init exited with a message of ours unread: its records follow
        except TimeoutError:
            raise ChildError(f"timed out after {timeout:g}s waiting for the container's init at "
                             f"{waiting_for}",
                             hint="is its cgroup frozen, or the process stopped? see `ps -o pid,stat` "
                                  "and the cgroup's freezer") from None
        break
    if not data:
        return None
    head = data[:MSG_SIZE].ljust(MSG_SIZE, b"\0")
    f = [int.from_bytes(head[i:i + 4], sys.byteorder, signed=True) for i in range(0, MSG_SIZE, 4)]
    return Message(f[0], f[1], f[2], f[3], f[4], data[MSG_SIZE:].decode(errors="replace"))
