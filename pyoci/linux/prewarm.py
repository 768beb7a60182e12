"""Keep the cgroup attach lock's writer path open while `create` gets ready.

Writing a pid to cgroup.procs takes the kernel's cgroup_threadgroup_rwsem on
its writer side, and the first such write after an idle moment waits for an
RCU grace period (7-19 ms on this project's machines); one grace period after
the last write the lock goes back to its reader-friendly mode.  A container
without a user namespace never needs that (its init joins its cgroups by
itself: spawn.SelfPlacement).  Where pyoci must move the init (a user
namespace as root), `create` calls :func:`start` once it knows: a thread moves
this process into the cgroup it already is in -- a no-op migration that takes
the same lock -- and repeats that every millisecond or so, so the grace period
runs while the container's first stage starts, and the init's own move finds
the fast path or waits only for what is left of it.

:func:`stop` ends the thread once the container has been placed.  The thread
gives up by itself after ``MAX_SECONDS`` (a caller that never gets there).

The thread's one fd (its cgroup's cgroup.procs,
close-on-exec) stays open until the thread ends, after the container was
forked; so it never opens a hole in a --preserve-fds range that one of
pyoci's own fds could fill, and the C helper hands the container /dev/null
in its place should it lie in that range.  The container's first stage is
forked while the thread runs: between its raw clone and its execveat it makes
only system calls, so another thread's state (locks, the GIL) does not matter
there.
"""

import _thread
import posix
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

MAX_SECONDS = 2.0
INTERVAL = 0.001


def _target(own_cgroups: "Callable[[], dict[str, str]]") -> str | None:
    """Our own cgroup's cgroup.procs in a hierarchy every host has."""
    own = own_cgroups()
    for c in ("pids", "freezer", "devices"):
        if c in own:
            return f"/sys/fs/cgroup/{c}{own[c]}/cgroup.procs".replace("//", "/")
    if "" in own:       # a cgroup v2 host (the lock is the same)
        return f"/sys/fs/cgroup{own['']}/cgroup.procs".replace("//", "/")
    return None


class Prewarm:
    __slots__ = ("fd", "stopped")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.stopped = False
        _thread.start_new_thread(self._run, ())

    def _run(self) -> None:
        me = str(posix.getpid()).encode()
        deadline = time.monotonic() + MAX_SECONDS
        try:
            while not self.stopped and time.monotonic() < deadline:
                posix.write(self.fd, me)
                time.sleep(INTERVAL)
        except OSError:
            pass
        finally:
            # The fd is the thread's alone: closing it here, not in stop(),
            # keeps stop() from waiting for the thread.
            posix.close(self.fd)


_running: Prewarm | None = None


def start(own_cgroups: "Callable[[], dict[str, str]]") -> None:
    """Start the thread (root only, once per process); never raises: without
    it `create` is only slower.  ``own_cgroups``: the caller's cgroups,
    controller -> path (create passes its cgroup Manager's own)."""
    global _running
    if _running is not None or posix.geteuid() != 0:
        return
    try:
        target = _target(own_cgroups)
        if target is None:
            return
        fd = posix.open(target, posix.O_WRONLY | posix.O_CLOEXEC)
    except (OSError, ValueError):
        return
    _running = Prewarm(fd)


def stop() -> None:
    """Tell the thread to end (it closes its fd as it goes); returns at once.
    Call it once the container has been placed in its cgroups."""
    global _running
    if _running is not None:
        _running.stopped = True
        _running = None
