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


def _run_one(stage: str, i: int, hook: dict[str, Any], state: dict[str, Any],
             preexec: Callable[[], None] | None) -> None:
    import subprocess

    from pyoci import jsonfast

    data = jsonfast.dumps(state).encode()
    path = hook["path"]
    args = list(hook.get("args") or [path])
    env = dict(e.split("=", 1) for e in hook.get("env") or [] if "=" in e)
    where = f"{stage} hook $.hooks.{stage}[{i}] ({path})"
    timeout = hook.get("timeout")
    try:
        p = subprocess.Popen(args, executable=path, env=env, stdin=subprocess.PIPE,
                             close_fds=True, preexec_fn=preexec)
    except OSError as e:
        raise HookError(f"{where}: cannot run", op=stage, path=path, errno=e.errno) from None
    except subprocess.SubprocessError:     # preexec failed: it could not enter the namespaces
        raise HookError(f"{where}: cannot enter the container's namespaces", op=stage, path=path) from None
    try:
        p.communicate(data, timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        raise HookError(f"{where} timed out after {timeout}s", op=stage, path=path) from None
    except BrokenPipeError:
        p.wait()
    if p.returncode != 0:
        how = (f"exited with status {p.returncode}" if p.returncode > 0
               else f"was killed by signal {-p.returncode}")
        raise HookError(f"{where} {how}", op=stage, path=path)


def in_namespaces_of(pid: int, with_user: bool) -> Callable[[], None]:
    """A preexec function that moves the hook into the container's mount
    namespace (and its user namespace first, when it has one)."""
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
            r = lib.pyoci_setns_path(f"/proc/{pid}/ns/user".encode(), 0x10000000)
            if r < 0:
                raise OSError(-r, "setns user")
        r = lib.pyoci_setns_path(f"/proc/{pid}/ns/mnt".encode(), 0x00020000)
        if r < 0:
            raise OSError(-r, "setns mnt")
        os.chdir("/")

    return enter
