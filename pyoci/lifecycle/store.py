"""State on disk: ``<root>/<id>/`` per container.

Files in a container's directory:
  state.json   what create recorded (pid, its start time, bundle, hooks, ...),
               written atomically (temp file + rename) once create succeeds
  start.sock   the socket the init waits on until `start` (its presence means
               "created")

Each command on a container takes an exclusive flock on the directory, so
concurrent commands on one id are serialised; a second `create` of an id
fails at mkdir.
"""

from __future__ import annotations

import fcntl
import os

from pyoci import jsonfast
from pyoci.errors import ContainerExists, ContainerNotFound, PyociError
from pyoci.lifecycle import status as st
from pyoci.linux import proc

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

STATE_FILE = "state.json"
START_SOCKET = "start.sock"
_ID_FIRST = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_ID_CHARS = _ID_FIRST | frozenset("_.+-")


def valid_id(cid: str) -> bool:
    """Letters, digits and _ . + -, starting with a letter or digit (as runc)."""
    return 0 < len(cid) <= 1024 and cid[0] in _ID_FIRST and all(c in _ID_CHARS for c in cid)


def default_root() -> str:
    """runc's rule: /run/pyoci for real root, $XDG_RUNTIME_DIR/pyoci for an
    unprivileged user or root inside a user namespace (rootless Podman)."""
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if os.geteuid() == 0 and (not xdg or proc.in_initial_userns()):
        return "/run/pyoci"
    if xdg:
        return os.path.join(xdg, "pyoci")
    return f"/tmp/pyoci-{os.geteuid()}"


def check_id(cid: str) -> None:
    if not valid_id(cid):
        raise PyociError(f"invalid container id {cid!r}",
                         hint="use letters, digits and _ . + -, starting with a letter or digit")


def write_atomic(dirfd: int, name: str, data: bytes, mode: int = 0o600) -> None:
    tmp = f".{name}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode, dir_fd=dirfd)
    try:
        # No fsync: the state lives on tmpfs (/run) and dies with a reboot
        # anyway; the rename alone keeps readers from seeing a partial file.
        os.write(fd, data)
    finally:
        os.close(fd)
    os.rename(tmp, name, src_dir_fd=dirfd, dst_dir_fd=dirfd)


def write_file_atomic(path: str, data: bytes) -> None:
    """Write a file that may live anywhere (the pid file); a failure is a
    PyociError naming the flag, the file and the errno."""
    d, base = os.path.split(os.path.abspath(path))
    try:
        dirfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            write_atomic(dirfd, base, data, 0o644)
        finally:
            os.close(dirfd)
    except OSError as e:
        raise PyociError.from_os("write --pid-file", e, path=path) from None


class Container:
    """A container's directory, locked, and what its state file says."""

    __slots__ = ("root", "cid", "dirfd", "state")

    def __init__(self, root: str, cid: str, dirfd: int, state: dict[str, Any] | None) -> None:
        self.root = root
        self.cid = cid
        self.dirfd = dirfd
        self.state = state

    @property
    def path(self) -> str:
        return os.path.join(self.root, self.cid)

    @property
    def pid(self) -> int:
        return int((self.state or {}).get("pid") or 0)

    def status(self) -> st.Status:
        """Derived from facts, never trusted from the file."""
        if self.state is None:
            return st.CREATING if self._create_running() else st.STOPPED
        if not proc.is_alive(self.pid, self.state.get("pid_start")):
            return st.STOPPED
        if self.has_start_socket():
            return st.CREATED
        if self._frozen():
            return st.PAUSED
        return st.RUNNING

    def _create_running(self) -> bool:
        creator = 0
        try:
            with open(os.path.join(self.path, "creator")) as f:
                creator = int(f.read() or 0)
        except (OSError, ValueError):
            return False
        return proc.is_alive(creator, None)

    def has_start_socket(self) -> bool:
        try:
            os.stat(START_SOCKET, dir_fd=self.dirfd)
            return True
        except FileNotFoundError:
            return False

    def _frozen(self) -> bool:
        path = (self.state or {}).get("freezer")
        if not path:
            return False
        try:
            with open(path) as f:
                value = f.read().strip()
        except OSError:
            return False
        return value in ("FROZEN", "1")

    def save(self, state: dict[str, Any]) -> None:
        self.state = state
        write_atomic(self.dirfd, STATE_FILE, jsonfast.dumps(state).encode())

    def remove(self) -> None:
        """Remove the directory (flat: files and the socket only)."""
        try:
            names = os.listdir(self.dirfd)
        except OSError:
            names = []
        try:
            for name in names:
                try:
                    os.unlink(name, dir_fd=self.dirfd)
                except IsADirectoryError:
                    import shutil

                    shutil.rmtree(os.path.join(self.path, name), ignore_errors=True)
                except FileNotFoundError:
                    pass
            try:
                os.rmdir(self.path)
            except FileNotFoundError:
                pass
        except OSError as e:
            # (a read-only or otherwise damaged --root): name the file, never "internal error"
            where = os.path.join(self.path, e.filename) if isinstance(e.filename, str) else self.path
            raise PyociError.from_os("remove the container's state: remove", e, path=where,
                                     hint=_root_hint(e)) from None

    def close(self) -> None:
        if self.dirfd >= 0:
            os.close(self.dirfd)
            self.dirfd = -1

    def __enter__(self) -> Container:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _root_hint(e: OSError) -> str | None:
    if e.errno == 30:   # EROFS
        return "the state directory (--root) must be on a writable filesystem"
    return None


def _lock(dirfd: int, shared: bool) -> None:
    fcntl.flock(dirfd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)


def _read_state(dirfd: int) -> dict[str, Any] | None:
    try:
        fd = os.open(STATE_FILE, os.O_RDONLY | os.O_CLOEXEC, dir_fd=dirfd)
    except FileNotFoundError:
        return None
    with os.fdopen(fd, "rb") as f:
        data = f.read()
    try:
        state: dict[str, Any] = jsonfast.loads(data)
    except ValueError:
        return None
    return state


def open_container(root: str, cid: str, *, shared: bool = False) -> Container:
    """Open and lock an existing container; ContainerNotFound if there is none."""
    check_id(cid)
    path = os.path.join(root, cid)
    while True:
        try:
            dirfd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except (FileNotFoundError, NotADirectoryError):
            raise ContainerNotFound(cid) from None
        except OSError as e:
            raise PyociError.from_os("open the container's state", e, path=path,
                                     hint="it belongs to another user (another --root?)") from None
        _lock(dirfd, shared)
        if os.fstat(dirfd).st_nlink == 0:
            # deleted while we waited for the lock
            os.close(dirfd)
            raise ContainerNotFound(cid)
        return Container(root, cid, dirfd, _read_state(dirfd))


def new_container(root: str, cid: str) -> Container:
    """Create and lock the directory of a new container."""
    check_id(cid)
    try:
        os.makedirs(root, mode=0o700, exist_ok=True)
    except OSError as e:
        raise PyociError.from_os("create the state directory", e, path=root,
                                 hint="pass --root DIR or set XDG_RUNTIME_DIR to a writable directory") from e
    path = os.path.join(root, cid)
    try:
        os.mkdir(path, 0o711)
    except FileExistsError:
        raise ContainerExists(cid) from None
    except OSError as e:
        raise PyociError.from_os("create the container's state directory", e, path=path) from e
    dirfd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    _lock(dirfd, False)
    write_atomic(dirfd, "creator", str(os.getpid()).encode())
    return Container(root, cid, dirfd, None)


def list_ids(root: str) -> list[str]:
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if valid_id(n) and os.path.isdir(os.path.join(root, n)))
