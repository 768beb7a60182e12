"""`run`: create, start, wait for the init while forwarding signals to it,
then delete; the exit status is the container's (128+N for signal N)."""

from __future__ import annotations

import os
import signal

from pyoci.lifecycle import container
from pyoci.lifecycle.container import CreateOptions

PR_SET_CHILD_SUBREAPER = 36
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
             signal.SIGUSR2, signal.SIGWINCH)


def _subreaper() -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def run_container(root: str, cid: str, opts: CreateOptions, *, detach: bool, keep: bool) -> int:
    if not detach:
        _subreaper()
    pid = container.create(root, cid, opts)
    try:
        container.start(root, cid)
    except BaseException:
        container.delete(root, cid, force=True)
        raise
    if detach:
        return 0

    def forward(signum: int, _frame: object) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for s in FORWARDED:
        signal.signal(s, forward)
    status = 0
    while True:
        try:
            wpid, wstatus = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        if wpid == pid:
            status = os.waitstatus_to_exitcode(wstatus)
            break
    for s in FORWARDED:
        signal.signal(s, signal.SIG_DFL)
    if not keep:
        container.delete(root, cid, force=True)
    return status if status >= 0 else 128 - status
