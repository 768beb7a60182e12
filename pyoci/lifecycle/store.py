"""State on disk: ``<root>/<id>/`` per container.

Files in a container's directory:
  creator      "<pid> <start time>" of the `create` that makes it (removed
               when create succeeds): alive and no state.json is "creating"
  cgroups.json the cgroup directories create is about to make (see container.py)
  init         "<pid> <start time>" of the container's init, written as soon
               as create learns it (SYNC 2): a delete after a killed create
               finds the init by it
  state.json   what create recorded (pid, its start time, bundle, hooks, ...),
               written atomically (temp file + rename) once create succeeds;
               every field is type-checked when read (a damaged file is a
               DamagedState error naming it, and only `delete --force` goes on)
  start.sock   the socket the init waits on until `start` (its presence means
               "created")

Lock rules (flock on the directory):
  - `create` holds it exclusively from mkdir to its end (hooks included);
  - `start`, `kill`, `pause`, `resume`, `update`, `delete` take it
    exclusively, `exec` shared; none waits on a create: while the creator
    named in ``creator`` is alive (pid and start time) they fail at once with
    "it is creating", and `delete --force` kills that creator and the init
    it recorded, then takes the lock.  Any other holder is waited for, up to
    LOCK_WAIT seconds, then the command fails naming the container as busy;
  - `state`, `list`, `ps` and `events` never wait: they take the shared lock
    when it is free and otherwise read without it (state.json is replaced
    atomically and the status is derived from facts, so an unlocked read is
    consistent; a directory removed meanwhile reads as "does not exist").
A second `create` of an id fails at mkdir.
"""

from __future__ import annotations

import fcntl
import os
import time

from pyoci import jsonfast
from pyoci.errors import (
    ContainerBusy,
    ContainerExists,
    ContainerNotFound,
    DamagedState,
    InvalidTransition,
    PyociError,
)
from pyoci.lifecycle import status as st
from pyoci.linux import proc

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

STATE_FILE = "state.json"
START_SOCKET = "start.sock"
CREATOR_FILE = "creator"
INIT_FILE = "init"
# How long a command waits for another one's lock (a create is never waited for).
LOCK_WAIT = 30.0
# A state.json is a few KiB (the config's process and annotations); config.json
# itself is bounded well below this.
STATE_MAX = 64 << 20
PID_MAX = 1 << 22           # the kernel's PID_MAX_LIMIT
SIGKILL = 9
_ENOSPC = 28
_EROFS = 30
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
    """Write all of data to name (temp file + rename); on failure nothing of
    it is left and the OSError propagates."""
    tmp = f".{name}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode, dir_fd=dirfd)
    try:
        # No fsync: the state lives on tmpfs (/run) and dies with a reboot
        # anyway; the rename alone keeps readers from seeing a partial file.
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.close(fd)
        fd = -1
        os.rename(tmp, name, src_dir_fd=dirfd, dst_dir_fd=dirfd)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        try:
            os.unlink(tmp, dir_fd=dirfd)
        except OSError:
            pass
        raise


def _hint(e: OSError) -> str | None:
    if e.errno == _ENOSPC:
        return "the filesystem of the state directory (--root) is full"
    if e.errno == _EROFS:
        return "the state directory (--root) is on a read-only filesystem"
    return None


def write_error(what: str, path: str, e: OSError) -> PyociError:
    """The error for a state file that could not be written."""
    return PyociError.from_os(what, e, path=path, hint=_hint(e))


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
        # (no --root hint: the pid file lives wherever the caller said)
        raise PyociError.from_os("write --pid-file", e, path=path) from None


def pid_record(pid: int) -> bytes:
    """"<pid> <start time>": a process named so that a reused pid is not it."""
    return f"{pid} {proc.start_time(pid) or 0}".encode()


