"""`run` with process.terminal and no --console-socket: relay between the
caller's terminal and the container's pty until the container exits."""

from __future__ import annotations

import os


def proxy(master: int, pid: int) -> None:
    import gc
    import select
    import termios
    import tty

    # A long wait: the collector again, over nothing the start-up made
    # (as pyoci.lifecycle.run.wait_for; docs/startup-cost.md).
    gc.freeze()
    gc.enable()
    stdin_tty = os.isatty(0)
    saved = None
    if stdin_tty:
        saved = termios.tcgetattr(0)
        tty.setraw(0)
        # Raw input, but output processing kept (as runc): the container's
        # pty sends "\n" alone (no ONLCR there), and this terminal turns it
        # into "\r\n" for the screen as for any program.
        attrs = termios.tcgetattr(0)
        attrs[1] = saved[1]
        termios.tcsetattr(0, termios.TCSANOW, attrs)
        try:
            import fcntl
            import struct

            size = fcntl.ioctl(0, termios.TIOCGWINSZ, b"\0" * 8)
            fcntl.ioctl(master, termios.TIOCSWINSZ, size)
            del struct
        except OSError:
            pass
    fds = [master, 0]
    try:
        while True:
            try:
                ready, _, _ = select.select(fds, [], [], 0.2)
            except InterruptedError:
                continue
            if master in ready:
                try:
                    data = os.read(master, 65536)
                except OSError:
                    data = b""
                if not data:
                    break
                os.write(1, data)
            if 0 in ready:
                data = os.read(0, 65536)
                if not data:
                    fds.remove(0)
                else:
                    os.write(master, data)
            if not ready and not _alive(pid):
                break
    finally:
        if saved is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, saved)
        os.close(master)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in (b"Z", b"X")
