"""`run`: create, start, wait for the init while forwarding signals to it,
then delete; the exit status is the container's (128+N for signal N)."""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # the C module: `signal` imports enum (~7 ms)
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyoci.lifecycle.create import CreateOptions

FORWARDED = (_signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP, _signal.SIGQUIT, _signal.SIGUSR1,
             _signal.SIGUSR2, _signal.SIGWINCH)


def _subreaper() -> None:
    """Become the reaper of the container's init (and of orphans it leaves)."""
    from pyoci.native._helper import lib

    lib.pyoci_set_child_subreaper()


def run_container(root: str, cid: str, opts: CreateOptions, *, detach: bool, keep: bool) -> int:
    # (here, not above: `exec` takes wait_for from this module)
    from pyoci.lifecycle import container
    from pyoci.lifecycle.create import create

    if not detach:
        _subreaper()
    master = -1
    if opts.console_socket or detach:
        pid = create(root, cid, opts)
    else:
        # A terminal without --console-socket: we hold the pty ourselves.
        from pyoci.native import spawn

        mine, theirs = spawn.console_pair()
        try:
            pid = create(root, cid, opts, console_fd=theirs)
            os.set_blocking(mine, False)
            try:
                master = spawn.recv_console(mine)
            except Exception:
                master = -1       # process.terminal is false: nothing was sent
        finally:
            os.close(mine)
            os.close(theirs)
    try:
        container.start(root, cid)
    except BaseException:
        container.delete(root, cid, force=True)
        raise
    if detach:
        return 0
    if master >= 0:
        from pyoci.linux.tty import proxy

        proxy(master, pid)

    from pyoci.report import debug, phase

    debug(f"run {cid}: started init pid {pid}, waiting")
    status = wait_for(pid)
    phase("wait")
    debug(f"run {cid}: init exited with status {status}")
    if not keep:
        container.delete(root, cid, force=True)
        phase("delete")
    return status


def wait_for(pid: int) -> int:
    """Wait for our child pid while forwarding signals; its exit status
    (128+N when killed by signal N)."""
    import gc

    # A long wait: the collector again (the launcher disables it for short
    # commands), but not over what exists now: frozen, the thousands of
    # objects the imports made are never scanned (a collection of them cost
    # ~0.8 ms in every run).
    gc.freeze()
    gc.enable()

    def forward(signum: int, _frame: object) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for s in FORWARDED:
        _signal.signal(s, forward)
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
        _signal.signal(s, _signal.SIG_DFL)
    return status if status >= 0 else 128 - status