def read_pid_record(dirfd: int, name: str) -> tuple[int, int] | None:
    """(pid, start time) from a pid_record file; None if absent or damaged."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=dirfd)
    except OSError:
        return None
    try:
        data = os.read(fd, 64)
    except OSError:
        return None
    finally:
        os.close(fd)
    parts = data.split()
    if len(parts) != 2 or not all(p.isdigit() and len(p) < 20 for p in parts):
        return None
    pid, started = int(parts[0]), int(parts[1])
    if not 0 < pid <= PID_MAX or started <= 0:
        return None
    return pid, started


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as f:
                out += [int(x) for x in f.read().split()]
        except (OSError, ValueError):
            pass
    return out


def kill_creator(dirfd: int) -> None:
    """SIGKILL the create named in ``creator`` (if it still is that process)
    and its children: stage1, the init before it is ready, hooks.  Each
    child is pinned by a pidfd while it is still the creator's child, so no
    other process is hit once they are reparented."""
    rec = read_pid_record(dirfd, CREATOR_FILE)
    if rec is None:
        return
    from pyoci.native._helper import lib

    pidfd = lib.pyoci_pidfd_open(rec[0])
    if pidfd < 0:
        return
    kids: list[int] = []
    try:
        if not proc.is_alive(*rec):
            return
        for kid in _children(rec[0]):
            fd = lib.pyoci_pidfd_open(kid)
            if fd < 0:
                continue
            fields = proc._stat_fields(kid)
            if fields is not None and fields[1] == str(rec[0]):
                kids.append(fd)
            else:
                os.close(fd)
        lib.pyoci_pidfd_send_signal(pidfd, SIGKILL)
        for fd in kids:
            lib.pyoci_pidfd_send_signal(fd, SIGKILL)
    finally:
        os.close(pidfd)
        for fd in kids:
            os.close(fd)


def kill_recorded(dirfd: int, name: str) -> int:
    """SIGKILL the process a pid_record names, if it still is that process;
    return its pid (0: none).  A pidfd pins it between the check and the kill."""
    rec = read_pid_record(dirfd, name)
    if rec is None:
        return 0
    from pyoci.native._helper import lib

    pidfd = lib.pyoci_pidfd_open(rec[0])
    if pidfd < 0:
        return 0
    try:
        if not proc.is_alive(*rec):
            return 0
        lib.pyoci_pidfd_send_signal(pidfd, SIGKILL)
        return rec[0]
    finally:
        os.close(pidfd)


class Container:
    """A container's directory, locked (or read without the lock: ``locked``
    False), and what its state file says."""

    __slots__ = ("root", "cid", "dirfd", "state", "damage", "locked")

    def __init__(self, root: str, cid: str, dirfd: int, state: dict[str, Any] | None,
                 damage: str | None = None, locked: bool = True) -> None:
        self.root = root
        self.cid = cid
        self.dirfd = dirfd
        # With ``damage`` (what is wrong with state.json), only the fields
        # that passed the checks.
        self.state = state
        self.damage = damage
        self.locked = locked

    @property
    def path(self) -> str:
        return os.path.join(self.root, self.cid)

    @property
    def pid(self) -> int:
        pid = (self.state or {}).get("pid")
        return pid if type(pid) is int else 0

    def status(self) -> st.Status:
        """Derived from facts, never trusted from the file."""
        if self.state is None:
            return st.CREATING if self.create_running() else st.STOPPED
        started = self.state.get("pid_start")
        if type(started) is not int or not proc.is_alive(self.pid, started):
            return st.STOPPED
        if self.has_start_socket():
            return st.CREATED
        if self._frozen():
            return st.PAUSED
        return st.RUNNING

    def create_running(self) -> bool:
        """The `create` named in ``creator`` (pid and start time) still runs."""
        rec = read_pid_record(self.dirfd, CREATOR_FILE)
        return rec is not None and proc.is_alive(*rec)

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

    def write(self, name: str, data: bytes) -> None:
        try:
            write_atomic(self.dirfd, name, data)
        except OSError as e:
            raise write_error("write the state file", os.path.join(self.path, name), e) from None

    def save(self, state: dict[str, Any]) -> None:
        self.write(STATE_FILE, jsonfast.dumps(state).encode())
        self.state = state

    def remove(self) -> None:
        """Remove the directory (flat: files and the socket only)."""
        try:
            names = os.listdir(self.dirfd)
        except OSError:
            names = []
        # state.json last: until the directory is gone, an unlocked reader
        # sees the container as it was.
        names.sort(key=lambda n: n == STATE_FILE)
        for name in names:
            try:
                os.unlink(name, dir_fd=self.dirfd)
            except IsADirectoryError:
                import shutil

                shutil.rmtree(os.path.join(self.path, name), ignore_errors=True)
            except FileNotFoundError:
                pass
            except OSError as e:
                raise PyociError.from_os("remove", e, path=os.path.join(self.path, name),
                                         hint=_hint(e)) from None
        try:
            os.rmdir(self.path)
        except FileNotFoundError:
            pass
        except OSError as e:
            raise PyociError.from_os("remove", e, path=self.path, hint=_hint(e)) from None

    def close(self) -> None:
        if self.dirfd >= 0:
            os.close(self.dirfd)
            self.dirfd = -1

    def __enter__(self) -> Container:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _try_lock(dirfd: int, shared: bool) -> bool:
    try:
        fcntl.flock(dirfd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def _wait_lock(dirfd: int, shared: bool, cid: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    delay = 0.001
    while not _try_lock(dirfd, shared):
        if time.monotonic() > deadline:
            raise ContainerBusy(f"container {cid!r} is busy: another pyoci command has held its lock "
                                f"for {timeout:g} s", hint="a stopped or hung pyoci process? "
                                f"(pyoci delete --force {cid} kills a stuck create)")
        time.sleep(delay)
        delay = min(delay * 2, 0.02)


# state.json: each field's allowed JSON types (bool is not an int here).
_NONE = type(None)
_FIELDS: dict[str, tuple[type, ...]] = {
    "ociVersion": (str,), "id": (str,), "pid": (int,), "pid_start": (int,), "bundle": (str,),
    "rootfs": (str,), "created": (str,), "owner": (int,), "annotations": (dict,), "hooks": (dict,),
    "pid_ns_own": (bool,), "own_mount_ns": (bool,), "mount_ns_new": (bool,), "process": (dict,),
    "seccomp": (dict, _NONE),
    "personality": (dict, _NONE), "memoryPolicy": (dict, _NONE), "new_keyring": (bool,),
    "cgroup_paths": (dict,), "cgroups_created": (list,), "freezer": (str, _NONE), "resources": (dict,),
}
_REQUIRED = ("pid", "pid_start", "bundle")
_JSON_TYPE = {str: "a string", int: "an integer", bool: "a boolean", dict: "an object", list: "an array",
              float: "a number", _NONE: "null"}


def _abs_path(v: object) -> bool:
    return type(v) is str and v.startswith("/") and "\0" not in v and "/../" not in v + "/"


def _field_problem(key: str, v: Any) -> str | None:
    """What is wrong with one field's value beyond its type, or None."""
    if key == "pid" and not 0 < v <= PID_MAX:
        return f"pid {v} is out of range"
    if key == "pid_start" and v <= 0:
        return f"pid_start {v} is out of range"
    if key in ("rootfs", "freezer") and v is not None and not _abs_path(v):
        return f"{key} is not an absolute path"
    if key == "cgroup_paths" and not all(type(k) is str and _abs_path(p) for k, p in v.items()):
        return "cgroup_paths has a value that is not an absolute path"
    if key == "cgroups_created" and not all(_abs_path(p) for p in v):
        return "cgroups_created has an entry that is not an absolute path"
    if key == "annotations" and not all(type(x) is str for x in v.values()):
        return "annotations has a value that is not a string"
    if key == "hooks" and not all(type(hs) is list and all(type(h) is dict and type(h.get("path")) is str
                                                            for h in hs) for hs in v.values()):
        return "hooks is not a list of hooks with a path for each stage"
    return None


