"""OCI hooks run by the runtime process (every stage but startContainer,
which the container's init runs itself, see csrc/process.c)."""

from __future__ import annotations

import os

from pyoci.errors import HookError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


def run_hooks(stage: str, hooks: list[dict[str, Any]], state: dict[str, Any],
              preexec: Callable[[], None] | None = None,
              warn: Callable[[str], None] | None = None) -> None:
    """Run each hook of a stage in order with the state JSON on stdin.

    Raises HookError naming the stage, the index and the path on the first
    failure (non-zero exit, signal, timeout, or the program cannot start).
    With ``warn`` (poststart, poststop) a failure is reported there and the
    remaining hooks still run."""
    for i, hook in enumerate(hooks):
        try:
            _run_one(stage, i, hook, state, preexec)
        except HookError as e:
            if warn is None:
                raise
            warn(str(e))


# What a failing hook wrote is put into its error (as runc does: "exit
# status 1, stdout: ..., stderr: ..."), on one line: at most this many bytes
# of each stream are kept, the rest is read and dropped.
OUTPUT_LIMIT = 2048


def _run_one(stage: str, i: int, hook: dict[str, Any], state: dict[str, Any],
             preexec: Callable[[], None] | None) -> None:
    import subprocess

    from pyoci import jsonfast

    data = jsonfast.dumps(state).encode()
    path = hook["path"]
    # argv as given (path /bin/busybox with args ["cat", ...] runs cat).
    args = list(hook.get("args") or [path])
    env = dict(e.split("=", 1) for e in hook.get("env") or [] if "=" in e)
    where = f"{stage} hook $.hooks.{stage}[{i}] ({path})"
    timeout = hook.get("timeout")
    try:
        p = subprocess.Popen(args, executable=path, env=env, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             close_fds=True, preexec_fn=preexec)
    except OSError as e:
        raise HookError(f"{where}: cannot run", op=stage, path=path, errno=e.errno) from None
    except subprocess.SubprocessError:     # preexec failed: it could not enter the namespaces
        raise HookError(f"{where}: cannot enter the container's namespaces", op=stage, path=path) from None
    try:
        out, err, exited = _exchange(p, data, timeout)
    finally:
        for f in (p.stdin, p.stdout, p.stderr):
            if f is not None:
                try:
                    f.close()
                except OSError:
                    pass
    if not exited:
        p.kill()
        p.wait()
        raise HookError(f"{where} timed out after {timeout}s{_output(out, err)}", op=stage,
                        path=path) from None
    if p.returncode != 0:
        how = (f"exited with status {p.returncode}" if p.returncode > 0
               else f"was killed by signal {-p.returncode}")
        raise HookError(f"{where} {how}{_output(out, err)}", op=stage, path=path)


def _exchange(p: Any, data: bytes, timeout: float | None) -> tuple[bytes, bytes, bool]:
    """Write the state to the hook's stdin and collect (the first
    OUTPUT_LIMIT bytes of) its stdout and stderr until it exits or the
    timeout passes: (stdout, stderr, exited).  The end of the hook, not the
    end of its output, ends the wait: a daemon a hook leaves behind with
    the pipes open does not hold the runtime."""
    import select
    import time

    deadline = None if timeout is None else time.monotonic() + timeout
    kept = {p.stdout.fileno(): bytearray(), p.stderr.fileno(): bytearray()}
    stdin = p.stdin.fileno()
    poller = select.poll()
    for fd in (*kept, stdin):
        os.set_blocking(fd, False)
        poller.register(fd, select.POLLOUT if fd == stdin else select.POLLIN)
    readers = set(kept)
    pending = memoryview(data)
    if not pending:
        poller.unregister(stdin)
        p.stdin.close()
    pidfd = -1
    try:
        pidfd = os.pidfd_open(p.pid)
        poller.register(pidfd, select.POLLIN)
    except (AttributeError, OSError):
        pass

    def read(fd: int) -> bool:
        """Read what is there; False at end of file."""
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return True
        except OSError:
            chunk = b""
        if not chunk:
            poller.unregister(fd)
            readers.discard(fd)
            return False
        buf = kept[fd]
        if len(buf) < OUTPUT_LIMIT + 1:
            buf += chunk[: OUTPUT_LIMIT + 1 - len(buf)]
        return True

    try:
        while p.poll() is None:
            wait: float | None = None
            if deadline is not None:
                wait = deadline - time.monotonic()
                if wait <= 0:
                    return bytes(kept[p.stdout.fileno()]), bytes(kept[p.stderr.fileno()]), False
            if pidfd < 0:
                wait = 0.05 if wait is None else min(wait, 0.05)
            for fd, _ in poller.poll(None if wait is None else max(1, int(wait * 1000))):
                if fd == stdin:
                    try:
                        pending = pending[os.write(stdin, pending[:65536]):]
                    except BlockingIOError:
                        continue
                    except OSError:          # the hook closed its stdin: fine
                        pending = pending[:0]
                    if not pending:
                        poller.unregister(stdin)
                        p.stdin.close()
                elif fd in readers:
                    read(fd)
        # Gone: take what it left in the pipes (bounded: a child it left
        # behind may go on writing).
        for fd in list(readers):
            for _ in range(16):
                if not read(fd):
                    break
                if len(kept[fd]) > OUTPUT_LIMIT:
                    break
        return bytes(kept[p.stdout.fileno()]), bytes(kept[p.stderr.fileno()]), True
    finally:
        if pidfd >= 0:
            os.close(pidfd)


def _output(out: bytes, err: bytes) -> str:
    """", stdout: ..., stderr: ..." for what was written, on one line."""
    parts = []
    for name, raw in (("stdout", out), ("stderr", err)):
        text = raw[:OUTPUT_LIMIT].decode("utf-8", "replace").strip()
        if not text:
            continue
        text = "".join(c if c.isprintable() or c == " " else c.encode("unicode_escape").decode("ascii")
                       for c in text)
        if len(raw) > OUTPUT_LIMIT:
            text += "..."
        parts.append(f", {name}: {text}")
    return "".join(parts)


def in_namespaces_of(pid: int, with_user: bool) -> Callable[[], None]:
    """A preexec function that moves the hook into the container's mount
    namespace (and its user namespace first, when it has one)."""
    from pyoci.linux.consts import CLONE_NEWNS, CLONE_NEWUSER
    from pyoci.native._helper import lib

    # Try the namespace files here, where a failure can be reported with its
    # errno (a rootless runtime may not open them: the init is not dumpable
    # before it starts), rather than in the child, where it can't.
    for name in (("user", "mnt") if with_user else ("mnt",)):
        try:
            os.close(os.open(f"/proc/{pid}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC))
        except OSError as e:
            hint = ("a rootless runtime cannot enter a container's namespaces before it starts"
                    if e.errno == 13 and with_user else None)
            raise HookError("createContainer hook: enter the container's namespaces: open "
                            f"/proc/{pid}/ns/{name}", op="createContainer", errno=e.errno,
                            hint=hint) from None

    def enter() -> None:
        if with_user:
            r = lib.pyoci_setns_path(f"/proc/{pid}/ns/user".encode(), CLONE_NEWUSER)
            if r < 0:
                raise OSError(-r, "setns user")
        r = lib.pyoci_setns_path(f"/proc/{pid}/ns/mnt".encode(), CLONE_NEWNS)
        if r < 0:
            raise OSError(-r, "setns mnt")
        os.chdir("/")

    return enter