def check_state(data: object) -> tuple[dict[str, Any], list[str]]:
    """The fields of a state record that pass the checks, and what is wrong
    with the others (empty: a sound record)."""
    if type(data) is not dict:
        return {}, [f"expected a JSON object, found {_JSON_TYPE.get(type(data), 'something else')}"]
    clean: dict[str, Any] = {}
    problems: list[str] = []
    for key, v in data.items():
        types = _FIELDS.get(key)
        if types is None:
            clean[key] = v          # not used by this version
            continue
        if type(v) not in types:
            want = " or ".join(_JSON_TYPE[t] for t in types)
            problems.append(f"{key} is {_JSON_TYPE.get(type(v), 'something else')}, expected {want}")
            continue
        bad = _field_problem(key, v)
        if bad:
            problems.append(bad)
            continue
        clean[key] = v
    problems += [f"{key} is missing" for key in _REQUIRED if key not in data]
    return clean, problems


def _read_state(dirfd: int) -> tuple[dict[str, Any] | None, str | None]:
    """(state, what is wrong with it): (None, None) when there is no state.json."""
    try:
        fd = os.open(STATE_FILE, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=dirfd)
    except FileNotFoundError:
        return None, None
    except OSError as e:
        return {}, os.strerror(e.errno or 0)
    try:
        with os.fdopen(fd, "rb") as f:
            data = f.read(STATE_MAX + 1)
    except IsADirectoryError:
        return {}, "is a directory"
    except OSError as e:
        return {}, os.strerror(e.errno or 0)
    if len(data) > STATE_MAX:
        return {}, f"larger than {STATE_MAX >> 20} MiB"
    try:
        parsed = jsonfast.loads(data)
    except (ValueError, RecursionError):
        return {}, "not valid JSON (truncated?)"
    clean, problems = check_state(parsed)
    return clean, "; ".join(problems[:3]) or None


def open_container(root: str, cid: str, *, shared: bool = False, peek: bool = False,
                   force: bool = False, verb: str | None = None,
                   damaged_ok: bool = False) -> Container:
    """Open and lock an existing container; ContainerNotFound if there is none.

    ``peek`` (state, list, ps, events): never wait, read without the lock
    when another command holds it.  Otherwise a running create is not
    waited for: InvalidTransition (``verb``) at once, or with ``force`` the
    creator and the init it recorded are killed first.  A damaged state.json
    is a DamagedState error unless ``damaged_ok``."""
    check_id(cid)
    path = os.path.join(root, cid)
    try:
        dirfd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        raise ContainerNotFound(cid) from None
    except OSError as e:
        raise PyociError.from_os("open the container's state", e, path=path,
                                 hint="it belongs to another user (another --root?)") from None
    try:
        locked = _try_lock(dirfd, shared or peek)
        if not locked and not peek:
            c = Container(root, cid, dirfd, None, locked=False)
            if c.create_running():
                if force:
                    # (also a create stopped after state.json, before it let go)
                    kill_creator(dirfd)
                    kill_recorded(dirfd, INIT_FILE)
                elif not os.path.exists(os.path.join(path, STATE_FILE)):
                    raise InvalidTransition(cid, verb or "use", "creating")
            _wait_lock(dirfd, shared, cid, LOCK_WAIT)
            locked = True
        if os.fstat(dirfd).st_nlink == 0:
            raise ContainerNotFound(cid)        # deleted while we waited for the lock
        state, damage = _read_state(dirfd)
        if not locked and state is None and os.fstat(dirfd).st_nlink == 0:
            raise ContainerNotFound(cid)        # being deleted
        if damage and not damaged_ok:
            raise DamagedState(cid, os.path.join(path, STATE_FILE), damage)
        return Container(root, cid, dirfd, state, damage, locked)
    except BaseException:
        os.close(dirfd)
        raise


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
        raise write_error("create the container's state directory", path, e) from None
    dirfd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    c = Container(root, cid, dirfd, None)
    try:
        fcntl.flock(dirfd, fcntl.LOCK_EX)
        c.write(CREATOR_FILE, pid_record(os.getpid()))
    except BaseException:
        try:
            c.remove()
        except PyociError:
            pass
        c.close()
        raise
    return c


def list_ids(root: str) -> list[str]:
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return []
    except OSError as e:
        raise PyociError.from_os("list the state directory", e, path=root) from None
    return sorted(n for n in names if valid_id(n) and os.path.isdir(os.path.join(root, n)))


def oci_state(c: Container, status: st.Status) -> dict[str, Any]:
    """The runtime-spec state of ``c`` (what `pyoci state` prints)."""
    from pyoci import SPEC_VERSION

    rec = c.state or {}
    out: dict[str, Any] = {
        "ociVersion": rec.get("ociVersion", SPEC_VERSION),
        "id": c.cid,
        "status": status,
        "pid": c.pid if status is not st.STOPPED else 0,
        "bundle": rec.get("bundle", ""),
    }
    if rec.get("annotations"):
        out["annotations"] = rec["annotations"]
    return out
